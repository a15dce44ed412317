// What the console needs to know about an H.264 Annex-B access unit before decoding it.

/**
 * The WebCodecs codec string (`avc1.PPCCLL`) from the first SPS in `annexB`, or null if the
 * access unit carries none. PP, CC and LL are the SPS's profile_idc, constraint flags and
 * level_idc: the first three bytes after the NAL header. Taking them from the stream, rather
 * than assuming a level, keeps 1080p (level 4.x) streams honest.
 */
export function codecFromAnnexB(annexB) {
  const sps = findNal(annexB, NAL_SPS);
  if (sps === null || sps.length < 4) return null;
  // Emulation-prevention bytes (00 00 03) cannot occur here: profile_idc is never 0.
  const hex = (b) => b.toString(16).toUpperCase().padStart(2, '0');
  return `avc1.${hex(sps[1])}${hex(sps[2])}${hex(sps[3])}`;
}

const NAL_SPS = 7;

/** The first NAL unit of type `type` (header byte included, up to the next start code). */
function findNal(annexB, type) {
  const starts = startCodes(annexB);
  for (let i = 0; i < starts.length; i++) {
    const begin = starts[i].payload;
    if (begin < annexB.length && (annexB[begin] & 0x1f) === type) {
      const end = i + 1 < starts.length ? starts[i + 1].at : annexB.length;
      return annexB.subarray(begin, end);
    }
  }
  return null;
}

/** Positions of the 00 00 01 / 00 00 00 01 start codes and of the NAL unit after each. */
function startCodes(bytes) {
  const found = [];
  for (let i = 0; i + 2 < bytes.length; i++) {
    if (bytes[i] === 0 && bytes[i + 1] === 0 && bytes[i + 2] === 1) {
      const at = i > 0 && bytes[i - 1] === 0 ? i - 1 : i;
      found.push({ at, payload: i + 3 });
      i += 2;
    }
  }
  return found;
}
