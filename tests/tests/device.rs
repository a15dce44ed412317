//! `--backend device` against the C mock of the vendor video library (`ffi/mock/`), loaded by
//! the real binary through dlopen, with every device path (state files, watchdog, GPIO, HID)
//! under a scratch directory. The mock serves the replay recording, so frames decode.

use std::path::Path;
use std::time::{Duration, Instant};

use nanokvm_e2e::ws::{Msg, WsClient};
use nanokvm_e2e::{block_on, h264, http, run_daemon, Daemon, TempDir};
use nanokvm_ffi::mock::{self, Generation, Venc};

/// Polls `what` until it holds; panics after `d` (generous: a loaded machine is slow, and
/// nothing here measures time).
fn wait_for(d: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + d;
    while !cond() {
        assert!(Instant::now() < deadline, "waited {d:?} for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The device's files under `scratch`: the vendor library, `/kvmapp/kvm`, the watchdog flag,
/// the GPIO tree of a beta board; returns the config file.
fn lay_out_device(scratch: &TempDir) -> std::path::PathBuf {
    lay_out_device_of(scratch, Generation::V2_5, Venc::WithRequestIdr)
}

/// As [`lay_out_device`], with the mock of one library generation.
fn lay_out_device_of(scratch: &TempDir, generation: Generation, venc: Venc) -> std::path::PathBuf {
    let dir = scratch.path();
    let lib = dir.join("dl_lib");
    mock::install_generation(&lib, generation, venc);
    std::fs::copy(h264::replay_file(), lib.join("mock_stream.h264")).expect("recording");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc/kvm")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::write(root.join("etc/kvm/watchdog"), "").unwrap();
    for gpio in [503, 504, 505] {
        let d = dir.join(format!("gpio/sys/class/gpio/gpio{gpio}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("value"), "0").unwrap();
    }
    std::fs::create_dir_all(dir.join("dev")).unwrap();
    let p = |rel: &str| dir.join(rel).display().to_string();
    scratch.write(
        "nanokvmd.toml",
        &format!(
            "[device]\nlibrary_dir = {:?}\nroot = {:?}\n\
             [atx]\nvariant = \"beta\"\ngpio_root = {:?}\n\
             [hid]\nkeyboard = {:?}\nmouse = {:?}\nabsolute = {:?}\nleds = {:?}\n",
            p("dl_lib"),
            p("root"),
            p("gpio"),
            p("dev/hidg0"),
            p("dev/hidg1"),
            p("dev/hidg2"),
            p("dev/hidg0"),
        ),
    )
}

fn state_file(root: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(root.join("kvmapp/kvm").join(name))
        .ok()
        .map(|s| s.trim().to_string())
}

#[test]
fn the_device_backend_streams_decodable_h264_from_the_vendor_library() {
    let scratch = TempDir::new("device");
    let config = lay_out_device(&scratch);
    let root = scratch.path().join("root");
    let mut d = Daemon::start_backend("device", &["--config", &config.display().to_string()]);
    // stderr is read by its own thread: the line may come just after "listening".
    wait_for(
        Duration::from_secs(5),
        "the library's start-up line",
        || d.output().contains("vendor video library loaded from"),
    );
    block_on(async {
        let (mut c, _, hello_at) = WsClient::connect_hello(d.addr(), true).await;
        let status = c
            .recv_until(Duration::from_secs(5), "VideoStatus", |m| {
                matches!(m, Msg::VideoStatus(_))
            })
            .await;
        eprintln!("device: {}", status.describe());
        match status {
            Msg::VideoStatus(s) => assert!(
                s.signal && (s.source_width, s.width) == (1280, 1280),
                "{s:?}"
            ),
            _ => unreachable!(),
        }
        let first = c.recv_video(Duration::from_secs(5)).await;
        eprintln!(
            "device: first {} after {:?}",
            first.describe(),
            first.at.saturating_duration_since(hello_at)
        );
        assert!(first.header.keyframe, "{}", first.describe());
        h264::check_keyframe_au(&first.data).unwrap_or_else(|e| panic!("{e}"));
        let mut frames = vec![first];
        frames.extend(c.collect_video(Duration::from_millis(1500)).await);
        assert!(frames.len() >= 10, "only {} frames in 1.5 s", frames.len());
        let mut dec = h264::Decoder::new();
        for f in &frames {
            let size = dec
                .decode_picture(&f.data)
                .unwrap_or_else(|e| panic!("{}: {e}", f.describe()));
            assert_eq!(size, (1280, 720), "{}", f.describe());
        }
        // A second viewer gets its own IDR at once, not at the recording's next one.
        let (mut late, _, at) = WsClient::connect_hello(d.addr(), true).await;
        let first = late.recv_video(Duration::from_secs(5)).await;
        assert!(first.header.keyframe, "{}", first.describe());
        eprintln!(
            "device: second viewer's first frame after {:?}",
            first.at.saturating_duration_since(at)
        );
    });
    // The OLED's files and the watchdog.
    wait_for(Duration::from_secs(10), "now_fps", || {
        state_file(&root, "now_fps").is_some()
    });
    // The settings in force, as the stock server writes them; `state`, `width` and `height`
    // are the vendor library's own (the mock writes none of them).
    for (name, value) in [
        ("type", "h264"),
        ("qlty", "2000"),
        ("res", "720"),
        ("fps", "30"),
    ] {
        assert_eq!(state_file(&root, name).as_deref(), Some(value), "{name}");
    }
    for name in ["state", "width", "height"] {
        assert_eq!(state_file(&root, name), None, "nanokvmd wrote {name}");
    }
    let fed = root.join("tmp/nanokvm_wd");
    wait_for(Duration::from_secs(5), "the watchdog file", || fed.exists());
    std::fs::remove_file(&fed).unwrap(); // as kvm_system does every second
    wait_for(Duration::from_secs(5), "the watchdog fed again", || {
        fed.exists()
    });
    // One hardware encoder, kept on H.264: no MJPEG on the device.
    let r = http::get(d.addr(), "/api/stream/mjpeg");
    assert_eq!(r.status, 503, "{}", r.summary());
    let status = d.stop();
    assert!(status.success(), "{status:?}\n{}", d.output());
    let stats = mock::stats_file(&scratch.path().join("dl_lib")).expect("mock_stats.txt");
    let get = |k: &str| stats.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
    assert!(get("buffers").unwrap_or(0) >= 10, "{stats:?}");
    assert_eq!(
        get("buffers"),
        get("frees"),
        "every buffer freed: {stats:?}"
    );
    assert_eq!(
        (get("held"), get("bad_frees"), get("deinits")),
        (Some(0), Some(0), Some(1)),
        "{stats:?}"
    );
}

#[test]
fn a_missing_vendor_library_stops_start_up_with_a_clear_error() {
    let scratch = TempDir::new("device-missing");
    let lib = scratch.path().join("dl_lib");
    std::fs::create_dir_all(&lib).unwrap();
    let (lib_arg, data) = (
        lib.display().to_string(),
        scratch.path().join("data").display().to_string(),
    );
    let out = run_daemon(
        &[
            "--backend",
            "device",
            "--vendor-lib-dir",
            &lib_arg,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
        ],
        Duration::from_secs(10),
    );
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(out.code().is_some(), "an exit, not a crash: {out:?}");
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains(&format!("{lib_arg}/libkvm.so")) && text.contains("--vendor-lib-dir"),
        "{text}"
    );
}

/// `nanokvmd doctor` on the same scratch device: the vendor library's symbols, the board's
/// lines, and a failure exit while the USB gadget is missing, success once it is there.
#[test]
fn doctor_reports_what_the_device_offers_and_fails_on_what_is_missing() {
    let scratch = TempDir::new("device-doctor");
    let config = lay_out_device(&scratch);
    let root = scratch.path().join("root");
    let data = scratch.path().join("data");
    let doctor = || {
        let out = std::process::Command::new(nanokvm_e2e::daemon_bin())
            .args(["doctor", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("run nanokvmd doctor");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, report) = doctor();
    assert_eq!(code, Some(1), "{report}");
    for needle in [
        "[ok  ] library",
        "no kvmv_hdmi_signal_active: no signal flag",
        "board beta (configured)",
        "power button: gpio503 = 0",
        "[FAIL] usb",
        "not ready",
    ] {
        assert!(report.contains(needle), "{needle:?} not in\n{report}");
    }
    let gadget = root.join("sys/kernel/config/usb_gadget/g0");
    for f in ["hid.GS0", "hid.GS1", "hid.GS2"] {
        std::fs::create_dir_all(gadget.join("functions").join(f)).unwrap();
    }
    std::fs::write(gadget.join("UDC"), "4340000.usb\n").unwrap();
    for n in 0..3 {
        std::fs::write(scratch.path().join(format!("dev/hidg{n}")), "").unwrap();
    }
    let (code, report) = doctor();
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("ready: 0 missing"), "{report}");
}

/// Every generation of the vendor library the NanoKVM has shipped (and the untagged newest):
/// the real binary loads it, starts it in the stock order, streams H.264 that decodes, and
/// stops it with every buffer freed.
#[test]
fn every_library_generation_loads_starts_in_the_stock_order_and_streams() {
    for generation in Generation::ALL {
        // v1.3.0 shipped no libvenc.so.
        let venc = match generation {
            Generation::V1_3 => Venc::Absent,
            _ => Venc::WithRequestIdr,
        };
        let scratch = TempDir::new(&format!("device-gen{}", generation.define()));
        let config = lay_out_device_of(&scratch, generation, venc);
        let root = scratch.path().join("root");
        let mut d = Daemon::start_backend("device", &["--config", &config.display().to_string()]);
        wait_for(
            Duration::from_secs(5),
            "the library's start-up line",
            || d.output().contains("exports like"),
        );
        let out = d.output();
        assert!(out.contains("exports like"), "{generation:?}: {out}");
        let loaded = out
            .lines()
            .find(|l| l.contains("exports like"))
            .unwrap_or_default();
        let has_signal_query = loaded.contains("kvmv_hdmi_signal_active");
        assert_eq!(
            has_signal_query,
            generation == Generation::Newest,
            "{generation:?}: {out}"
        );
        block_on(async {
            let (mut c, _, _) = WsClient::connect_hello(d.addr(), true).await;
            let first = c.recv_video(Duration::from_secs(10)).await;
            assert!(
                first.header.keyframe,
                "{generation:?}: {}",
                first.describe()
            );
            // SPS + PPS + IDR in one access unit, also where the library lends the parameter
            // sets separately (v1.3, 2.2.x).
            h264::check_keyframe_au(&first.data).unwrap_or_else(|e| panic!("{generation:?}: {e}"));
            let mut frames = vec![first];
            frames.extend(c.collect_video(Duration::from_millis(1000)).await);
            assert!(frames.len() >= 5, "{generation:?}: {} frames", frames.len());
            let mut dec = h264::Decoder::new();
            for f in &frames {
                let size = dec
                    .decode_picture(&f.data)
                    .unwrap_or_else(|e| panic!("{generation:?}: {}: {e}", f.describe()));
                assert_eq!(size, (1280, 720), "{generation:?}: {}", f.describe());
            }
        });
        let status = d.stop();
        assert!(
            status.success(),
            "{generation:?}: {status:?}\n{}",
            d.output()
        );
        let lib = scratch.path().join("dl_lib");
        let calls = mock::calls_file(&lib).expect("mock_calls.txt");
        let labels: Vec<String> = calls.iter().map(|c| c.label()).collect();
        let first_read = labels
            .iter()
            .position(|l| l.starts_with("kvmv_read_img"))
            .unwrap_or_else(|| panic!("{generation:?}: no read in {labels:?}"));
        let start: Vec<&str> = labels[..first_read]
            .iter()
            .map(String::as_str)
            .filter(|l| l.starts_with("kvmv_"))
            .collect();
        match generation {
            // No HDMI control to call.
            Generation::V1_3 => assert_eq!(start, ["kvmv_init(0)"], "{labels:?}"),
            _ => {
                assert_eq!(
                    start,
                    [
                        "kvmv_init(0)",
                        "kvmv_hdmi_control(0)",
                        "kvmv_hdmi_control(1)"
                    ],
                    "{generation:?}: {labels:?}"
                );
                let at = |label: &str| {
                    calls
                        .iter()
                        .find(|c| c.label() == label)
                        .map(|c| c.at_us)
                        .unwrap_or_default()
                };
                let pause = at("kvmv_hdmi_control(1)") - at("kvmv_hdmi_control(0)");
                assert!(
                    pause >= 10_000,
                    "{generation:?}: {pause} µs between off and on"
                );
            }
        }
        assert_eq!(
            labels
                .iter()
                .filter(|l| l.starts_with("kvmv_deinit"))
                .count(),
            1,
            "{generation:?}: {labels:?}"
        );
        let last_kvmv = labels.iter().rev().find(|l| l.starts_with("kvmv_"));
        assert_eq!(
            last_kvmv.map(String::as_str),
            Some("kvmv_deinit"),
            "{generation:?}: {labels:?}"
        );
        let stats = mock::stats_file(&lib).expect("mock_stats.txt");
        let get = |k: &str| stats.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(get("buffers"), get("frees"), "{generation:?}: {stats:?}");
        assert_eq!(get("held"), Some(0), "{generation:?}: {stats:?}");
        assert_eq!(
            state_file(&root, "state"),
            None,
            "{generation:?}: nanokvmd wrote state"
        );
    }
}
