//! Each generation of the vendor library (its mock, `-DMOCK_GEN`): which symbols the wrapper
//! finds, the start and stop order the mock records, and what differs in use (the 2.2.x
//! parameter sets, the newest library's capture flag, the PCIe board's enable line).

// Calls the vendor library's raw symbols (directly or through `common`) to hold the wrapper
// against them; like the crate, it cannot do without `unsafe`.
#![allow(unsafe_code)]

mod common;

use common::{assert_all_freed, lib_dir, nal_types, read, sps_size, H264_720};
use nanokvm_ffi::mock::{Control, Generation, Venc};
use nanokvm_ffi::{
    BadFrame, Capabilities, HdmiStart, LoadedLibrary, ReadError, ReadOutcome, HDMI_RESET_PAUSE,
};

/// v1.3 shipped no libvenc.so; every later release does, with `CVI_VENC_RequestIDR`.
fn venc_of(generation: Generation) -> Venc {
    match generation {
        Generation::V1_3 => Venc::Absent,
        _ => Venc::WithRequestIdr,
    }
}

/// What `readelf --dyn-syms` shows for the release each mock stands for.
fn expected(generation: Generation) -> Capabilities {
    match generation {
        Generation::V1_3 => Capabilities {
            free_all: true,
            separate_parameter_sets: true,
            ..Default::default()
        },
        Generation::V2_2 => Capabilities {
            hdmi_control: true,
            free_all: true,
            instant_idr: true,
            separate_parameter_sets: true,
            ..Default::default()
        },
        Generation::V2_5 => Capabilities {
            hdmi_control: true,
            frame_detect: true,
            free_all: true,
            auto_recycle: true,
            instant_idr: true,
            ..Default::default()
        },
        Generation::Newest => Capabilities {
            hdmi_control: true,
            signal_query: true,
            frame_detect: true,
            free_all: true,
            auto_recycle: true,
            instant_idr: true,
            separate_parameter_sets: false,
        },
    }
}

#[test]
fn every_generation_loads_with_what_it_has() {
    for generation in Generation::ALL {
        let dir = lib_dir("load", generation, venc_of(generation));
        let loaded = LoadedLibrary::load(&dir)
            .unwrap_or_else(|e| panic!("{generation:?} does not load: {e}"));
        let caps = loaded.capabilities();
        assert_eq!(caps, expected(generation), "{generation:?}");
        eprintln!("{generation:?}: {caps}");
        let ctl = Control::open(&dir);
        assert_eq!(ctl.generation(), generation.define() as i32);
        assert!(ctl.calls().is_empty(), "loading calls nothing");
        let (mut lib, _) = loaded.start(true);
        let (r, idr) = read(&mut lib, H264_720);
        assert_eq!(r, Ok(ReadOutcome::H264Idr), "{generation:?}");
        assert_eq!(
            nal_types(&idr),
            [7, 8, 5],
            "{generation:?}: SPS, PPS and slice, however the library lends them"
        );
        assert_eq!(sps_size(&idr), Some((1280, 720)), "{generation:?}");
        assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264P));
        drop(lib);
        assert_all_freed(&ctl);
    }
}

#[test]
fn each_generation_is_started_and_stopped_in_the_stock_order() {
    for generation in Generation::ALL {
        let dir = lib_dir("order", generation, venc_of(generation));
        let ctl = Control::open(&dir);
        let loaded = LoadedLibrary::load(&dir).unwrap();
        let (mut lib, hdmi) = loaded.start(true);
        for _ in 0..3 {
            read(&mut lib, H264_720).0.unwrap();
        }
        drop(lib);
        let calls = ctl.calls();
        let labels: Vec<String> = calls.iter().map(|c| c.label()).collect();
        eprintln!("{generation:?}: {labels:?}");
        if generation == Generation::V1_3 {
            assert_eq!(hdmi, HdmiStart::NoControl);
            assert_eq!(
                labels,
                ["kvmv_init(0)", "kvmv_read_img(1)", "kvmv_deinit"],
                "v1.3 has no HDMI control"
            );
            continue;
        }
        assert_eq!(
            hdmi,
            HdmiStart::Enabled { hardware: false },
            "{generation:?}"
        );
        assert_eq!(
            labels,
            [
                "kvmv_init(0)",
                "kvmv_hdmi_control(0)",
                "kvmv_hdmi_control(1)",
                "kvmv_read_img(1)",
                "kvmv_deinit"
            ],
            "{generation:?}: the stock start; at exit only kvmv_deinit"
        );
        assert_eq!(calls[3].repeat, 3);
        let pause = calls[2].at_us - calls[1].at_us;
        assert!(
            pause >= HDMI_RESET_PAUSE.as_micros() as i64,
            "{generation:?}: {pause} µs between off and on"
        );
        assert_eq!(ctl.counts().deinits, 1);
    }
}

