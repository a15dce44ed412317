//! What the wrapper's tests share: a mock of a given generation in a directory of its own, a
//! read that keeps the bytes, the mock's raw symbols for what the wrapper never does, and the
//! picture size an SPS describes.

#![allow(dead_code)] // each test file uses some of it

use std::path::PathBuf;

use nanokvm_ffi::mock::{self, Control, Generation, Venc};
use nanokvm_ffi::{Encoding, ReadError, ReadOutcome, ReadRequest, VideoLibrary};

/// A directory of its own per test (a library file is one instance per process).
pub fn lib_dir(tag: &str, generation: Generation, venc: Venc) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "nanokvm-ffi-test-{}-{tag}-{generation:?}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    mock::install_generation(&dir, generation, venc);
    dir
}

pub const H264_720: ReadRequest = ReadRequest {
    width: 1280,
    height: 720,
    encoding: Encoding::H264,
    quality: 2000,
};

pub fn h264(width: u16, height: u16, kbps: u16) -> ReadRequest {
    ReadRequest {
        width,
        height,
        encoding: Encoding::H264,
        quality: kbps,
    }
}

pub fn read(lib: &mut VideoLibrary, req: ReadRequest) -> (Result<ReadOutcome, ReadError>, Vec<u8>) {
    let mut copy = Vec::new();
    let r = lib.read(req, |f| f.append_to(&mut copy));
    (r, copy)
}

pub fn assert_all_freed(ctl: &Control) {
    let c = ctl.counts();
    assert_eq!(
        c.buffers, c.frees,
        "every buffer handed out was freed: {c:?}"
    );
    assert_eq!((c.held, c.bad_frees), (0, 0), "{c:?}");
}

/// The NAL unit types of an Annex-B access unit, in order.
pub fn nal_types(au: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 < au.len() {
        if au[i..i + 3] == [0, 0, 1] {
            types.push(au[i + 3] & 0x1f);
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

/// Exp-Golomb reader over an RBSP (the mock's SPS has no emulation prevention bytes).
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn bit(&mut self) -> u32 {
        let b = (self.data[self.at / 8] >> (7 - self.at % 8)) & 1;
        self.at += 1;
        b as u32
    }

    fn bits(&mut self, n: u32) -> u32 {
        (0..n).fold(0, |v, _| v << 1 | self.bit())
    }

    fn ue(&mut self) -> u32 {
        let mut zeros = 0;
        while self.bit() == 0 {
            zeros += 1;
        }
        (1 << zeros) - 1 + self.bits(zeros)
    }
}

/// The picture size in the first SPS of an access unit (Baseline, frame_mbs_only, cropping
/// as the mock writes it).
pub fn sps_size(au: &[u8]) -> Option<(u32, u32)> {
    let at = au.windows(4).position(|w| w == [0, 0, 1, 0x67])? + 4;
    let mut b = Bits {
        data: &au[at..],
        at: 0,
    };
    b.bits(24); // profile, constraints, level
    b.ue(); // seq_parameter_set_id
    b.ue(); // log2_max_frame_num_minus4
    if b.ue() == 0 {
        b.ue(); // log2_max_pic_order_cnt_lsb_minus4
    }
    b.ue(); // max_num_ref_frames
    b.bit(); // gaps_in_frame_num_value_allowed_flag
    let mbs_w = b.ue() + 1;
    let mbs_h = b.ue() + 1;
    b.bit(); // frame_mbs_only_flag
    b.bit(); // direct_8x8_inference_flag
    let (mut w, mut h) = (mbs_w * 16, mbs_h * 16);
    if b.bit() == 1 {
        let (l, r, t, bo) = (b.ue(), b.ue(), b.ue(), b.ue());
        w -= 2 * (l + r);
        h -= 2 * (t + bo);
    }
    Some((w, h))
}

/// The mock's own C functions, for what the wrapper never does (holding buffers, values the
/// wrapper clamps before the library would).
pub struct Raw {
    _lib: libloading::Library,
    pub init: unsafe extern "C" fn(u8),
    pub read: unsafe extern "C" fn(u16, u16, u8, u16, *mut *mut u8, *mut u32) -> i32,
    pub free: unsafe extern "C" fn(*mut *mut u8) -> i32,
    pub set_gop: unsafe extern "C" fn(u8),
}

impl Raw {
    pub fn open(dir: &std::path::Path) -> Raw {
        // SAFETY: the mock's initialisers do nothing.
        let lib = unsafe { libloading::Library::new(dir.join("libkvm.so")) }.unwrap();
        // SAFETY: each symbol is looked up with its C signature, and the library stays loaded
        // as long as `Raw` holds it.
        unsafe {
            Raw {
                init: *lib.get(b"kvmv_init\0").unwrap(),
                read: *lib.get(b"kvmv_read_img\0").unwrap(),
                free: *lib.get(b"free_kvmv_data\0").unwrap(),
                set_gop: *lib.get(b"set_h264_gop\0").unwrap(),
                _lib: lib,
            }
        }
    }

    /// An optional function of the mock, if this generation has it.
    pub fn optional<T: Copy>(&self, name: &[u8]) -> Option<T> {
        // SAFETY: callers name a function with the signature they ask for.
        unsafe { self._lib.get::<T>(name).ok().map(|f| *f) }
    }
}
