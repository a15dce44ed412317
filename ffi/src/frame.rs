//! A frame as the library lends it: one buffer, or (up to 2.2.2, for an IDR) the SPS, the PPS
//! and the slice in three, to be joined in that order.

/// No frame is larger: the library's H.264 stream buffer is 1 MiB and a 1080p NV21 picture,
/// which bounds a JPEG of it, is about 3 MiB. A size beyond this is garbage, not a frame.
pub const MAX_FRAME_BYTES: usize = 8 << 20;

/// The bytes of one frame, borrowed from the library until the read returns. Annex-B: each
/// part starts with its start code, so the parts joined in order are the access unit.
#[derive(Debug, Clone, Copy)]
pub struct FrameData<'a> {
    parts: [&'a [u8]; 3],
    count: usize,
}

impl<'a> FrameData<'a> {
    pub(crate) fn single(data: &'a [u8]) -> Self {
        Self {
            parts: [data, &[], &[]],
            count: 1,
        }
    }

    pub(crate) fn idr_with(sps: &'a [u8], pps: &'a [u8], slice: &'a [u8]) -> Self {
        Self {
            parts: [sps, pps, slice],
            count: 3,
        }
    }

    /// The parts, in stream order.
    pub fn parts(&self) -> &[&'a [u8]] {
        &self.parts[..self.count]
    }

    /// All parts' bytes.
    pub fn len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the frame to `out` (tests and tools; the daemon copies the parts into its own
    /// pooled buffer).
    pub fn append_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.len());
        for part in self.parts() {
            out.extend_from_slice(part);
        }
    }
}
