//! The safe wrapper around the vendor video library, in two steps: [`LoadedLibrary::load`]
//! (dlopen and dlsym: the five calls every release has are required, the rest each optional)
//! and [`LoadedLibrary::start`] (the stock start order, which blocks for 10 ms and belongs on
//! the thread that will read). Every buffer the library hands over is given back exactly once
//! before [`VideoLibrary::read`] returns, whatever the library answered.
//!
//! Because each buffer is freed before the next read, the caller never holds more than one of
//! the library's four ring slots, so the ring cannot run full (`-3`) through us.

use std::os::raw::c_int;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bindings::{CviVencSymbols, KvmVisionOptionalSymbols, KvmVisionSymbols};
use crate::capabilities::Capabilities;
use crate::frame::{FrameData, MAX_FRAME_BYTES};
use crate::{BadFrame, ReadError, ReadOutcome};

/// `libkvm.so` encodes H.264 on this VENC channel.
const H264_CHANNEL: c_int = 1;
/// The library clamps the GOP to this range.
const GOP_RANGE: std::ops::RangeInclusive<u16> = 1..=100;
/// The library's default GOP, until [`VideoLibrary::set_gop`] is called.
const DEFAULT_GOP: u8 = 30;
/// The stock server's pause between disabling and enabling capture at start (`server/main.go`).
pub const HDMI_RESET_PAUSE: Duration = Duration::from_millis(10);
/// `kvmv_hdmi_control`'s answer when the board drives the receiver's enable line (PCIe).
const HDMI_HARDWARE_CONTROL: u8 = 0;

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

/// What the start did with HDMI capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HdmiStart {
    /// The library has no `kvmv_hdmi_control` (v1.3 and older): capture runs as the library
    /// starts it.
    NoControl,
    /// Disabled, 10 ms, enabled. `hardware`: the board drives the receiver's enable line.
    Enabled { hardware: bool },
    /// Disabled and left so, because `/etc/kvm/hdmi_disable` exists.
    LeftDisabled { hardware: bool },
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

/// The libraries opened and their symbols looked up; nothing called yet. It is `Send`, so it
/// can be loaded at start (where a missing library stops the daemon with a clear message) and
/// started on the thread that will read.
pub struct LoadedLibrary {
    vision: KvmVisionSymbols,
    optional: KvmVisionOptionalSymbols,
    /// `None` when `libvenc.so` or its `CVI_VENC_RequestIDR` is missing.
    venc: Option<CviVencSymbols>,
    venc_absent_reason: Option<String>,
    capabilities: Capabilities,
}

impl LoadedLibrary {
    /// Opens `DIR/libkvm.so` (required, with kvmv_init, kvmv_deinit, kvmv_read_img,
    /// free_kvmv_data and set_h264_gop) and `DIR/libvenc.so` (optional), and looks up every
    /// optional symbol on its own.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        let kvm_path = dir.join("libkvm.so");
        if !kvm_path.exists() {
            return Err(LoadError {
                path: kvm_path,
                reason: "no such file".into(),
            });
        }
        let load_error = |e: libloading::Error| LoadError {
            path: kvm_path.clone(),
            reason: e.to_string(),
        };
        // SAFETY: loading runs the library's initialisers; libkvm.so is the vendor's video
        // library (or its test mock), whose initialisers only set up its own state.
        let vision = unsafe { KvmVisionSymbols::new(&kvm_path) }.map_err(load_error)?;
        // SAFETY: the same file again: dlopen hands back the library already loaded (its
        // initialisers do not run twice); each optional symbol's absence is kept, not raised.
        let optional = unsafe { KvmVisionOptionalSymbols::new(&kvm_path) }.map_err(load_error)?;
        let venc_path = dir.join("libvenc.so");
        // SAFETY: as above; libkvm.so already depends on this library on the device.
        let (venc, venc_absent_reason) = match unsafe { CviVencSymbols::new(&venc_path) } {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(format!("{}: {e}", venc_path.display()))),
        };
        let capabilities = Capabilities {
            hdmi_control: optional.kvmv_hdmi_control.is_ok(),
            signal_query: optional.kvmv_hdmi_signal_active.is_ok(),
            frame_detect: optional.set_frame_detact.is_ok(),
            free_all: optional.free_all_kvmv_data.is_ok(),
            auto_recycle: optional.set_venc_auto_recyc.is_ok(),
            instant_idr: venc.is_some(),
            // Both or neither: an IDR's parameter sets need the two.
            separate_parameter_sets: optional.kvmv_get_sps_frame.is_ok()
                && optional.kvmv_get_pps_frame.is_ok(),
        };
        Ok(Self {
            vision,
            optional,
            venc,
            venc_absent_reason,
            capabilities,
        })
    }

    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    /// Whether IDRs can be requested without recreating the encoder; if not, why.
    pub fn instant_idr(&self) -> Result<(), &str> {
        match &self.venc_absent_reason {
            None => Ok(()),
            Some(reason) => Err(reason),
        }
    }

    /// Starts capture in the stock server's order (`server/main.go`): `kvmv_init`, then
    /// `kvmv_hdmi_control(0)`, 10 ms, and `kvmv_hdmi_control(1)` unless `hdmi_enabled` is
    /// false (`/etc/kvm/hdmi_disable`). Blocks for those 10 ms: call it on the thread that
    /// reads, never on the executor. The newest library starts with capture disabled, so
    /// without the enable it reports no signal forever.
    pub fn start(self, hdmi_enabled: bool) -> (VideoLibrary, HdmiStart) {
        // SAFETY: the documented start-up call, once per load; 0 = no debug output.
        unsafe { self.vision.kvmv_init(0) };
        let hdmi = match self.optional.kvmv_hdmi_control {
            Ok(control) => {
                // SAFETY: one integer in, one out; the library is initialised.
                let answer = unsafe { control(0) };
                std::thread::sleep(HDMI_RESET_PAUSE);
                let hardware = answer == HDMI_HARDWARE_CONTROL;
                if hdmi_enabled {
                    // SAFETY: as above.
                    unsafe { control(1) };
                    HdmiStart::Enabled { hardware }
                } else {
                    HdmiStart::LeftDisabled { hardware }
                }
            }
            Err(_) => HdmiStart::NoControl,
        };
        let library = VideoLibrary {
            lib: self,
            gop: DEFAULT_GOP,
            reads: 0,
            buffers_freed: 0,
            _not_sync: std::marker::PhantomData,
        };
        (library, hdmi)
    }
}

