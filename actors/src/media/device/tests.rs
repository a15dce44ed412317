//! The device backend on the media thread, against the C mock of the vendor library through
//! the real dlopen path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nanokvm_ffi::mock::{self, Control, Generation, Venc};
use nanokvm_ffi::LoadedLibrary;
use nanokvm_protocol::StreamSettings;

use super::DeviceSource;
use crate::device::state_files::StateFiles;
use crate::idr_policy::FrameChange;
use crate::media::{self, EncodeJob, EncodeReport, GrabReport, H264Job, MediaCmd, Source};
use crate::metrics::Metrics;

struct Rig {
    dir: PathBuf,
    ctl: Control,
    thread: Option<media::MediaThread>,
    seq: u64,
}

impl Rig {
    fn start(tag: &str, venc: Venc) -> Rig {
        Rig::start_with(tag, Generation::V2_5, venc, |_| {})
    }

    /// `prepare` lays out files under the device root before the source is made.
    fn start_with(
        tag: &str,
        generation: Generation,
        venc: Venc,
        prepare: impl FnOnce(&Path),
    ) -> Rig {
        let dir =
            std::env::temp_dir().join(format!("nanokvmd-device-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        mock::install_generation(&dir.join("dl_lib"), generation, venc);
        prepare(&dir);
        let library = LoadedLibrary::load(&dir.join("dl_lib")).unwrap();
        let ctl = Control::open(&dir.join("dl_lib"));
        let source = DeviceSource::new(library, StateFiles::new(&dir), &dir);
        let thread = media::spawn(
            Source::Device(Box::new(source)),
            Arc::new(Metrics::default()),
        )
        .unwrap();
        Rig {
            dir,
            ctl,
            thread: Some(thread),
            seq: 0,
        }
    }

    fn thread(&self) -> &media::MediaThread {
        self.thread.as_ref().unwrap()
    }

    fn grab(&mut self) -> GrabReport {
        self.seq += 1;
        let t = self.thread();
        t.handle
            .commands
            .send_blocking(MediaCmd::Grab {
                grab_seq: self.seq,
                capture_us: self.seq * 33_333,
                wall_ms: 0,
                settings: StreamSettings::default(),
            })
            .unwrap();
        t.grabs.recv_blocking().unwrap()
    }

    fn encode(&mut self, force_idr: bool) -> EncodeReport {
        let t = self.thread();
        t.handle
            .commands
            .send_blocking(MediaCmd::Encode(EncodeJob {
                grab_seq: self.seq,
                h264: Some(H264Job {
                    force_idr,
                    quality_boost: false,
                }),
                jpeg: false,
                settings: StreamSettings::default(),
            }))
            .unwrap();
        t.encodes.recv_blocking().unwrap()
    }

    /// One frame: (keyframe, width, height), or `None` when the read failed.
    fn frame(&mut self, force_idr: bool) -> Option<(bool, u16, u16)> {
        self.grab();
        self.encode(force_idr)
            .h264
            .map(|f| (f.keyframe(), f.header.width, f.header.height))
    }

    /// Ends the media thread (which drops the library: `kvmv_deinit`).
    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            drop(t.handle);
            t.join.join().unwrap();
        }
    }

