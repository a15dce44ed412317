//! The wrapper against the C mock of the vendor library, through the real dlopen path: every
//! return code, buffer accounting, the ring of four, IDR requests with and without libvenc.

// Calls the vendor library's raw symbols (directly or through `common`) to hold the wrapper
// against them; like the crate, it cannot do without `unsafe`.
#![allow(unsafe_code)]

mod common;

use std::path::PathBuf;

use common::{assert_all_freed, read, Raw, H264_720};
use nanokvm_ffi::mock::{self, Control, Generation, Venc};
use nanokvm_ffi::{IdrMethod, ReadError, ReadOutcome, VideoLibrary};

/// The released library (2.2.3 .. 2.5.0) in a directory of its own.
fn lib_dir(tag: &str, venc: Venc) -> PathBuf {
    common::lib_dir(tag, Generation::V2_5, venc)
}

#[test]
fn a_missing_library_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("nanokvm-ffi-test-{}-empty", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = VideoLibrary::open(&dir).err().expect("no library there");
    let text = err.to_string();
    assert!(
        text.contains("libkvm.so") && text.contains(&dir.display().to_string()),
        "{text}"
    );
    // A file that is not a library: the loader's reason comes along.
    std::fs::write(dir.join("libkvm.so"), b"not an ELF file").unwrap();
    let text = VideoLibrary::open(&dir)
        .err()
        .expect("not a library")
        .to_string();
    assert!(text.contains("libkvm.so"), "{text}");
}

#[test]
fn every_return_code_is_typed_and_no_buffer_is_leaked() {
    let dir = lib_dir("codes", Venc::WithRequestIdr);
    let mut lib = VideoLibrary::open(&dir).unwrap();
    let ctl = Control::open(&dir);
    let errors = [
        (-1, ReadError::NoImage),
        (-2, ReadError::EncoderError),
        (-3, ReadError::BufferFull),
        (-4, ReadError::ResolutionChanging),
        (-5, ReadError::LockTimeout),
        (-6, ReadError::UnsupportedResolution),
        (-7, ReadError::ResolutionError),
        (2, ReadError::Unknown(2)),
    ];
    let mut script: Vec<i32> = errors.iter().map(|(c, _)| *c).collect();
    script.extend([5, 3, 4, 0]);
    ctl.script(&script);
    for (code, expected) in errors {
        let (r, bytes) = read(&mut lib, H264_720);
        assert_eq!(r, Err(expected), "code {code}");
        assert!(bytes.is_empty(), "code {code} lent no bytes");
    }
    let (r, bytes) = read(&mut lib, H264_720);
    assert_eq!(r, Ok(ReadOutcome::Unchanged));
    assert!(bytes.is_empty());
    let (r, idr) = read(&mut lib, H264_720);
    assert_eq!(r, Ok(ReadOutcome::H264Idr));
    assert_eq!(&idr[..5], &[0, 0, 0, 1, 0x67], "an IDR starts with its SPS");
    let (r, p) = read(&mut lib, H264_720);
    assert_eq!(r, Ok(ReadOutcome::H264P));
    assert_eq!(&p[..5], &[0, 0, 0, 1, 0x41]);
    let (r, jpeg) = read(&mut lib, H264_720);
    assert_eq!(r, Ok(ReadOutcome::Jpeg));
    assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
    let c = ctl.counts();
    assert_eq!((c.reads, c.buffers), (12, 3), "{c:?}");
    assert_all_freed(&ctl);
    assert_eq!(lib.counters(), (12, 3));
}

#[test]
fn a_long_stream_never_fills_the_ring_and_frees_every_buffer() {
    let dir = lib_dir("stream", Venc::WithRequestIdr);
    let mut lib = VideoLibrary::open(&dir).unwrap();
    let ctl = Control::open(&dir);
    let mut outcomes = Vec::new();
    for _ in 0..100 {
        let (r, bytes) = read(&mut lib, H264_720);
        assert!(!bytes.is_empty());
        outcomes.push(r.unwrap());
    }
    assert_eq!(
        outcomes[0],
        ReadOutcome::H264Idr,
        "a new encoder starts with an IDR"
    );
    let idrs = outcomes
        .iter()
        .filter(|o| **o == ReadOutcome::H264Idr)
        .count();
    assert_eq!(
        idrs, 4,
        "the library's default GOP of 30: frames 0, 30, 60, 90"
    );
    assert_eq!(ctl.counts().buffers, 100);
    assert_all_freed(&ctl);
}

#[test]
fn the_mock_runs_its_ring_of_four_full_as_the_library_does() {
    // Through the raw symbols: the wrapper never holds a buffer, so only a caller that does
    // not free can see -3.
    let dir = lib_dir("ring", Venc::Absent);
    let raw = Raw::open(&dir);
    let ctl = Control::open(&dir);
    // SAFETY: the start the library needs before reads.
    unsafe { (raw.init)(0) };
    let mut held = Vec::new();
    for i in 0..5 {
        let (mut p, mut n) = (std::ptr::null_mut(), 0u32);
        // SAFETY: both out-pointers point to live locals.
        let code = unsafe { (raw.read)(1280, 720, 1, 2000, &mut p, &mut n) };
        if i < 4 {
            assert!(code == 3 || code == 4, "read {i}: {code}");
            held.push(p);
        } else {
            assert_eq!(code, -3, "a fifth read without a free finds the ring full");
            assert!(p.is_null());
        }
    }
    for p in &mut held {
        // SAFETY: a pointer the library handed out, freed once.
        let kind = unsafe { (raw.free)(p) };
        assert!(kind >= 3, "free returns the slot's type");
    }
    let mut again = held[0];
    // SAFETY: the library looks the pointer up before freeing it: a stale one is refused.
    let second = unsafe { (raw.free)(&mut again) };
    assert_eq!(second, -1, "a second free is refused");
    let c = ctl.counts();
    assert_eq!((c.buffers, c.frees, c.held, c.bad_frees), (4, 4, 0, 1));
}

