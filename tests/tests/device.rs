//! `--backend device` against the C mock of the vendor video library (`ffi/mock/`), loaded by
//! the real binary through dlopen, with every device path (state files, watchdog, GPIO, HID)
//! under a scratch directory. The mock serves the replay recording, so frames decode.

use std::path::Path;
use std::time::{Duration, Instant};

use nanokvm_e2e::ws::{Msg, WsClient};
use nanokvm_e2e::{block_on, h264, http, run_daemon, Daemon, TempDir};
use nanokvm_ffi::mock::{self, Venc};

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
    let dir = scratch.path();
    let lib = dir.join("dl_lib");
    mock::install(&lib, Venc::WithRequestIdr);
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
    assert!(
        d.output().contains("vendor video library loaded from"),
        "{}",
        d.output()
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
        "has kvmv_hdmi_signal_active",
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
