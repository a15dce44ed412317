//! The encoder as the library runs it, in every generation: the transient `-1` when its
//! output does not come (and the IDR of the encoder that replaces it), the picture size the
//! video processor's 64-pixel alignment gives, the library's clamps, the rate control that is
//! configured for 60 fps whatever rate frames are pulled at, and the MJPEG/H.264 switch.

// Calls the vendor library's raw symbols (directly or through `common`) to hold the wrapper
// against them; like the crate, it cannot do without `unsafe`.
#![allow(unsafe_code)]

mod common;

use common::{assert_all_freed, h264, lib_dir, read, sps_size, Raw, H264_720};
use nanokvm_ffi::mock::{Control, Generation, Venc};
use nanokvm_ffi::{Encoding, ReadError, ReadOutcome, ReadRequest, VideoLibrary};

fn open(tag: &str, generation: Generation) -> (VideoLibrary, Control, std::path::PathBuf) {
    let dir = lib_dir(tag, generation, Venc::WithRequestIdr);
    let lib = VideoLibrary::open(&dir).unwrap();
    let ctl = Control::open(&dir);
    (lib, ctl, dir)
}

#[test]
fn a_late_encoder_output_is_a_transient_no_image_and_the_next_frame_an_idr() {
    for generation in Generation::ALL {
        let (mut lib, ctl, _) = open("venc-wait", generation);
        assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264Idr));
        assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264P));
        ctl.venc_timeouts(1);
        let (r, bytes) = read(&mut lib, H264_720);
        assert_eq!(r, Err(ReadError::NoImage), "{generation:?}");
        assert!(bytes.is_empty());
        let (r, idr) = read(&mut lib, H264_720);
        assert_eq!(
            r,
            Ok(ReadOutcome::H264Idr),
            "{generation:?}: the channel was recreated"
        );
        assert_eq!(sps_size(&idr), Some((1280, 720)));
        assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264P));
        let c = ctl.counts();
        assert_eq!(
            (c.venc_timeouts, c.encoders),
            (1, 2),
            "{generation:?}: {c:?}"
        );
        assert_all_freed(&ctl);
    }
}

#[test]
fn the_picture_has_the_asked_width_while_the_video_processor_aligns_to_64() {
    // (asked, the processor's channel width, the picture)
    let cases = [
        ((1280, 720), 1280, (1280, 720)),
        ((800, 600), 832, (800, 600)),
        ((1000, 562), 1024, (1000, 562)),
        ((960, 720), 960, (960, 720)),
        // 0 x 0 follows the input, 1920 x 1080 here.
        ((0, 0), 1920, (1920, 1080)),
    ];
    for generation in Generation::ALL {
        let (mut lib, ctl, _) = open("align", generation);
        for ((w, h), vpss, picture) in cases {
            let (r, idr) = read(&mut lib, h264(w, h, 2000));
            assert_eq!(r, Ok(ReadOutcome::H264Idr), "{generation:?} {w}x{h}");
            assert_eq!(ctl.vpss_width(), vpss, "{generation:?} {w}x{h}");
            assert_eq!(ctl.output_size(), (picture.0 as u16, picture.1 as u16));
            assert_eq!(sps_size(&idr), Some(picture), "{generation:?} {w}x{h}");
        }
        assert_all_freed(&ctl);
    }
}

#[test]
fn gop_bitrate_and_quality_are_clamped_as_the_library_does() {
    for generation in Generation::ALL {
        let (mut lib, ctl, dir) = open("clamp", generation);
        let raw = Raw::open(&dir);
        // The library's own clamp, past the wrapper's.
        // SAFETY: one integer in; the library is started.
        unsafe { (raw.set_gop)(0) };
        assert_eq!(ctl.gop(), 1, "{generation:?}");
        // SAFETY: as above.
        unsafe { (raw.set_gop)(200) };
        assert_eq!(ctl.gop(), 100, "{generation:?}");
        // The wrapper takes any u16 and keeps to the library's range.
        lib.set_gop(0);
        assert_eq!(ctl.gop(), 1);
        lib.set_gop(300);
        assert_eq!(ctl.gop(), 100);
        lib.set_gop(5);
        let kinds: Vec<bool> = (0..11)
            .map(|_| read(&mut lib, H264_720).0 == Ok(ReadOutcome::H264Idr))
            .collect();
        let idrs: Vec<usize> = (0..11).filter(|i| kinds[*i]).collect();
        assert_eq!(idrs, [0, 5, 10], "{generation:?}: an IDR every 5 frames");
        for (asked, kept) in [(100, 500), (20_000, 10_000), (2_000, 2_000)] {
            assert_eq!(
                read(&mut lib, h264(1280, 720, asked)).0,
                Ok(ReadOutcome::H264Idr),
                "{generation:?}: a new bitrate is a new encoder"
            );
            assert_eq!(ctl.bitrate(), kept, "{generation:?}: {asked} kbit/s");
        }
        for (asked, kept) in [(10, 51), (100, 99), (80, 80)] {
            let jpeg = ReadRequest {
                encoding: Encoding::Mjpeg,
                quality: asked,
                ..H264_720
            };
            assert_eq!(read(&mut lib, jpeg).0, Ok(ReadOutcome::Jpeg));
            assert_eq!(ctl.jpeg_quality(), kept, "{generation:?}: quality {asked}");
        }
        assert_all_freed(&ctl);
    }
}