#[test]
fn a_panicking_sink_still_gives_the_buffer_back() {
    let dir = lib_dir("panic", Venc::Absent);
    let mut lib = VideoLibrary::open(&dir).unwrap();
    let ctl = Control::open(&dir);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = lib.read(H264_720, |_| panic!("the copy failed"));
    }));
    assert!(r.is_err());
    assert_eq!(ctl.counts().buffers, 1);
    assert_all_freed(&ctl);
}

#[test]
fn an_idr_request_reaches_libvenc_and_the_next_frame_is_an_idr() {
    let dir = lib_dir("venc", Venc::WithRequestIdr);
    let mut lib = VideoLibrary::open(&dir).unwrap();
    let ctl = Control::open(&dir);
    assert!(lib.instant_idr().is_ok());
    assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264Idr));
    assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264P));
    assert_eq!(lib.request_idr(), IdrMethod::Instant);
    assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264Idr));
    assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264P));
    assert_eq!(ctl.venc_requests(), 1);
    assert_eq!(ctl.counts().gop_sets, 0, "no encoder re-creation needed");
}

#[test]
fn without_the_libvenc_symbol_the_gop_reset_gives_the_idr() {
    for (tag, venc) in [
        ("no-venc", Venc::Absent),
        ("no-symbol", Venc::WithoutRequestIdr),
    ] {
        let dir = lib_dir(tag, venc);
        let mut lib = VideoLibrary::open(&dir).unwrap();
        let ctl = Control::open(&dir);
        let why = lib.instant_idr().expect_err("no instant IDR");
        assert!(why.contains("libvenc.so"), "{tag}: {why}");
        lib.set_gop(60);
        assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264Idr));
        assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264P));
        assert_eq!(lib.request_idr(), IdrMethod::EncoderRecreated, "{tag}");
        assert_eq!(
            read(&mut lib, H264_720).0,
            Ok(ReadOutcome::H264Idr),
            "{tag}"
        );
        assert_eq!(ctl.gop(), 60, "{tag}: the GOP is kept");
        assert_eq!(ctl.counts().gop_sets, 2, "{tag}");
        assert_eq!(ctl.venc_requests(), 0, "{tag}");
    }
}

#[test]
fn signal_resolution_and_settings_reach_the_library() {
    // The newest library: the only one that answers the signal query.
    let dir = std::env::temp_dir().join(format!("nanokvm-ffi-test-{}-signal", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    mock::install_generation(&dir, Generation::Newest, Venc::WithRequestIdr);
    let mut lib = VideoLibrary::open(&dir).unwrap();
    let ctl = Control::open(&dir);
    assert_eq!(lib.signal_active(), Some(true));
    ctl.set_signal(false);
    assert_eq!(lib.signal_active(), Some(false));
    assert_eq!(read(&mut lib, H264_720).0, Err(ReadError::NoImage));
    ctl.set_signal(true);
    ctl.set_input(1024, 768, 2);
    for _ in 0..2 {
        assert_eq!(
            read(&mut lib, H264_720).0,
            Err(ReadError::ResolutionChanging)
        );
    }
    assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264Idr));
    lib.set_gop(300);
    assert_eq!(ctl.gop(), 100, "the library's limit");
    assert!(lib.set_frame_detect(60));
    assert_eq!(ctl.frame_detect(), 60);
    assert_eq!(
        lib.hdmi_control(false),
        Some(false),
        "no hardware control but on PCIe"
    );
    assert_eq!(lib.signal_active(), Some(false), "capture disabled");
    assert_eq!(lib.hdmi_control(true), Some(false));
    assert_eq!(lib.signal_active(), Some(true));
    assert_all_freed(&ctl);
}

#[test]
fn shutdown_deinitialises_once_and_leaves_nothing_held() {
    let dir = lib_dir("shutdown", Venc::WithRequestIdr);
    let ctl = Control::open(&dir);
    let mut lib = VideoLibrary::open(&dir).unwrap();
    for _ in 0..10 {
        read(&mut lib, H264_720).0.unwrap();
    }
    ctl.script(&[-2, -5]);
    assert!(read(&mut lib, H264_720).0.is_err());
    assert!(read(&mut lib, H264_720).0.is_err());
    drop(lib);
    let c = ctl.counts();
    assert_eq!((c.inits, c.deinits), (1, 1));
    assert_eq!(c.freed_at_deinit, 0, "nothing left for deinit to free");
    assert_all_freed(&ctl);
    let stats = mock::stats_file(&dir).expect("stats written at deinit");
    assert!(stats.contains(&("frees".to_string(), 10)), "{stats:?}");
}
