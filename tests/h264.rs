//! H.264 checks: Annex-B split into NAL units and access units, keyframe shape (SPS, PPS, IDR),
//! and decoding with OpenH264; and the synthetic recordings the replay source plays
//! (`replay_file.rs`).

mod replay_file;
pub use replay_file::{make_replay_file, make_replay_file_at, replay_file};

use openh264::formats::YUVSource;

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// A NAL unit inside an Annex-B buffer: where its start code begins and its payload range.
#[derive(Debug, Clone, Copy)]
pub struct Nal {
    pub start: usize,
    pub payload: (usize, usize),
    pub kind: u8,
}

/// Splits Annex-B into NAL units (3- and 4-byte start codes).
pub fn nals(data: &[u8]) -> Vec<Nal> {
    let mut codes = Vec::new(); // (start code begin, payload begin)
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let begin = if i > 0 && data[i - 1] == 0 { i - 1 } else { i };
            codes.push((begin, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(codes.len());
    for (k, &(begin, p)) in codes.iter().enumerate() {
        let mut end = codes.get(k + 1).map_or(data.len(), |c| c.0);
        while end > p && data[end - 1] == 0 {
            end -= 1;
        }
        let kind = data.get(p).map_or(0, |b| b & 0x1f);
        out.push(Nal {
            start: begin,
            payload: (p, end),
            kind,
        });
    }
    out
}

/// The NAL unit types in order.
pub fn nal_types(data: &[u8]) -> Vec<u8> {
    nals(data).iter().map(|n| n.kind).collect()
}

/// The NAL unit payloads (without start codes).
pub fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    nals(data)
        .iter()
        .map(|n| &data[n.payload.0..n.payload.1])
        .collect()
}

/// Ok when `au` starts with SPS, PPS and contains an IDR slice.
pub fn check_keyframe_au(au: &[u8]) -> Result<(), String> {
    if !(au.starts_with(&[0, 0, 0, 1]) || au.starts_with(&[0, 0, 1])) {
        return Err(format!(
            "does not start with an Annex-B start code: {:02x?}",
            &au[..au.len().min(8)]
        ));
    }
    let t = nal_types(au);
    if t.len() < 3 || t[0] != NAL_SPS || t[1] != NAL_PPS || !t.contains(&NAL_IDR) {
        return Err(format!(
            "NAL types {t:?}, expected SPS(7), PPS(8), then IDR(5)"
        ));
    }
    Ok(())
}

fn is_vcl(kind: u8) -> bool {
    (1..=5).contains(&kind)
}

/// Splits an Annex-B byte stream into access units. Returns the complete ones (each one
/// is followed by the start of another) and the offset where the incomplete rest begins.
pub fn split_access_units(data: &[u8]) -> (Vec<&[u8]>, usize) {
    let ns = nals(data);
    let mut starts = Vec::new();
    let mut prev_vcl = false;
    let mut have_vcl_in_au = false;
    for n in &ns {
        let first_mb_zero = data.get(n.payload.0 + 1).is_some_and(|b| b & 0x80 != 0);
        let new_au = match n.kind {
            NAL_AUD => true,
            NAL_SEI | NAL_SPS | NAL_PPS => prev_vcl,
            k if is_vcl(k) => have_vcl_in_au && first_mb_zero,
            _ => false,
        };
        if new_au || starts.is_empty() {
            starts.push(n.start);
            have_vcl_in_au = false;
        }
        if is_vcl(n.kind) {
            have_vcl_in_au = true;
        }
        prev_vcl = is_vcl(n.kind);
    }
    if starts.len() < 2 {
        return (Vec::new(), starts.first().copied().unwrap_or(0));
    }
    let aus = starts.windows(2).map(|w| &data[w[0]..w[1]]).collect();
    (aus, *starts.last().unwrap_or(&0))
}

/// OpenH264 decoder that reports picture sizes.
pub struct Decoder {
    inner: openh264::decoder::Decoder,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            inner: openh264::decoder::Decoder::new().expect("OpenH264 decoder"),
        }
    }

    /// Decodes one access unit; the picture size when it produced a picture.
    pub fn decode(&mut self, au: &[u8]) -> Result<Option<(usize, usize)>, String> {
        match self.inner.decode(au) {
            Ok(Some(pic)) => Ok(Some(pic.dimensions())),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("OpenH264: {e}")),
        }
    }

    /// Decodes one access unit that must produce a picture.
    pub fn decode_picture(&mut self, au: &[u8]) -> Result<(usize, usize), String> {
        self.decode(au)?.ok_or_else(|| {
            format!(
                "no picture from an access unit with NAL types {:?}",
                nal_types(au)
            )
        })
    }
}

/// Decodes a lone keyframe access unit in a fresh decoder.
pub fn keyframe_size(au: &[u8]) -> Result<(usize, usize), String> {
    check_keyframe_au(au)?;
    Decoder::new().decode_picture(au)
}