#[test]
fn the_encoder_spends_a_sixtieth_of_its_bitrate_per_frame_whatever_the_pull_rate() {
    for generation in Generation::ALL {
        let (mut lib, ctl, _) = open("rate", generation);
        let mut now = 1_000_000_i64;
        for fps in [60, 30, 10] {
            let mut p_bytes = 0;
            let mut p_frames = 0;
            for _ in 0..16 {
                ctl.set_clock_us(Some(now));
                let (r, bytes) = read(&mut lib, h264(1280, 720, 3000));
                if r == Ok(ReadOutcome::H264P) {
                    p_bytes += bytes.len();
                    p_frames += 1;
                }
                now += 1_000_000 / fps;
            }
            let pulled = ctl.pull_fps();
            assert!(
                (pulled - fps as f64).abs() < 0.5,
                "{generation:?}: {pulled} fps"
            );
            let expected = 3000 * fps as i32 / 60;
            let effective = ctl.effective_kbps();
            assert!(
                (effective - expected).abs() <= expected / 50,
                "{generation:?} at {fps} fps: {effective} kbit/s, expected {expected}"
            );
            // The frames themselves carry it: bytes per frame x 8 x fps.
            let from_bytes = p_bytes as f64 * 8.0 * fps as f64 / p_frames as f64 / 1000.0;
            assert!(
                (from_bytes - expected as f64).abs() < expected as f64 * 0.02,
                "{generation:?} at {fps} fps: the frames carry {from_bytes:.0} kbit/s"
            );
            eprintln!(
                "{generation:?}: 3000 kbit/s asked, pulled at {pulled:.1} fps: {effective} \
                 kbit/s effective ({from_bytes:.0} from the frames' sizes)"
            );
        }
        ctl.set_clock_us(None);
        assert_all_freed(&ctl);
    }
}

#[test]
fn back_from_mjpeg_the_old_encoder_goes_on_as_the_library_is_written() {
    let mjpeg = ReadRequest {
        encoding: Encoding::Mjpeg,
        quality: 80,
        ..H264_720
    };
    for generation in Generation::ALL {
        let (mut lib, ctl, dir) = open("switch", generation);
        assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264Idr));
        assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264P));
        assert_eq!(read(&mut lib, mjpeg).0, Ok(ReadOutcome::Jpeg));
        // Leaving H.264 marks the encoder for re-creation, coming back marks it ready again.
        assert_eq!(
            read(&mut lib, H264_720).0,
            Ok(ReadOutcome::H264P),
            "{generation:?}: no IDR after MJPEG"
        );
        let raw = Raw::open(&dir);
        let Some(auto_recycle) = raw.optional::<unsafe extern "C" fn(u8)>(b"set_venc_auto_recyc\0")
        else {
            assert!(matches!(generation, Generation::V1_3 | Generation::V2_2));
            continue;
        };
        // SAFETY: one integer in.
        unsafe { auto_recycle(1) };
        assert_eq!(read(&mut lib, mjpeg).0, Ok(ReadOutcome::Jpeg));
        assert_eq!(
            read(&mut lib, H264_720).0,
            Err(ReadError::NoImage),
            "{generation:?}: the deleted channel fails one read"
        );
        assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264Idr));
        assert_eq!(ctl.counts().encoders, 2);
        assert_all_freed(&ctl);
    }
}
