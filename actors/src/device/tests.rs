use super::*;

const FRAME_US: Micros = 33_333;

fn settings() -> StreamSettings {
    StreamSettings::default()
}

fn idr(size: (u16, u16)) -> ReadResult {
    ReadResult::Frame {
        keyframe: true,
        size: Some(size),
    }
}

const P: ReadResult = ReadResult::Frame {
    keyframe: false,
    size: None,
};

const NO_IMAGE: ReadResult = ReadResult::Failed(ReadError::NoImage);

fn files(core: &mut DeviceCore) -> Vec<StateFile> {
    core.take_file_writes().collect()
}

/// One tick: grab with the library's `flag`, then, if a read is due, plan it and feed `result`.
fn tick(
    core: &mut DeviceCore,
    now: Micros,
    flag: Option<bool>,
    force_idr: bool,
    result: ReadResult,
) -> (GrabInfo, Option<ReadPlan>) {
    let info = core.grab(now, flag, settings().resolution);
    if info.change == FrameChange::Unchanged {
        return (info, None);
    }
    let plan = core.plan_read(&settings(), force_idr);
    core.read_done(now, &plan.request, result);
    (info, Some(plan))
}

/// The library of every release: no signal flag.
const NO_FLAG: Option<bool> = None;

#[test]
fn the_first_read_probes_the_input_then_asks_for_the_configured_size() {
    let mut core = DeviceCore::new();
    let (info, plan) = tick(&mut core, 0, Some(true), true, idr((1920, 1080)));
    let plan = plan.unwrap();
    assert_eq!((plan.request.width, plan.request.height), (0, 0));
    assert_eq!(
        plan.set_gop,
        Some(60),
        "the configured GOP is applied first"
    );
    assert!(
        !plan.request_idr,
        "a new GOP recreates the encoder: no request needed"
    );
    assert_eq!(
        plan.request.quality, 4000,
        "2000 kbit/s at 30 fps, for rate control set up for 60 fps"
    );
    assert!(info.signal);
    let info = core.grab(FRAME_US, Some(true), Resolution::P720);
    assert_eq!(info.source_size, (1920, 1080));
    assert_eq!(info.output_size, (1280, 720));
    let plan = core.plan_read(&settings(), false);
    assert_eq!((plan.request.width, plan.request.height), (1280, 720));
    assert_eq!(plan.set_gop, None, "the GOP is set once");
    // A 4:3 input keeps its aspect ratio.
    let mut core = DeviceCore::new();
    tick(&mut core, 0, Some(true), false, idr((1024, 768)));
    let plan = core.plan_read(&settings(), false);
    assert_eq!((plan.request.width, plan.request.height), (960, 720));
    let native = StreamSettings {
        resolution: Resolution::Native,
        ..settings()
    };
    let plan = core.plan_read(&native, false);
    assert_eq!((plan.request.width, plan.request.height), (0, 0));
}

#[test]
fn only_widths_the_video_processor_produces_exactly_are_asked_for() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, NO_FLAG, false, idr((1280, 1024)));
    let info = core.grab(FRAME_US, NO_FLAG, Resolution::P720);
    assert_eq!(info.output_size, (896, 716), "not 900 x 720");
    let plan = core.plan_read(&settings(), false);
    assert_eq!((plan.request.width, plan.request.height), (896, 716));
    // A native stream of an input 1440 wide: 0 x 0 would be stretched to 1472 and cut.
    let native = StreamSettings {
        resolution: Resolution::Native,
        ..settings()
    };
    let mut core = DeviceCore::new();
    tick(&mut core, 0, NO_FLAG, false, idr((1440, 900)));
    let plan = core.plan_read(&native, false);
    assert_eq!((plan.request.width, plan.request.height), (1408, 880));
}

