//! Stream settings and their allowed ranges, shared by the config file, the WebSocket and the UI.

use serde::{Deserialize, Serialize};

/// Output picture size. The source is scaled to this height keeping its aspect ratio.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// 720 lines (1280x720 from a 16:9 source). The default: a third of 1080p's bits.
    P720,
    P1080,
    /// Whatever the source sends, unscaled.
    Native,
}

impl Resolution {
    /// The encoded size for a source of `src_w` x `src_h`. Both sides are even, as 4:2:0
    /// chroma needs; the source is never scaled up.
    pub fn output_size(self, src_w: u16, src_h: u16) -> (u16, u16) {
        let target_h = match self {
            Resolution::P720 => 720,
            Resolution::P1080 => 1080,
            Resolution::Native => src_h,
        };
        if src_h == 0 || src_w == 0 {
            return (0, 0);
        }
        let h = target_h.min(src_h) as u32;
        let w = (src_w as u32 * h + src_h as u32 / 2) / src_h as u32;
        ((w as u16) & !1, (h as u16) & !1)
    }

    pub fn name(self) -> &'static str {
        match self {
            Resolution::P720 => "720p",
            Resolution::P1080 => "1080p",
            Resolution::Native => "native",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "720p" => Some(Resolution::P720),
            "1080p" => Some(Resolution::P1080),
            "native" => Some(Resolution::Native),
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    pub resolution: Resolution,
    pub fps: u8,
    pub h264_bitrate_kbps: u32,
    /// Frames from one IDR to the next when nothing forces one earlier.
    pub gop: u16,
    pub jpeg_quality: u8,
}

impl StreamSettings {
    pub const FPS: std::ops::RangeInclusive<u8> = 5..=60;
    pub const GOP: std::ops::RangeInclusive<u16> = 30..=300;
    pub const BITRATE_KBPS: std::ops::RangeInclusive<u32> = 200..=20_000;
    pub const JPEG_QUALITY: std::ops::RangeInclusive<u8> = 10..=100;

    /// Checks every field against its range; the first one out of range is reported.
    pub fn validate(&self) -> Result<(), SettingsError> {
        check("fps", self.fps as u32, &widen(&Self::FPS))?;
        check("gop", self.gop as u32, &widen(&Self::GOP))?;
        check(
            "h264_bitrate_kbps",
            self.h264_bitrate_kbps,
            &Self::BITRATE_KBPS,
        )?;
        check(
            "jpeg_quality",
            self.jpeg_quality as u32,
            &widen(&Self::JPEG_QUALITY),
        )
    }
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            resolution: Resolution::P720,
            fps: 30,
            h264_bitrate_kbps: 2000,
            gop: 60,
            jpeg_quality: 80,
        }
    }
}

fn widen<T: Copy + Into<u32>>(r: &std::ops::RangeInclusive<T>) -> std::ops::RangeInclusive<u32> {
    (*r.start()).into()..=(*r.end()).into()
}

fn check(
    field: &'static str,
    value: u32,
    range: &std::ops::RangeInclusive<u32>,
) -> Result<(), SettingsError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(SettingsError {
            field,
            value,
            min: *range.start(),
            max: *range.end(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    pub field: &'static str,
    pub value: u32,
    pub min: u32,
    pub max: u32,
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} = {} is out of range (allowed {}..={})",
            self.field, self.value, self.min, self.max
        )
    }
}

impl std::error::Error for SettingsError {}
