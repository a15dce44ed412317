//! The safe wrapper around the vendor video library: opened with dlopen from a directory
//! (`/kvmapp/server/dl_lib` on the device), every result typed, every buffer the library hands
//! over given back exactly once before [`VideoLibrary::read`] returns.
//!
//! Because each buffer is freed before the next read, the caller never holds more than one of
//! the library's four ring slots, so the ring cannot run full (`-3`) through us.

use std::os::raw::c_int;
use std::path::{Path, PathBuf};

use crate::bindings::{CviVencSymbols, KvmVisionSymbols};
use crate::{ReadError, ReadOutcome};

/// `libkvm.so` encodes H.264 on this VENC channel.
const H264_CHANNEL: c_int = 1;
/// The library clamps the GOP to this range.
const GOP_RANGE: std::ops::RangeInclusive<u16> = 1..=100;
/// The library's default GOP, until [`VideoLibrary::set_gop`] is called.
const DEFAULT_GOP: u8 = 30;

/// What the library encodes a read as (`kvmv_read_img`'s `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One JPEG; `quality` is the JPEG quality (the library clamps it to 51..=99).
    Mjpeg,
    /// One H.264 access unit; `quality` is the bitrate in kbit/s (clamped to 500..=10000).
    H264,
}

/// One read: output size (0, 0 = the HDMI input's size), encoding and quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    pub width: u16,
    pub height: u16,
    pub encoding: Encoding,
    pub quality: u16,
}

/// How an IDR was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdrMethod {
    /// `CVI_VENC_RequestIDR(1, instant)`: the next frame is an IDR, the encoder keeps running.
    Instant,
    /// `set_h264_gop` with the current GOP: the library recreates the encoder on the next read,
    /// whose frame is then an IDR (libvenc lacks the request, or it failed).
    EncoderRecreated,
}

#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot load the vendor video library {}: {}",
            self.path.display(),
            self.reason
        )
    }
}

impl std::error::Error for LoadError {}

/// The opened and initialised library. Its calls block (a read waits for the capture and
/// the encoder), so it belongs on one thread that may block: it is `Send`, not `Sync`.
pub struct VideoLibrary {
    vision: KvmVisionSymbols,
    /// `None` when `libvenc.so` or its `CVI_VENC_RequestIDR` is missing.
    venc: Option<CviVencSymbols>,
    venc_absent_reason: Option<String>,
    gop: u8,
    /// Reads and frees through this wrapper (the library's own view is in its mock).
    reads: u64,
    buffers_freed: u64,
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl VideoLibrary {
    /// Where the stock firmware keeps `libkvm.so` and its dependencies.
    pub const DEFAULT_DIR: &'static str = "/kvmapp/server/dl_lib";

    /// Opens `DIR/libkvm.so` (required) and `DIR/libvenc.so` (optional: without it IDRs are
    /// asked for by recreating the encoder) and initialises capture (`kvmv_init`).
    pub fn open(dir: &Path) -> Result<Self, LoadError> {
        let kvm_path = dir.join("libkvm.so");
        if !kvm_path.exists() {
            return Err(LoadError {
                path: kvm_path,
                reason: "no such file".into(),
            });
        }
        // SAFETY: loading runs the library's initialisers; libkvm.so is the vendor's video
        // library (or its test mock), whose initialisers only set up its own state.
        let vision = unsafe { KvmVisionSymbols::new(&kvm_path) }.map_err(|e| LoadError {
            path: kvm_path.clone(),
            reason: e.to_string(),
        })?;
        let venc_path = dir.join("libvenc.so");
        // SAFETY: as above; libkvm.so already depends on this library on the device.
        let (venc, venc_absent_reason) = match unsafe { CviVencSymbols::new(&venc_path) } {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(format!("{}: {e}", venc_path.display()))),
        };
        // SAFETY: the documented start-up call; 0 = no debug output.
        unsafe { vision.kvmv_init(0) };
        Ok(Self {
            vision,
            venc,
            venc_absent_reason,
            gop: DEFAULT_GOP,
            reads: 0,
            buffers_freed: 0,
            _not_sync: std::marker::PhantomData,
        })
    }

    /// Whether IDRs can be requested without recreating the encoder; if not, why.
    pub fn instant_idr(&self) -> Result<(), &str> {
        match &self.venc_absent_reason {
            None => Ok(()),
            Some(reason) => Err(reason),
        }
    }