#[test]
fn bitrate_and_gop_go_to_the_library_as_it_counts_them() {
    let mut core = DeviceCore::new();
    let at = |fps, kbps, gop| StreamSettings {
        fps,
        h264_bitrate_kbps: kbps,
        gop,
        ..settings()
    };
    let plan = core.plan_read(&at(30, 2000, 60), false);
    assert_eq!((plan.request.quality, plan.set_gop), (4000, Some(60)));
    let plan = core.plan_read(&at(60, 3000, 120), true);
    assert_eq!(
        (plan.request.quality, plan.set_gop),
        (3000, Some(100)),
        "the library's GOP stops at 100"
    );
    assert!(!plan.request_idr, "a new GOP and bitrate: a new encoder");
    let plan = core.plan_read(&at(10, 8000, 300), true);
    assert_eq!(
        (plan.request.quality, plan.set_gop),
        (10_000, None),
        "8000 x 60 / 10 is beyond the library's 10000; GOP 300 is 100 again"
    );
    assert!(!plan.request_idr, "a new bitrate recreates the encoder");
    let plan = core.plan_read(&at(10, 8000, 300), true);
    assert!(plan.request_idr, "nothing changed: ask");
}

#[test]
fn an_idr_is_requested_before_the_read_that_must_return_it() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, Some(true), false, idr((1920, 1080)));
    let (_, plan) = tick(&mut core, FRAME_US, Some(true), false, P);
    assert!(!plan.unwrap().request_idr);
    let (_, plan) = tick(&mut core, 2 * FRAME_US, Some(true), true, P);
    assert!(
        plan.unwrap().request_idr,
        "the policy's IDR goes to this read"
    );
    let changed = StreamSettings {
        gop: 30,
        ..settings()
    };
    let plan = core.plan_read(&changed, true);
    assert_eq!(plan.set_gop, Some(30));
    assert!(
        !plan.request_idr,
        "the GOP change already makes this read an IDR"
    );
}

#[test]
fn an_isolated_no_image_keeps_the_stream_and_writes_no_state() {
    for flag in [NO_FLAG, Some(true)] {
        let mut core = DeviceCore::new();
        let mut now = 0;
        tick(&mut core, now, flag, false, idr((1920, 1080)));
        files(&mut core);
        now += FRAME_US;
        let (info, plan) = tick(&mut core, now, flag, false, NO_IMAGE);
        assert!(info.signal && plan.is_some());
        // The next tick: still a signal, read at once (no 500 ms pause), same size.
        now += FRAME_US;
        let info = core.grab(now, flag, Resolution::P720);
        assert!(info.signal, "{flag:?}: no 'no signal' for one -1");
        assert_ne!(
            info.change,
            FrameChange::Unchanged,
            "retried at the next tick"
        );
        assert_eq!(info.output_size, (1280, 720), "the size is still known");
        let plan = core.plan_read(&settings(), true);
        assert_eq!((plan.request.width, plan.request.height), (1280, 720));
        assert!(
            !plan.request_idr,
            "the library recreated its encoder: this frame is an IDR without asking"
        );
        core.read_done(now, &plan.request, idr((1280, 720)));
        let news = core.read_done(
            now + FRAME_US,
            &plan.request,
            ReadResult::Failed(ReadError::NoImage),
        );
        assert_eq!(
            news,
            Some(ErrorNews {
                error: ReadError::NoImage,
                transient: true
            })
        );
        // Nothing was written but the settings files: never `state`, never the size.
        assert!(files(&mut core).is_empty(), "{flag:?}");
    }
}

#[test]
fn a_run_of_no_image_means_no_signal_where_the_library_has_no_flag() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, NO_FLAG, false, idr((1920, 1080)));
    // No picture: each read blocks about a second in the library and fails.
    let mut now = 0;
    let mut first_without_signal = None;
    for _ in 0..5 {
        now += 1_000_000;
        let (info, plan) = tick(&mut core, now, NO_FLAG, false, NO_IMAGE);
        assert!(plan.is_some());
        if !info.signal && first_without_signal.is_none() {
            first_without_signal = Some(now);
        }
    }
    assert_eq!(
        first_without_signal,
        Some(4_000_000),
        "the grab after the -1 of a 2 s run (first at 1 s, at 3 s the run is 2 s long)"
    );
    // Now one read a second, and the size is probed again when the picture returns.
    let due: Vec<Micros> = (1..100)
        .map(|i| now + i * FRAME_US)
        .filter(|&t| core.grab(t, NO_FLAG, Resolution::P720).change != FrameChange::Unchanged)
        .collect();
    assert_eq!(due.len(), 3, "about one try a second over 3.3 s: {due:?}");
    now += 4_000_000;
    let info = core.grab(now, NO_FLAG, Resolution::P720);
    assert!(!info.signal);
    let plan = core.plan_read(&settings(), false);
    assert_eq!((plan.request.width, plan.request.height), (0, 0), "probe");
    core.read_done(now, &plan.request, idr((1024, 768)));
    let info = core.grab(now + FRAME_US, NO_FLAG, Resolution::P720);
    assert!(info.signal, "a frame brings the signal back");
    assert_eq!(
        (info.source_size, info.output_size),
        ((1024, 768), (960, 720))
    );
}