    fn state_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join("kvmapp/kvm").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .trim()
            .to_string()
    }

    /// `state`, `width` and `height` are the library's to write (the mock writes none).
    fn assert_library_files_untouched(&self) {
        for name in ["state", "width", "height"] {
            let path = self.dir.join("kvmapp/kvm").join(name);
            assert!(!path.exists(), "{} written", path.display());
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn assert_all_freed(dir: &Path) {
    let stats = mock::stats_file(&dir.join("dl_lib")).expect("the mock wrote its counters");
    let get = |k: &str| stats.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    assert_eq!(get("buffers"), get("frees"), "{stats:?}");
    assert_eq!(get("held"), Some(0), "{stats:?}");
    assert_eq!(get("bad_frees"), Some(0), "{stats:?}");
    assert_eq!(get("deinits"), Some(1), "{stats:?}");
}

#[test]
fn the_idr_a_viewer_needs_comes_from_the_read_it_was_asked_before() {
    let mut rig = Rig::start("idr", Venc::WithRequestIdr);
    // The input's size is probed first (0 x 0), then 720p is asked for: a new encoder each.
    assert_eq!(rig.frame(true), Some((true, 1920, 1080)));
    assert_eq!(rig.frame(false), Some((true, 1280, 720)));
    assert_eq!(rig.frame(false), Some((false, 1280, 720)));
    assert_eq!(
        rig.ctl.venc_requests(),
        0,
        "new encoders start with an IDR anyway"
    );
    assert_eq!(
        rig.frame(true),
        Some((true, 1280, 720)),
        "not one frame late"
    );
    assert_eq!(rig.frame(false), Some((false, 1280, 720)));
    assert_eq!(rig.ctl.venc_requests(), 1);
    assert_eq!(rig.ctl.counts().gop_sets, 1, "the configured GOP, once");
    assert_eq!(rig.ctl.gop(), 60);
    assert_eq!(rig.state_file("type"), "h264");
    assert_eq!(rig.state_file("qlty"), "2000");
    assert_eq!(rig.state_file("res"), "720");
    assert_eq!(rig.state_file("fps"), "30");
    rig.assert_library_files_untouched();
    rig.stop();
    assert_all_freed(&rig.dir);
}

#[test]
fn without_libvenc_a_forced_idr_recreates_the_encoder() {
    let mut rig = Rig::start("no-venc", Venc::Absent);
    rig.frame(false);
    rig.frame(false);
    assert_eq!(rig.frame(false), Some((false, 1280, 720)));
    assert_eq!(rig.frame(true), Some((true, 1280, 720)));
    assert_eq!(rig.ctl.counts().gop_sets, 2, "the GOP, then the fallback");
    rig.stop();
    assert_all_freed(&rig.dir);
}

#[test]
fn signal_loss_and_a_new_input_size_reach_the_viewers() {
    // The newest library, whose signal query tells the loss before any read fails.
    let mut rig = Rig::start_with("signal", Generation::Newest, Venc::WithRequestIdr, |_| {});
    rig.frame(false);
    rig.frame(false);
    rig.ctl.set_signal(false);
    let report = rig.grab();
    assert!(!report.info.signal);
    assert!(rig.encode(false).h264.is_none(), "no image");
    // Without a signal nothing is read at every frame.
    let reads = rig.ctl.counts().reads;
    assert_eq!(rig.grab().info.change, FrameChange::Unchanged);
    assert_eq!(rig.ctl.counts().reads, reads);
    // It comes back at 1024x768, after the library has probed it twice.
    rig.ctl.set_signal(true);
    rig.ctl.set_input(1024, 768, 2);
    assert!(rig.grab().info.signal);
    assert!(rig.encode(false).h264.is_none(), "resolution changing");
    assert_eq!(rig.frame(false), None, "resolution changing");
    assert_eq!(rig.frame(false), Some((true, 1024, 768)), "probed");
    let report = rig.grab();
    assert_eq!(report.info.source_size, (1024, 768));
    assert_eq!(report.info.output_size, (960, 720));
    assert_eq!(
        rig.encode(false)
            .h264
            .map(|f| (f.keyframe(), f.header.width)),
        Some((true, 960))
    );
    rig.assert_library_files_untouched();
    rig.stop();
    assert_all_freed(&rig.dir);
}

#[test]
fn every_buffer_is_freed_after_errors_and_at_shutdown() {
    let mut rig = Rig::start("errors", Venc::WithRequestIdr);
    rig.ctl.script(&[3, 4, -2, -5, -3, 4, -7, 5]);
    for i in 0..40 {
        // -7 and 5 make the backend wait before reading again; frames come back after.
        let _ = rig.frame(i % 9 == 0);
    }
    let c = rig.ctl.counts();
    assert!(c.buffers >= 20, "{c:?}");
    assert_eq!((c.buffers, c.held, c.bad_frees), (c.frees, 0, 0), "{c:?}");
    rig.stop();
    assert_all_freed(&rig.dir);
}

/// The calls the mock saw, as labels, with runs of reads as one `kvmv_read_img(1)`.
fn call_labels(dir: &Path) -> Vec<String> {
    mock::calls_file(&dir.join("dl_lib"))
        .expect("the mock wrote its calls at deinit")
        .iter()
        .map(|c| c.label())
        .collect()
}

#[test]
fn the_library_starts_and_stops_on_the_media_thread_in_the_stock_order() {
    for generation in [Generation::V2_5, Generation::Newest] {
        let tag = format!("order-{generation:?}");
        let mut rig = Rig::start_with(&tag, generation, Venc::WithRequestIdr, |_| {});
        assert!(
            rig.ctl.calls().is_empty(),
            "{generation:?}: nothing is called before the media thread's first command"
        );
        assert_eq!(rig.frame(true), Some((true, 1920, 1080)), "{generation:?}");
        assert_eq!(rig.frame(false), Some((true, 1280, 720)), "{generation:?}");
        if generation == Generation::Newest {
            assert_eq!(rig.ctl.capture_enabled(), Some(true));
            assert!(rig.grab().info.signal, "the newest library's signal is on");
        }
        rig.stop();
        let calls = mock::calls_file(&rig.dir.join("dl_lib")).unwrap();
        let labels = call_labels(&rig.dir);
        assert_eq!(
            labels[..3],
            [
                "kvmv_init(0)",
                "kvmv_hdmi_control(0)",
                "kvmv_hdmi_control(1)"
            ],
            "{generation:?}: {labels:?}"
        );
        assert_eq!(labels.last().map(String::as_str), Some("kvmv_deinit"));
        assert!(
            !labels[3..].contains(&"kvmv_hdmi_control(0)".to_string()),
            "{generation:?}: the stock server does not disable capture at exit: {labels:?}"
        );
        let pause = calls[2].at_us - calls[1].at_us;
        assert!(
            pause >= 10_000,
            "{generation:?}: {pause} µs between off and on"
        );
        for call in &calls {
            assert_eq!(
                call.thread, "nanokvmd-media",
                "{generation:?}: {} ran on another thread",
                call.name
            );
        }
        assert_all_freed(&rig.dir);
    }
}

#[test]
fn hdmi_disable_leaves_capture_off_as_the_stock_server_does() {
    let mut rig = Rig::start_with("hdmi-off", Generation::Newest, Venc::WithRequestIdr, |d| {
        std::fs::create_dir_all(d.join("etc/kvm")).unwrap();
        std::fs::write(d.join(super::HDMI_DISABLE_FILE), "").unwrap();
    });
    let report = rig.grab();
    assert!(!report.info.signal, "capture off: no signal");
    assert_eq!(rig.ctl.capture_enabled(), Some(false));
    rig.stop();
    let labels = call_labels(&rig.dir);
    assert_eq!(
        labels[..2],
        ["kvmv_init(0)", "kvmv_hdmi_control(0)"],
        "{labels:?}"
    );
    assert!(
        !labels.contains(&"kvmv_hdmi_control(1)".to_string()),
        "{labels:?}"
    );
}

#[test]
fn a_library_without_a_signal_query_shows_the_signal_from_its_reads() {
    let mut rig = Rig::start("no-query", Venc::WithRequestIdr);
    assert_eq!(rig.frame(false), Some((true, 1920, 1080)));
    assert!(rig.grab().info.signal);
    rig.ctl.set_signal(false);
    assert!(rig.encode(false).h264.is_none(), "no image");
    assert!(rig.grab().info.signal, "one no-image answer is transient");
    assert!(rig.encode(false).h264.is_none(), "no image");
    // The run of no-image answers outlasts DeviceCore's 2 s: that is a loss of signal.
    rig.seq += 3_000_000 / 33_333;
    rig.grab();
    assert!(rig.encode(false).h264.is_none(), "no image");
    assert!(
        !rig.grab().info.signal,
        "the run of failed reads turned it off"
    );
    rig.assert_library_files_untouched();
    rig.stop();
    assert_all_freed(&rig.dir);
}

#[test]
fn bad_answers_skip_the_frame_and_the_stream_goes_on() {
    let mut rig = Rig::start("bad", Venc::WithRequestIdr);
    assert!(rig.frame(false).is_some());
    rig.ctl.script_frame(4, false, 100);
    rig.ctl.script_frame(4, true, 0);
    rig.ctl.script_frame(4, true, 9 << 20);
    rig.ctl.script_frame(7, true, 64);
    // Each bad answer holds reads back for 0.5 s (15 grabs here); then frames flow again.
    let mut frames = 0;
    for _ in 0..120 {
        frames += rig.frame(false).is_some() as u32;
    }
    assert!(frames >= 40, "frames after the bad ones: {frames}");
    let c = rig.ctl.counts();
    assert_eq!(
        c.buffers, c.frees,
        "the bad ones' buffers were freed too: {c:?}"
    );
    rig.stop();
    assert_all_freed(&rig.dir);
}

#[test]
fn a_transient_no_image_costs_one_frame_and_nothing_else() {
    let mut rig = Rig::start("transient", Venc::WithRequestIdr);
    rig.frame(false);
    assert_eq!(rig.frame(false), Some((true, 1280, 720)));
    rig.ctl.script(&[-1]);
    assert_eq!(rig.frame(false), None, "the library's encoder wait ran out");
    let report = rig.grab();
    assert!(report.info.signal, "no 'no signal' for one -1");
    assert_ne!(
        report.info.change,
        FrameChange::Unchanged,
        "read again at the next tick, not 500 ms later"
    );
    assert!(rig.encode(false).h264.is_some());
    rig.assert_library_files_untouched();
    rig.stop();
    assert_all_freed(&rig.dir);
}
