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

fn files(core: &mut DeviceCore) -> Vec<(StateFile, u32)> {
    core.take_file_writes().collect()
}

/// One tick: grab with `signal`, then, if a read is due, plan it and feed `result`.
fn tick(
    core: &mut DeviceCore,
    now: Micros,
    signal: bool,
    force_idr: bool,
    result: ReadResult,
) -> (GrabInfo, Option<ReadPlan>) {
    let info = core.grab(now, signal, settings().resolution);
    if info.change == FrameChange::Unchanged {
        return (info, None);
    }
    let plan = core.plan_read(&settings(), force_idr);
    core.read_done(now, &plan.request, result);
    (info, Some(plan))
}

#[test]
fn the_first_read_probes_the_input_then_asks_for_the_configured_size() {
    let mut core = DeviceCore::new();
    let (info, plan) = tick(&mut core, 0, true, true, idr((1920, 1080)));
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
    assert_eq!(plan.request.quality, 2000);
    assert!(info.signal);
    let info = core.grab(FRAME_US, true, Resolution::P720);
    assert_eq!(info.source_size, (1920, 1080));
    assert_eq!(info.output_size, (1280, 720));
    let plan = core.plan_read(&settings(), false);
    assert_eq!((plan.request.width, plan.request.height), (1280, 720));
    assert_eq!(plan.set_gop, None, "the GOP is set once");
    // A 4:3 input keeps its aspect ratio.
    let mut core = DeviceCore::new();
    tick(&mut core, 0, true, false, idr((1024, 768)));
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
fn an_idr_is_requested_before_the_read_that_must_return_it() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, true, false, idr((1920, 1080)));
    let (_, plan) = tick(&mut core, FRAME_US, true, false, P);
    assert!(!plan.unwrap().request_idr);
    let (_, plan) = tick(&mut core, 2 * FRAME_US, true, true, P);
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
fn losing_the_signal_reports_it_and_backs_off_until_it_returns() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, true, false, idr((1920, 1080)));
    assert_eq!(
        files(&mut core),
        vec![
            (StateFile::State, 1),
            (StateFile::Width, 1920),
            (StateFile::Height, 1080)
        ]
    );
    let t = FRAME_US;
    let (info, plan) = tick(
        &mut core,
        t,
        false,
        false,
        ReadResult::Failed(ReadError::NoImage),
    );
    assert!(!info.signal);
    assert!(plan.is_some(), "one try when the flag drops");
    assert_eq!(files(&mut core), vec![(StateFile::State, 0)]);
    // No read at every frame while there is no signal; one a second.
    let due: Vec<Micros> = (2..100)
        .map(|i| i * FRAME_US)
        .filter(|&now| core.grab(now, false, Resolution::P720).change != FrameChange::Unchanged)
        .collect();
    assert_eq!(due.len(), 3, "about one try a second over 3.3 s: {due:?}");
    // The signal returns at another size: the next read probes it.
    let now = 100 * FRAME_US;
    let info = core.grab(now, true, Resolution::P720);
    assert!(info.signal);
    assert_ne!(info.change, FrameChange::Unchanged, "read at once");
    let plan = core.plan_read(&settings(), true);
    assert_eq!((plan.request.width, plan.request.height), (0, 0));
    core.read_done(now, &plan.request, idr((1280, 1024)));
    let info = core.grab(now + FRAME_US, true, Resolution::P720);
    assert_eq!(
        (info.source_size, info.output_size),
        ((1280, 1024), (900, 720))
    );
    let written = files(&mut core);
    assert!(written.contains(&(StateFile::State, 1)), "{written:?}");
    assert!(written.contains(&(StateFile::Width, 1280)), "{written:?}");
}

#[test]
fn a_resolution_change_is_probed_once_the_library_has_settled() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, true, false, idr((1920, 1080)));
    let mut now = FRAME_US;
    tick(&mut core, now, true, false, P);
    for _ in 0..3 {
        now += FRAME_US;
        let (info, plan) = tick(
            &mut core,
            now,
            true,
            false,
            ReadResult::Failed(ReadError::ResolutionChanging),
        );
        assert!(plan.is_some(), "transient: retried at the next frame");
        assert!(info.signal);
    }
    now += FRAME_US;
    core.grab(now, true, Resolution::P720);
    let plan = core.plan_read(&settings(), false);
    assert_eq!((plan.request.width, plan.request.height), (0, 0), "probe");
    core.read_done(now, &plan.request, idr((1024, 768)));
    let info = core.grab(now + FRAME_US, true, Resolution::P720);
    assert_eq!(
        (info.source_size, info.output_size),
        ((1024, 768), (960, 720))
    );
}

#[test]
fn errors_are_reported_once_in_a_row_and_persistent_ones_back_off() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, true, false, idr((1920, 1080)));
    let req = core.plan_read(&settings(), false).request;
    let failed = |e| ReadResult::Failed(e);
    assert_eq!(
        core.read_done(FRAME_US, &req, failed(ReadError::LockTimeout)),
        Some(ReadError::LockTimeout)
    );
    assert_eq!(
        core.read_done(2 * FRAME_US, &req, failed(ReadError::LockTimeout)),
        None,
        "the same error again is not news"
    );
    assert_ne!(
        core.grab(3 * FRAME_US, true, Resolution::P720).change,
        FrameChange::Unchanged,
        "a lock timeout is retried at the next frame"
    );
    let now = 4 * FRAME_US;
    assert_eq!(
        core.read_done(now, &req, failed(ReadError::UnsupportedResolution)),
        Some(ReadError::UnsupportedResolution)
    );
    let info = core.grab(now + FRAME_US, true, Resolution::P720);
    assert_eq!(info.change, FrameChange::Unchanged, "backs off");
    assert!(!info.signal, "no picture to show");
    assert_ne!(
        core.grab(now + RETRY_AFTER_ERROR_US, true, Resolution::P720)
            .change,
        FrameChange::Unchanged
    );
    assert_eq!(
        core.read_done(now, &req, P),
        None,
        "a frame clears the error"
    );
}

#[test]
fn now_fps_is_the_frames_of_each_three_seconds() {
    let mut core = DeviceCore::new();
    let mut now = 0;
    tick(&mut core, now, true, false, idr((1920, 1080)));
    files(&mut core);
    // 25 frames a second for a little over 3 s.
    for _ in 0..76 {
        now += 40_000;
        tick(&mut core, now, true, false, P);
    }
    assert_eq!(files(&mut core), vec![(StateFile::NowFps, 25)]);
    // Idle for 9 s (nobody watches), then one frame: the rate over that time is 0.
    now += 9_000_000;
    tick(&mut core, now, true, false, P);
    assert_eq!(files(&mut core), vec![(StateFile::NowFps, 0)]);
    // Nobody watches: only the housekeeping ticks come, and the rate is written as 0.
    core.tick(now + 1_000_000);
    assert!(files(&mut core).is_empty(), "within the window");
    core.tick(now + 3_000_000);
    assert_eq!(files(&mut core), vec![(StateFile::NowFps, 0)]);
}

#[test]
fn a_code_that_is_not_h264_changes_nothing() {
    let mut core = DeviceCore::new();
    tick(&mut core, 0, true, false, idr((1920, 1080)));
    files(&mut core);
    let req = core.plan_read(&settings(), false).request;
    assert_eq!(
        core.read_done(FRAME_US, &req, ReadResult::NotH264(ReadOutcome::Unchanged)),
        None
    );
    assert!(files(&mut core).is_empty());
}