#[test]
fn short_runs_of_no_image_between_frames_never_add_up() {
    let mut core = DeviceCore::new();
    let mut now = 0;
    tick(&mut core, now, NO_FLAG, false, idr((1920, 1080)));
    // A -1 every other frame for 10 s: each run is one read long.
    for i in 0..300 {
        now += FRAME_US;
        let result = if i % 2 == 0 { NO_IMAGE } else { P };
        let (info, plan) = tick(&mut core, now, NO_FLAG, false, result);
        assert!(info.signal && plan.is_some(), "at {now}");
    }
}

#[test]
fn losing_the_flag_reports_no_signal_and_backs_off_until_it_returns() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, Some(true), false, idr((1920, 1080)));
    let t = FRAME_US;
    let (info, plan) = tick(&mut core, t, Some(false), false, NO_IMAGE);
    assert!(!info.signal, "the library says so: at once");
    assert!(plan.is_some(), "one try when the flag drops");
    // No read at every frame while there is no signal; one a second.
    let due: Vec<Micros> = (2..100)
        .map(|i| i * FRAME_US)
        .filter(|&now| {
            core.grab(now, Some(false), Resolution::P720).change != FrameChange::Unchanged
        })
        .collect();
    assert_eq!(due.len(), 3, "about one try a second over 3.3 s: {due:?}");
    // The signal returns at another size: the next read probes it.
    let now = 100 * FRAME_US;
    let info = core.grab(now, Some(true), Resolution::P720);
    assert!(info.signal);
    assert_ne!(info.change, FrameChange::Unchanged, "read at once");
    let plan = core.plan_read(&settings(), true);
    assert_eq!((plan.request.width, plan.request.height), (0, 0));
    core.read_done(now, &plan.request, idr((1280, 1024)));
    let info = core.grab(now + FRAME_US, Some(true), Resolution::P720);
    assert_eq!(
        (info.source_size, info.output_size),
        ((1280, 1024), (896, 716))
    );
}

#[test]
fn a_resolution_change_is_probed_once_the_library_has_settled() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, Some(true), false, idr((1920, 1080)));
    let mut now = FRAME_US;
    tick(&mut core, now, Some(true), false, P);
    for _ in 0..3 {
        now += FRAME_US;
        let (info, plan) = tick(
            &mut core,
            now,
            Some(true),
            false,
            ReadResult::Failed(ReadError::ResolutionChanging),
        );
        assert!(plan.is_some(), "transient: retried at the next frame");
        assert!(info.signal);
    }
    now += FRAME_US;
    core.grab(now, Some(true), Resolution::P720);
    let plan = core.plan_read(&settings(), false);
    assert_eq!((plan.request.width, plan.request.height), (0, 0), "probe");
    core.read_done(now, &plan.request, idr((1024, 768)));
    let info = core.grab(now + FRAME_US, Some(true), Resolution::P720);
    assert_eq!(
        (info.source_size, info.output_size),
        ((1024, 768), (960, 720))
    );
}

#[test]
fn errors_are_reported_once_in_a_row_and_persistent_ones_back_off() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, Some(true), false, idr((1920, 1080)));
    let req = core.plan_read(&settings(), false).request;
    let failed = |e| ReadResult::Failed(e);
    assert_eq!(
        core.read_done(FRAME_US, &req, failed(ReadError::LockTimeout)),
        Some(ErrorNews {
            error: ReadError::LockTimeout,
            transient: true
        })
    );
    assert_eq!(
        core.read_done(2 * FRAME_US, &req, failed(ReadError::LockTimeout)),
        None,
        "the same error again is not news"
    );
    assert_ne!(
        core.grab(3 * FRAME_US, Some(true), Resolution::P720).change,
        FrameChange::Unchanged,
        "a lock timeout is retried at the next frame"
    );
    let now = 4 * FRAME_US;
    assert_eq!(
        core.read_done(now, &req, failed(ReadError::UnsupportedResolution)),
        Some(ErrorNews {
            error: ReadError::UnsupportedResolution,
            transient: false
        })
    );
    let info = core.grab(now + FRAME_US, Some(true), Resolution::P720);
    assert_eq!(info.change, FrameChange::Unchanged, "backs off");
    assert!(!info.signal, "no picture to show");
    assert_ne!(
        core.grab(now + RETRY_AFTER_ERROR_US, Some(true), Resolution::P720)
            .change,
        FrameChange::Unchanged
    );
    assert_eq!(
        core.read_done(now, &req, P),
        None,
        "a frame clears the error"
    );
    // A retired or unknown code: backs off too.
    let now = now + RETRY_AFTER_ERROR_US;
    core.read_done(now, &req, failed(ReadError::Unknown(1)));
    let info = core.grab(now + FRAME_US, Some(true), Resolution::P720);
    assert_eq!(info.change, FrameChange::Unchanged);
    assert!(info.signal, "an unknown code says nothing about the signal");
}