/// The started library. Its calls block (a read waits for the capture and the encoder), so it
/// belongs on one thread that may block: it is `Send`, not `Sync`. Dropping it calls
/// `kvmv_deinit`, as the stock server does at exit (and nothing else: it leaves the HDMI
/// receiver as it is).
pub struct VideoLibrary {
    lib: LoadedLibrary,
    gop: u8,
    /// Reads and frees through this wrapper (the library's own view is in its mock).
    reads: u64,
    buffers_freed: u64,
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

impl VideoLibrary {
    /// Where the stock firmware keeps `libkvm.so` and its dependencies.
    pub const DEFAULT_DIR: &'static str = "/kvmapp/server/dl_lib";

    /// Loads and starts with HDMI enabled, on this thread (tests and tools; the daemon loads at
    /// start and starts on its media thread).
    pub fn open(dir: &Path) -> Result<Self, LoadError> {
        Ok(LoadedLibrary::load(dir)?.start(true).0)
    }

    pub fn capabilities(&self) -> Capabilities {
        self.lib.capabilities
    }

    /// Whether IDRs can be requested without recreating the encoder; if not, why.
    pub fn instant_idr(&self) -> Result<(), &str> {
        self.lib.instant_idr()
    }

    /// Captures and encodes one frame (blocks). A frame's bytes are lent to `sink` and the
    /// library's buffer is released right after, whatever `sink` does. What the library
    /// should not answer (no buffer or an empty or huge one with a frame code, a code it does
    /// not document) is an error and the frame is skipped; its buffer is freed all the same.
    pub fn read(
        &mut self,
        request: ReadRequest,
        sink: impl FnOnce(FrameData<'_>),
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
            self.lib.vision.kvmv_read_img(
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
            vision: &self.lib.vision,
            data,
        };
        if !data.is_null() {
            self.buffers_freed += 1;
        }
        let outcome = ReadOutcome::from_code(code)?;
        if !outcome.has_buffer() {
            return Ok(outcome);
        }
        let frame = buffer.lend(buffer.data, size)?;
        let mut parts = FrameData::single(frame);
        if outcome == ReadOutcome::H264Idr && self.lib.capabilities.separate_parameter_sets {
            // Up to 2.2.2 the IDR read returns the slice alone; the SPS and PPS stay lent
            // until the IDR's buffer is freed (by `buffer`, after `sink`).
            let sps = self.lib.parameter_set(&buffer, ParameterSet::Sps)?;
            let pps = self.lib.parameter_set(&buffer, ParameterSet::Pps)?;
            parts = FrameData::idr_with(sps, pps, frame);
        }
        if parts.len() > MAX_FRAME_BYTES {
            return Err(ReadError::BadFrame(BadFrame::Oversized));
        }
        sink(parts);
        drop(buffer);
        Ok(outcome)
    }

    /// Makes the next H.264 frame an IDR.
    pub fn request_idr(&mut self) -> IdrMethod {
        if let Some(venc) = &self.lib.venc {
            // SAFETY: plain integers in, status out.
            if unsafe { venc.CVI_VENC_RequestIDR(H264_CHANNEL, 1) } == 0 {
                return IdrMethod::Instant;
            }
        }
        // SAFETY: stores the GOP and marks the encoder for re-creation.
        unsafe { self.lib.vision.set_h264_gop(self.gop) };
        IdrMethod::EncoderRecreated
    }

    /// Sets the H.264 GOP (the library allows 1..=100; longer GOPs are cut to 100). Recreates
    /// the encoder, so the next frame is an IDR.
    pub fn set_gop(&mut self, gop: u16) {
        self.gop = gop.clamp(*GOP_RANGE.start(), *GOP_RANGE.end()) as u8;
        // SAFETY: as in `request_idr`.
        unsafe { self.lib.vision.set_h264_gop(self.gop) };
    }

    /// The library's MJPEG "skip unchanged frames" check: every `n`-th frame, 0 = off.
    /// False when the library has no such check (before 2.2.3).
    pub fn set_frame_detect(&mut self, n: u8) -> bool {
        match self.lib.optional.set_frame_detact {
            Ok(set) => {
                // SAFETY: one integer in.
                unsafe { set(n) };
                true
            }
            Err(_) => false,
        }
    }

    /// Enables or disables capture. `Some(true)` when the board has hardware control (the
    /// PCIe variant); elsewhere only the library's flag is set and it answers 255. `None`
    /// without `kvmv_hdmi_control`.
    pub fn hdmi_control(&mut self, enable: bool) -> Option<bool> {
        let control = self.lib.optional.kvmv_hdmi_control.as_ref().ok()?;
        // SAFETY: one integer in, one out.
        Some(unsafe { control(enable as u8) } == HDMI_HARDWARE_CONTROL)
    }

    /// Capture is enabled and an HDMI signal is present; `None` when the library cannot tell
    /// (every release so far): then read results are the only evidence.
    pub fn signal_active(&self) -> Option<bool> {
        let query = self.lib.optional.kvmv_hdmi_signal_active.as_ref().ok()?;
        // SAFETY: no arguments; reads the library's flags.
        Some(unsafe { query() } != 0)
    }

    /// (reads, buffers freed) through this wrapper, for statistics.
    pub fn counters(&self) -> (u64, u64) {
        (self.reads, self.buffers_freed)
    }
}

impl Drop for VideoLibrary {
    fn drop(&mut self) {
        // SAFETY: the documented shutdown, once; every buffer was already freed by `read`.
        unsafe { self.lib.vision.kvmv_deinit() };
    }
}

#[derive(Clone, Copy)]
enum ParameterSet {
    Sps,
    Pps,
}

impl LoadedLibrary {
    /// The SPS or PPS lent with the IDR just read (2.2.2 and older), valid as long as the
    /// IDR's buffer.
    fn parameter_set<'b>(
        &self,
        idr: &'b VendorBuffer<'_>,
        which: ParameterSet,
    ) -> Result<&'b [u8], ReadError> {
        let getter = match which {
            ParameterSet::Sps => &self.optional.kvmv_get_sps_frame,
            ParameterSet::Pps => &self.optional.kvmv_get_pps_frame,
        };
        let getter = getter
            .as_ref()
            .map_err(|_| ReadError::BadFrame(BadFrame::MissingParameterSets))?;
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: u32 = 0;
        // SAFETY: both out-pointers point to live locals. The buffer stays the library's (it
        // frees it with the IDR's), so it is only borrowed here.
        let code = unsafe { getter(&mut data, &mut size) };
        if code < 0 || data.is_null() || size == 0 {
            return Err(ReadError::BadFrame(BadFrame::MissingParameterSets));
        }
        idr.lend(data, size)
    }
}

/// A buffer the library handed over, freed with `free_kvmv_data` exactly once, on drop.
struct VendorBuffer<'a> {
    vision: &'a KvmVisionSymbols,
    data: *mut u8,
}

impl VendorBuffer<'_> {
    /// Bytes the library lent with this buffer (its own, or the parameter sets freed with it),
    /// borrowed for no longer than the buffer lives. Null, empty or larger than any frame is
    /// refused before a byte is read.
    fn lend(&self, data: *mut u8, size: u32) -> Result<&[u8], ReadError> {
        if data.is_null() {
            return Err(ReadError::BadFrame(BadFrame::NullBuffer));
        }
        if size == 0 {
            return Err(ReadError::BadFrame(BadFrame::Empty));
        }
        let size = size as usize;
        if size > MAX_FRAME_BYTES {
            return Err(ReadError::BadFrame(BadFrame::Oversized));
        }
        // SAFETY: the library hands over `size` bytes at `data` (non-null, bounded above),
        // valid until this buffer is given back with `free_kvmv_data`, which happens only when
        // `self` drops; the slice's lifetime is tied to `self`.
        Ok(unsafe { std::slice::from_raw_parts(data, size) })
    }
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
