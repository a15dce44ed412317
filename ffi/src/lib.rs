//! The NanoKVM vendor video library (`libkvm.so`, and `CVI_VENC_RequestIDR` from `libvenc.so`):
//! its C API, loaded at run time ([`VideoLibrary`]), and the typed meaning of its results. Only
//! this crate knows the vendor ABI.
//!
//! `bindings/` is bindgen's output for our own headers in `ffi/include/` (regenerate with
//! `cargo xtask bindgen`); `library.rs` is the safe wrapper the daemon uses, `capabilities.rs`
//! what a loaded library offers beyond the five required calls, `frame.rs` a frame's bytes as
//! lent; `mock` (feature `mock`, tests only) builds a C stand-in for each generation of the
//! vendor library.

// Loading a C library and calling into it is this crate's whole purpose; every `unsafe` block
// carries its SAFETY comment (clippy denies one without).
#![allow(unsafe_code)]

mod bindings;
mod capabilities;
mod frame;
mod library;
#[cfg(feature = "mock")]
pub mod mock;

pub use capabilities::{Capabilities, Optional};
pub use frame::{FrameData, MAX_FRAME_BYTES};
pub use library::{
    Encoding, HdmiStart, IdrMethod, LoadError, LoadedLibrary, ReadRequest, VideoLibrary,
    HDMI_RESET_PAUSE,
};

/// What `kvmv_read_img` returned, as a type instead of a bare integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// One complete JPEG image.
    Jpeg,
    /// An H.264 IDR access unit (SPS + PPS + IDR slice).
    H264Idr,
    /// An H.264 P-frame.
    H264P,
    /// The frame detector saw no change; no buffer was returned.
    Unchanged,
}

/// The library's error codes; none of them returns a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// -1: no frame (no HDMI signal, or the library is closed).
    NoImage,
    /// -2: the encoder produced an unexpected number of packets.
    EncoderError,
    /// -3: all four ring slots are still held by the caller.
    BufferFull,
    /// -4: the detection thread is probing a new input resolution.
    ResolutionChanging,
    /// -5: the library's lock was not acquired within one second.
    LockTimeout,
    /// -6: the input resolution is on the unsupported list.
    UnsupportedResolution,
    /// -7: automatic input detection gave up.
    ResolutionError,
    /// Any code the library is not documented to return (including the retired 1 and 2).
    Unknown(i32),
    /// A frame code came with a buffer that cannot be a frame; the frame is skipped.
    BadFrame(BadFrame),
}

/// What is wrong with a buffer the library handed over with a frame code. Each is a kind of
/// its own (no sizes or addresses inside), so a caller can log each kind once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadFrame {
    /// No buffer (a null pointer).
    NullBuffer,
    /// A buffer of 0 bytes.
    Empty,
    /// A size over [`MAX_FRAME_BYTES`]: not read at all.
    Oversized,
    /// A 2.2.x library's IDR without the SPS and PPS it lends alongside: a viewer could not
    /// start decoding from it.
    MissingParameterSets,
}

impl std::fmt::Display for BadFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadFrame::NullBuffer => "a frame without a buffer",
            BadFrame::Empty => "a frame of 0 bytes",
            BadFrame::Oversized => "a frame over 8 MiB",
            BadFrame::MissingParameterSets => "an IDR without its SPS and PPS",
        })
    }
}

impl ReadOutcome {
    /// Maps a `kvmv_read_img` return code.
    pub fn from_code(code: i32) -> Result<Self, ReadError> {
        match code {
            0 => Ok(ReadOutcome::Jpeg),
            3 => Ok(ReadOutcome::H264Idr),
            4 => Ok(ReadOutcome::H264P),
            5 => Ok(ReadOutcome::Unchanged),
            -1 => Err(ReadError::NoImage),
            -2 => Err(ReadError::EncoderError),
            -3 => Err(ReadError::BufferFull),
            -4 => Err(ReadError::ResolutionChanging),
            -5 => Err(ReadError::LockTimeout),
            -6 => Err(ReadError::UnsupportedResolution),
            -7 => Err(ReadError::ResolutionError),
            other => Err(ReadError::Unknown(other)),
        }
    }

    /// Whether the library handed over a buffer that must be released with `free_kvmv_data`.
    pub fn has_buffer(self) -> bool {
        !matches!(self, ReadOutcome::Unchanged)
    }
}

impl ReadError {
    /// Errors that clear up by themselves: retry on the next frame instead of reporting a fault.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ReadError::ResolutionChanging | ReadError::LockTimeout | ReadError::BufferFull
        )
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            ReadError::NoImage => "no image (no HDMI signal?)",
            ReadError::EncoderError => "hardware encoder error",
            ReadError::BufferFull => "all frame buffers in use",
            ReadError::ResolutionChanging => "input resolution is changing",
            ReadError::LockTimeout => "video library busy",
            ReadError::UnsupportedResolution => "unsupported input resolution",
            ReadError::ResolutionError => "input resolution could not be detected",
            ReadError::BadFrame(bad) => return write!(f, "the library returned {bad}"),
            ReadError::Unknown(code) => return write!(f, "unknown video library result {code}"),
        };
        f.write_str(text)
    }
}

impl std::error::Error for ReadError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_code_maps() {
        assert_eq!(ReadOutcome::from_code(0), Ok(ReadOutcome::Jpeg));
        assert_eq!(ReadOutcome::from_code(3), Ok(ReadOutcome::H264Idr));
        assert_eq!(ReadOutcome::from_code(4), Ok(ReadOutcome::H264P));
        assert_eq!(ReadOutcome::from_code(5), Ok(ReadOutcome::Unchanged));
        let errors = [
            (-1, ReadError::NoImage),
            (-2, ReadError::EncoderError),
            (-3, ReadError::BufferFull),
            (-4, ReadError::ResolutionChanging),
            (-5, ReadError::LockTimeout),
            (-6, ReadError::UnsupportedResolution),
            (-7, ReadError::ResolutionError),
        ];
        for (code, err) in errors {
            assert_eq!(ReadOutcome::from_code(code), Err(err));
        }
    }

    #[test]
    fn retired_and_unknown_codes_are_errors_not_frames() {
        for code in [1, 2, 6, -8, i32::MIN] {
            assert_eq!(ReadOutcome::from_code(code), Err(ReadError::Unknown(code)));
        }
    }

    #[test]
    fn only_unchanged_comes_without_a_buffer() {
        assert!(ReadOutcome::H264P.has_buffer());
        assert!(!ReadOutcome::Unchanged.has_buffer());
        assert!(ReadError::ResolutionChanging.is_transient());
        assert!(!ReadError::UnsupportedResolution.is_transient());
    }
}
