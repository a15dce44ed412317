//! The device backend on the media thread, against the C mock of the vendor library through
//! the real dlopen path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nanokvm_ffi::mock::{self, Control, Venc};
use nanokvm_ffi::VideoLibrary;
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
        let dir =
            std::env::temp_dir().join(format!("nanokvmd-device-test-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        mock::install(&dir.join("dl_lib"), venc);
        let library = VideoLibrary::open(&dir.join("dl_lib")).unwrap();
        let ctl = Control::open(&dir.join("dl_lib"));
        let source = DeviceSource::new(library, StateFiles::new(&dir));
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
    let mut rig = Rig::start("signal", Venc::WithRequestIdr);
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