#[test]
fn the_oled_files_get_the_settings_in_force() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, Some(true), false, idr((1920, 1080)));
    assert_eq!(
        files(&mut core),
        vec![
            StateFile::Type,
            StateFile::Qlty(2000),
            StateFile::Res(720),
            StateFile::Fps(30),
        ]
    );
    tick(&mut core, FRAME_US, Some(true), false, P);
    assert!(files(&mut core).is_empty(), "written on change only");
    let changed = StreamSettings {
        resolution: Resolution::Native,
        fps: 60,
        h264_bitrate_kbps: 12_000,
        ..settings()
    };
    core.plan_read(&changed, false);
    assert_eq!(
        files(&mut core),
        vec![
            StateFile::Qlty(10_000),
            StateFile::Res(0),
            StateFile::Fps(60)
        ],
        "the bitrate the stream gets (the library's limit), 0 for native"
    );
    let names: Vec<_> = [
        StateFile::NowFps(1),
        StateFile::Type,
        StateFile::Qlty(1),
        StateFile::Res(1),
        StateFile::Fps(1),
    ]
    .iter()
    .map(|f| f.name())
    .collect();
    assert_eq!(names, ["now_fps", "type", "qlty", "res", "fps"]);
    assert_eq!(StateFile::Type.content(), "h264");
    assert_eq!(StateFile::Res(0).content(), "0");
}

#[test]
fn now_fps_is_the_frames_of_each_three_seconds() {
    let mut core = DeviceCore::new();
    let mut now = 0;
    tick(&mut core, now, Some(true), false, idr((1920, 1080)));
    files(&mut core);
    // 25 frames a second for a little over 3 s.
    for _ in 0..76 {
        now += 40_000;
        tick(&mut core, now, Some(true), false, P);
    }
    assert_eq!(files(&mut core), vec![StateFile::NowFps(25)]);
    // Idle for 9 s (nobody watches), then one frame: the rate over that time is 0.
    now += 9_000_000;
    tick(&mut core, now, Some(true), false, P);
    assert_eq!(files(&mut core), vec![StateFile::NowFps(0)]);
    // Nobody watches: only the housekeeping ticks come, and the rate is written as 0.
    core.tick(now + 1_000_000);
    assert!(files(&mut core).is_empty(), "within the window");
    core.tick(now + 3_000_000);
    assert_eq!(files(&mut core), vec![StateFile::NowFps(0)]);
}

#[test]
fn a_code_that_is_not_h264_changes_nothing() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, Some(true), false, idr((1920, 1080)));
    files(&mut core);
    let req = core.plan_read(&settings(), false).request;
    assert_eq!(
        core.read_done(FRAME_US, &req, ReadResult::NotH264(ReadOutcome::Unchanged)),
        None
    );
    assert!(files(&mut core).is_empty());
}

#[test]
fn the_grab_tells_what_the_encoder_really_gets() {
    let mut core = DeviceCore::new();
    assert_eq!(core.grab(0, NO_FLAG, Resolution::P720).encoder, None);
    let asked = StreamSettings {
        h264_bitrate_kbps: 8000,
        gop: 300,
        ..settings()
    };
    core.plan_read(&asked, false);
    let e = core
        .grab(FRAME_US, NO_FLAG, Resolution::P720)
        .encoder
        .unwrap();
    assert_eq!((e.effective_kbps, e.effective_gop), (5000, 100));
}