#[test]
fn hdmi_disable_skips_the_enable_but_not_the_reset() {
    for generation in [Generation::V2_2, Generation::V2_5, Generation::Newest] {
        let dir = lib_dir("hdmi-off", generation, Venc::WithRequestIdr);
        let ctl = Control::open(&dir);
        let (lib, hdmi) = LoadedLibrary::load(&dir).unwrap().start(false);
        assert_eq!(hdmi, HdmiStart::LeftDisabled { hardware: false });
        let labels: Vec<String> = ctl.calls().iter().map(|c| c.label()).collect();
        assert_eq!(
            labels,
            ["kvmv_init(0)", "kvmv_hdmi_control(0)"],
            "{generation:?}"
        );
        if generation == Generation::Newest {
            assert_eq!(lib.signal_active(), Some(false));
        }
    }
}

#[test]
fn the_newest_library_has_no_signal_until_capture_is_enabled() {
    let dir = lib_dir("newest", Generation::Newest, Venc::WithRequestIdr);
    let ctl = Control::open(&dir);
    let loaded = LoadedLibrary::load(&dir).unwrap();
    assert_eq!(ctl.capture_enabled(), Some(false), "it starts disabled");
    let (mut lib, _) = loaded.start(false);
    assert_eq!(
        lib.signal_active(),
        Some(false),
        "a signal, but capture is off"
    );
    // On a board without the enable line the flag is all there is: frames still come.
    assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264Idr));
    assert_eq!(lib.hdmi_control(true), Some(false), "no hardware line");
    assert_eq!(lib.signal_active(), Some(true));
    ctl.set_signal(false);
    assert_eq!(lib.signal_active(), Some(false));
    assert_eq!(read(&mut lib, H264_720).0, Err(ReadError::NoImage));
    drop(lib);
    assert_eq!(
        ctl.capture_enabled(),
        Some(false),
        "kvmv_deinit disables it"
    );
    // The releases have no such flag at all.
    let dir = lib_dir("released", Generation::V2_5, Venc::WithRequestIdr);
    let (lib, _) = LoadedLibrary::load(&dir).unwrap().start(true);
    assert_eq!(lib.signal_active(), None);
    assert_eq!(Control::open(&dir).capture_enabled(), None);
}

#[test]
fn on_the_pcie_board_the_start_drives_the_receivers_enable_line() {
    for generation in [Generation::V2_2, Generation::V2_5, Generation::Newest] {
        let dir = lib_dir("pcie", generation, Venc::WithRequestIdr);
        let ctl = Control::open(&dir);
        ctl.set_board(b'p');
        let (mut lib, hdmi) = LoadedLibrary::load(&dir).unwrap().start(true);
        assert_eq!(
            hdmi,
            HdmiStart::Enabled { hardware: true },
            "{generation:?}"
        );
        assert!(ctl.receiver_on());
        assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264Idr));
        assert_eq!(lib.hdmi_control(false), Some(true));
        assert!(!ctl.receiver_on());
        assert_eq!(
            read(&mut lib, H264_720).0,
            Err(ReadError::NoImage),
            "{generation:?}: the receiver is held off"
        );
        drop(lib);
        assert!(!ctl.receiver_on(), "nothing at exit touches the line");
        assert_all_freed(&ctl);
    }
}

#[test]
fn a_2_2_idr_gets_the_parameter_sets_the_library_lends_beside_it() {
    for generation in [Generation::V1_3, Generation::V2_2] {
        let dir = lib_dir("split", generation, venc_of(generation));
        let ctl = Control::open(&dir);
        let (mut lib, _) = LoadedLibrary::load(&dir).unwrap().start(true);
        // Ten IDRs in a row: each one's SPS and PPS go back with it, or the next would be -3.
        for i in 0..10 {
            lib.set_gop(30);
            let mut parts = 0;
            let r = lib.read(H264_720, |f| parts = f.parts().len());
            assert_eq!(r, Ok(ReadOutcome::H264Idr), "{generation:?} IDR {i}");
            assert_eq!(parts, 3, "SPS, PPS and the slice apart");
        }
        let (r, p) = read(&mut lib, H264_720);
        assert_eq!(r, Ok(ReadOutcome::H264P));
        assert_eq!(nal_types(&p), [1]);
        // An IDR code whose parameter sets are not there: a viewer could not start from it.
        ctl.script_frame(3, true, 64);
        assert_eq!(
            read(&mut lib, H264_720),
            (
                Err(ReadError::BadFrame(BadFrame::MissingParameterSets)),
                vec![]
            )
        );
        assert_eq!(read(&mut lib, H264_720).0, Ok(ReadOutcome::H264P));
        assert_all_freed(&ctl);
    }
}
