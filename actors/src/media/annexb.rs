//! Just enough H.264 Annex-B parsing for the replay source: split a stream into access units,
//! tell IDRs apart, and read the picture size from the SPS.

/// NAL unit types this module cares about (ITU-T H.264 table 7-1).
pub mod nal {
    pub const SLICE: u8 = 1;
    pub const IDR: u8 = 5;
    pub const SEI: u8 = 6;
    pub const SPS: u8 = 7;
    pub const PPS: u8 = 8;
    pub const AUD: u8 = 9;
}

/// Byte ranges of the NAL units in `data` (start codes excluded).
pub fn nal_units(data: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
        // A 4-byte start code leaves one zero byte at the end of the previous unit.
        while end > s && data[end - 1] == 0 && k + 1 < starts.len() {
            end -= 1;
        }
        if end > s {
            units.push(s..end);
        }
    }
    units
}

pub fn nal_type(unit: &[u8]) -> u8 {
    unit.first().map_or(0, |b| b & 0x1f)
}

/// One access unit: the byte range in the stream (from its first start code) and whether it
/// is an IDR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    pub range: std::ops::Range<usize>,
    pub keyframe: bool,
}

/// Splits a stream into access units. A new one starts at an AUD, SPS, PPS or SEI that follows
/// a picture, or at a slice whose `first_mb_in_slice` is 0 (its first coded bit is 1).
pub fn access_units(data: &[u8]) -> Vec<AccessUnit> {
    let mut aus: Vec<AccessUnit> = Vec::new();
    let mut current: Option<(usize, bool, bool)> = None; // (start, has_picture, keyframe)
    for unit in nal_units(data) {
        // Include the start code in the access unit's range.
        let start = if unit.start >= 4 && data[unit.start - 4] == 0 {
            unit.start - 4
        } else {
            unit.start - 3
        };
        let t = nal_type(&data[unit.clone()]);
        let is_slice = t == nal::SLICE || t == nal::IDR;
        let first_slice = is_slice && data.get(unit.start + 1).is_some_and(|b| b & 0x80 != 0);
        let begins_new = match current {
            None => true,
            Some((_, has_picture, _)) => {
                has_picture
                    && (first_slice || matches!(t, nal::AUD | nal::SPS | nal::PPS | nal::SEI))
            }
        };
        if begins_new {
            if let Some((s, true, key)) = current {
                aus.push(AccessUnit {
                    range: s..start,
                    keyframe: key,
                });
            }
            if current.is_none_or(|(_, has_picture, _)| has_picture) {
                current = Some((start, false, false));
            }
        }
        if let Some(c) = current.as_mut() {
            c.1 |= is_slice;
            c.2 |= t == nal::IDR;
        }
    }
    if let Some((s, true, key)) = current {
        aus.push(AccessUnit {
            range: s..data.len(),
            keyframe: key,
        });
    }
    aus
}

/// Reads Exp-Golomb coded fields from an RBSP (emulation-prevention bytes removed).
struct BitReader {
    bytes: Vec<u8>,
    pos: usize,
}

impl BitReader {
    fn new(ebsp: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(ebsp.len());
        let mut zeros = 0;
        for &b in ebsp {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            bytes.push(b);
        }
        Self { bytes, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = *self.bytes.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(bit as u32)
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some((acc << 1) | self.bit()?))
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        Some(if k % 2 == 1 {
            k.div_ceil(2) as i32
        } else {
            -((k / 2) as i32)
        })
    }
}

/// The displayed picture size coded in an SPS NAL unit (header byte included), or `None` when
/// it is malformed or uses features this parser does not follow (scaling matrices).
pub fn sps_picture_size(sps: &[u8]) -> Option<(u16, u16)> {
    let mut r = BitReader::new(sps.get(1..)?);
    let profile_idc = r.bits(8)?;
    r.bits(16)?; // constraint flags, level_idc
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            r.bit()?; // separate_colour_plane_flag
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            return None; // seq_scaling_matrix_present_flag
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            for _ in 0..r.ue()? {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
              // Values come from a file: every product is checked so a hostile SPS cannot wrap around.
    let width_mbs = r.ue()?.checked_add(1)?;
    let height_map_units = r.ue()?.checked_add(1)?;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_x, mut crop_y) = (0, 0);
    if r.bit()? == 1 {
        let (l, rt, t, b) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let (sub_w, sub_h) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        crop_x = l.checked_add(rt)?.checked_mul(sub_w)?;
        crop_y = t
            .checked_add(b)?
            .checked_mul(sub_h * (2 - frame_mbs_only))?;
    }
    let width = width_mbs.checked_mul(16)?.checked_sub(crop_x)?;
    let height = height_map_units
        .checked_mul(16 * (2 - frame_mbs_only))?
        .checked_sub(crop_y)?;
    Some((u16::try_from(width).ok()?, u16::try_from(height).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The SPS OpenH264 writes for a 1280x720 Constrained Baseline stream (80x45 macroblocks).
    // Cropped sizes (1080 lines) are covered by the encoder's tests.
    const SPS_720: [u8; 14] = [
        0x67, 0x42, 0xc0, 0x1f, 0x8c, 0x68, 0x05, 0x00, 0x5b, 0xa0, 0x1e, 0x11, 0x08, 0xd4,
    ];

    #[test]
    fn reads_picture_size_from_sps() {
        assert_eq!(sps_picture_size(&SPS_720), Some((1280, 720)));
        assert_eq!(sps_picture_size(&[0x67]), None);
    }

    #[test]
    fn splits_access_units_at_sps_and_first_slices() {
        let mut s = Vec::new();
        for unit in [
            &SPS_720[..],
            &[0x68, 0xce, 0x3c, 0x80],
            &[0x65, 0x88, 0x84],
            &[0x41, 0x9a, 0x01],
            &[0x41, 0x9a, 0x02],
        ] {
            s.extend_from_slice(&[0, 0, 0, 1]);
            s.extend_from_slice(unit);
        }
        let aus = access_units(&s);
        assert_eq!(aus.len(), 3);
        assert!(aus[0].keyframe && !aus[1].keyframe && !aus[2].keyframe);
        assert_eq!(aus[0].range.start, 0);
        assert_eq!(&s[aus[0].range.clone()][..5], &[0, 0, 0, 1, 0x67]);
        assert_eq!(&s[aus[1].range.clone()], &[0, 0, 0, 1, 0x41, 0x9a, 0x01]);
        assert_eq!(aus[2].range.end, s.len());
    }

    #[test]
    fn nal_units_handle_three_and_four_byte_start_codes() {
        let s = [0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2];
        let units = nal_units(&s);
        assert_eq!(units.len(), 2);
        assert_eq!(&s[units[0].clone()], &[0x67, 1]);
        assert_eq!(&s[units[1].clone()], &[0x68, 2]);
    }
}