    /// Captures and encodes one frame (blocks). A frame's bytes are lent to `sink` and the
    /// library's buffer is released right after, whatever `sink` does.
    pub fn read(
        &mut self,
        request: ReadRequest,
        sink: impl FnOnce(&[u8]),
    ) -> Result<ReadOutcome, ReadError> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: u32 = 0;
        let kind = match request.encoding {
            Encoding::Mjpeg => 0,
            Encoding::H264 => 1,
        };
        self.reads += 1;
        // SAFETY: both out-pointers point to live locals; the library writes at most them.
        let code = unsafe {
            self.vision.kvmv_read_img(
                request.width,
                request.height,
                kind,
                request.quality,
                &mut data,
                &mut size,
            )
        };
        // Whatever the code says, a pointer handed over goes back, once, when this drops.
        let buffer = VendorBuffer {
            vision: &self.vision,
            data,
        };
        let outcome = ReadOutcome::from_code(code);
        if let Ok(o) = outcome {
            if o.has_buffer() {
                if buffer.data.is_null() {
                    return Err(ReadError::NoData);
                }
                // SAFETY: on a frame code the library hands over `size` bytes at `data`,
                // valid until `free_kvmv_data`, which runs only when `buffer` drops.
                let bytes = unsafe { std::slice::from_raw_parts(buffer.data, size as usize) };
                sink(bytes);
            }
        }
        if !buffer.data.is_null() {
            self.buffers_freed += 1;
        }
        drop(buffer);
        outcome
    }

    /// Makes the next H.264 frame an IDR.
    pub fn request_idr(&mut self) -> IdrMethod {
        if let Some(venc) = &self.venc {
            // SAFETY: plain integers in, status out.
            if unsafe { venc.CVI_VENC_RequestIDR(H264_CHANNEL, 1) } == 0 {
                return IdrMethod::Instant;
            }
        }
        // SAFETY: stores the GOP and marks the encoder for re-creation.
        unsafe { self.vision.set_h264_gop(self.gop) };
        IdrMethod::EncoderRecreated
    }

    /// Sets the H.264 GOP (the library allows 1..=100; longer GOPs are cut to 100). Recreates
    /// the encoder, so the next frame is an IDR.
    pub fn set_gop(&mut self, gop: u16) {
        self.gop = gop.clamp(*GOP_RANGE.start(), *GOP_RANGE.end()) as u8;
        // SAFETY: as in `request_idr`.
        unsafe { self.vision.set_h264_gop(self.gop) };
    }

    /// The library's MJPEG "skip unchanged frames" check: every `n`-th frame, 0 = off.
    pub fn set_frame_detect(&mut self, n: u8) {
        // SAFETY: one integer in.
        unsafe { self.vision.set_frame_detact(n) };
    }

    /// Enables or disables capture. True when the board has hardware control (the PCIe
    /// variant); elsewhere only the library's flag is set and it answers 255.
    pub fn hdmi_control(&mut self, enable: bool) -> bool {
        // SAFETY: one integer in, one out.
        unsafe { self.vision.kvmv_hdmi_control(enable as u8) == 0 }
    }

    /// Capture is enabled and an HDMI signal is present.
    pub fn signal_active(&self) -> bool {
        // SAFETY: no arguments; reads the library's flags.
        unsafe { self.vision.kvmv_hdmi_signal_active() != 0 }
    }

    /// (reads, buffers freed) through this wrapper, for statistics.
    pub fn counters(&self) -> (u64, u64) {
        (self.reads, self.buffers_freed)
    }
}

impl Drop for VideoLibrary {
    fn drop(&mut self) {
        // SAFETY: the documented shutdown; every buffer was already freed by `read`.
        unsafe { self.vision.kvmv_deinit() };
    }
}

/// A buffer the library handed over, freed with `free_kvmv_data` exactly once, on drop.
struct VendorBuffer<'a> {
    vision: &'a KvmVisionSymbols,
    data: *mut u8,
}

impl Drop for VendorBuffer<'_> {
    fn drop(&mut self) {
        if !self.data.is_null() {
            // SAFETY: `data` came from `kvmv_read_img` and has not been freed: this is the
            // only place that frees it and it runs once.
            unsafe { self.vision.free_kvmv_data(&mut self.data) };
        }
    }
}
