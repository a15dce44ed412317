//! The front panel end to end: the real daemon drives a scratch GPIO tree laid out like sysfs
//! (`[atx] gpio_root` in its config), and the test plays the board: it records every pulse
//! on the button lines with a 1 ms poll and flips the LED lines. A last test powers the
//! simulated target off and on through its own tree.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nanokvm_e2e::proto::{AtxAction, AtxKind, AtxState, ClientMsg};
use nanokvm_e2e::ws::{Msg, WsClient};
use nanokvm_e2e::{block_on, http, Daemon, TempDir};

const POWER: u16 = 503;
const RESET: u16 = 507;
const POWER_LED: u16 = 504;
const HDD_LED: u16 = 505;
/// How far a pulse may be off its nominal length.
const PULSE_TOLERANCE: Duration = Duration::from_millis(50);

fn value_path(root: &Path, gpio: u16) -> PathBuf {
    root.join(format!("sys/class/gpio/gpio{gpio}/value"))
}

/// An alpha board's front panel (the one with an HDD LED): buttons released, power LED lit.
fn scratch_tree(dir: &TempDir) -> PathBuf {
    let root = dir.path().join("root");
    for (n, v) in [(POWER, "0"), (RESET, "0"), (POWER_LED, "0"), (HDD_LED, "1")] {
        let p = value_path(&root, n);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, v).unwrap();
    }
    std::fs::create_dir_all(root.join("etc/kvm")).unwrap();
    std::fs::write(root.join("etc/kvm/hw"), "alpha\n").unwrap();
    root
}

/// The daemon (sim backend for the video) with its front panel on `root`.
fn start_with_gpio_root(dir: &TempDir, root: &Path) -> Daemon {
    let config = dir.write(
        "nanokvmd.toml",
        &format!("[atx]\ngpio_root = {:?}\n", root.display().to_string()),
    );
    Daemon::start(&["--config", config.to_str().unwrap()])
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Pulse {
    gpio: u16,
    ms: f64,
}

/// Polls the button lines every millisecond and records each pulse (a `1` until a `0`).
struct PulseRecorder {
    stop: Arc<AtomicBool>,
    pulses: Arc<Mutex<Vec<Pulse>>>,
    thread: Option<JoinHandle<()>>,
}

impl PulseRecorder {
    fn start(root: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let pulses = Arc::new(Mutex::new(Vec::new()));
        let lines = [POWER, RESET].map(|n| (n, value_path(root, n)));
        let thread = {
            let (stop, pulses) = (stop.clone(), pulses.clone());
            std::thread::spawn(move || {
                let mut since: [Option<Instant>; 2] = [None, None];
                while !stop.load(Ordering::Relaxed) {
                    for (i, (gpio, path)) in lines.iter().enumerate() {
                        let pressed = std::fs::read(path).is_ok_and(|v| v.first() == Some(&b'1'));
                        match (since[i], pressed) {
                            (None, true) => since[i] = Some(Instant::now()),
                            (Some(t), false) => {
                                let ms = t.elapsed().as_secs_f64() * 1000.0;
                                pulses.lock().unwrap().push(Pulse { gpio: *gpio, ms });
                                since[i] = None;
                            }
                            _ => {}
                        }
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        Self {
            stop,
            pulses,
            thread: Some(thread),
        }
    }

    fn take(&self) -> Vec<Pulse> {
        std::mem::take(&mut self.pulses.lock().unwrap())
    }
}

impl Drop for PulseRecorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn atx_json(d: &Daemon) -> serde_json::Value {
    let r = http::get(d.addr(), "/api/atx");
    assert_eq!(r.status, 200, "{}", r.summary());
    serde_json::from_slice(&r.body).unwrap()
}

/// Waits (bounded) until no press runs, then a little more for the recorder to see the end.
fn wait_idle(d: &Daemon, within: Duration) {
    let deadline = Instant::now() + within;
    while atx_json(d)["busy"] != serde_json::Value::Null {
        assert!(
            Instant::now() < deadline,
            "a press still runs after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(30));
}

fn assert_one_pulse(pulses: &[Pulse], gpio: u16, ms: f64) {
    assert_eq!(pulses.len(), 1, "exactly one pulse expected: {pulses:?}");
    let p = pulses[0];
    assert_eq!(p.gpio, gpio, "{pulses:?}");
    let off = (p.ms - ms).abs();
    eprintln!("gpio{gpio}: pulse of {:.1} ms (nominal {ms} ms)", p.ms);
    assert!(
        off <= PULSE_TOLERANCE.as_secs_f64() * 1000.0,
        "pulse of {:.1} ms, expected {ms} ms ± {PULSE_TOLERANCE:?}",
        p.ms
    );
}

#[test]
fn each_action_is_exactly_one_pulse_of_its_length() {
    let dir = TempDir::new("atx-pulses");
    let root = scratch_tree(&dir);
    let mut d = start_with_gpio_root(&dir, &root);
    let rec = PulseRecorder::start(&root);

    let cases: [(&str, &str, u16, f64); 4] = [
        ("/api/atx/power", "", POWER, 800.0),
        ("/api/atx/reset", "{}", RESET, 800.0),
        ("/api/atx/power-long", r#"{"ms": 1500}"#, POWER, 1500.0),
        ("/api/atx/power-long", r#"{"ms": 1000}"#, POWER, 1000.0),
    ];
    for (path, body, gpio, ms) in cases {
        let r = http::post_json(d.addr(), path, body);
        assert_eq!(r.status, 202, "{path}: {}", r.summary());
        let started: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(started["ms"], ms as u64, "{}", r.text());
        wait_idle(&d, Duration::from_secs(5));
        assert_one_pulse(&rec.take(), gpio, ms);
    }

    // The same over the WebSocket, answered with AtxDone.
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(d.addr(), false).await;
        let (action, ok, message) = press_over_ws(&mut ws, AtxAction::Reset).await;
        assert_eq!((action, ok), (AtxKind::Reset, true), "{message}");
    });
    std::thread::sleep(Duration::from_millis(30));
    assert_one_pulse(&rec.take(), RESET, 800.0);
    d.assert_running();
}

#[test]
fn a_press_in_progress_is_never_doubled() {
    let dir = TempDir::new("atx-busy");
    let root = scratch_tree(&dir);
    let mut d = start_with_gpio_root(&dir, &root);
    let rec = PulseRecorder::start(&root);

    let r = http::post_json(d.addr(), "/api/atx/power-long", r#"{"ms": 1500}"#);
    assert_eq!(r.status, 202, "{}", r.summary());
    assert_eq!(atx_json(&d)["busy"], "power_long");
    for path in ["/api/atx/power", "/api/atx/reset", "/api/atx/power-long"] {
        let r = http::post_json(d.addr(), path, "");
        assert_eq!(r.status, 409, "{path}: {}", r.summary());
        assert!(r.text().contains("in progress"), "{}", r.text());
    }
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(d.addr(), false).await;
        let (_, ok, message) = press_over_ws(&mut ws, AtxAction::Power).await;
        assert!(!ok && message.contains("in progress"), "{message}");
    });
    wait_idle(&d, Duration::from_secs(5));
    assert_one_pulse(&rec.take(), POWER, 1500.0);
    d.assert_running();
}

/// Sends `action` over the WebSocket and returns the `AtxDone` that answers it.
async fn press_over_ws(ws: &mut WsClient, action: AtxAction) -> (AtxKind, bool, String) {
    ws.send(&ClientMsg::Atx(action)).await;
    let done = ws
        .recv_until(Duration::from_secs(3), "AtxDone", |m| {
            matches!(m, Msg::AtxDone { .. })
        })
        .await;
    match done {
        Msg::AtxDone {
            action,
            ok,
            message,
        } => (action, ok, message),
        _ => unreachable!(),
    }
}

/// Waits for an `Atx` message matching `pred`; returns it and when it arrived.
async fn recv_atx(ws: &mut WsClient, what: &str, pred: impl Fn(&AtxState) -> bool) -> Instant {
    ws.recv_until(
        Duration::from_secs(3),
        what,
        |m| matches!(m, Msg::Atx(s) if pred(s)),
    )
    .await;
    Instant::now()
}

#[test]
fn led_changes_reach_a_websocket_client_within_100_ms() {
    let dir = TempDir::new("atx-leds");
    let root = scratch_tree(&dir);
    let mut d = start_with_gpio_root(&dir, &root);
    let power_led = value_path(&root, POWER_LED);
    let hdd_led = value_path(&root, HDD_LED);
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(d.addr(), false).await;
        recv_atx(&mut ws, "the power LED lit", |s| {
            s.power_led && s.hdd_led == Some(false)
        })
        .await;
        let mut worst = Duration::ZERO;
        for round in 0..6 {
            let lit = round % 2 == 1;
            let t0 = Instant::now();
            std::fs::write(&power_led, if lit { "0" } else { "1" }).unwrap();
            let t1 = recv_atx(&mut ws, "the power LED change", |s| s.power_led == lit).await;
            worst = worst.max(t1 - t0);
        }
        eprintln!("power LED: file write to Atx message, worst of 6: {worst:?}");
        assert!(worst < Duration::from_millis(100), "{worst:?}");

        // The HDD LED: a blink shows as activity, and goes dark again on its own.
        let t0 = Instant::now();
        std::fs::write(&hdd_led, "0").unwrap();
        let t1 = recv_atx(&mut ws, "HDD activity", |s| s.hdd_led == Some(true)).await;
        std::fs::write(&hdd_led, "1").unwrap();
        eprintln!("HDD LED: file write to Atx message: {:?}", t1 - t0);
        assert!(t1 - t0 < Duration::from_millis(100), "{:?}", t1 - t0);
        recv_atx(&mut ws, "HDD idle", |s| s.hdd_led == Some(false)).await;
    });
    // Clients are pushed changes; GET shows the same.
    assert_eq!(atx_json(&d)["power_led"], true);
    d.assert_running();
}

#[test]
fn sigterm_or_sigint_during_a_long_press_releases_the_line() {
    for signal in ["TERM", "INT"] {
        let dir = TempDir::new("atx-signal");
        let root = scratch_tree(&dir);
        let mut d = start_with_gpio_root(&dir, &root);
        let power = value_path(&root, POWER);
        let r = http::post_json(d.addr(), "/api/atx/power-long", r#"{"ms": 20000}"#);
        assert_eq!(r.status, 202, "{}", r.summary());
        assert_eq!(std::fs::read_to_string(&power).unwrap(), "1", "pressed");
        std::thread::sleep(Duration::from_millis(200));
        let t0 = Instant::now();
        d.signal(signal);
        let status = d
            .wait_exit(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("still running 5 s after SIG{signal}"));
        assert!(status.success(), "SIG{signal}: {status:?}");
        assert_eq!(
            std::fs::read_to_string(&power).unwrap(),
            "0",
            "the button is still pressed after SIG{signal}. Output:\n{}",
            d.output()
        );
        eprintln!(
            "exit {:?} after SIG{signal}, the line released",
            t0.elapsed()
        );
        assert!(d.output().contains("cut short"), "{}", d.output());
    }
}

#[test]
fn the_board_variant_comes_from_etc_kvm_hw() {
    let dir = TempDir::new("atx-beta");
    let root = scratch_tree(&dir);
    // A Cube: reset on gpio505, no HDD LED.
    std::fs::write(root.join("etc/kvm/hw"), "beta\n").unwrap();
    std::fs::write(value_path(&root, 505), "0").unwrap();
    let mut d = start_with_gpio_root(&dir, &root);
    let state = atx_json(&d);
    assert_eq!(state["hdd_led"], serde_json::Value::Null, "{state}");
    let r = http::post_json(d.addr(), "/api/atx/reset", "");
    assert_eq!(r.status, 202, "{}", r.summary());
    assert_eq!(
        std::fs::read_to_string(value_path(&root, 505)).unwrap(),
        "1"
    );
    assert_eq!(
        std::fs::read_to_string(value_path(&root, RESET)).unwrap(),
        "0"
    );
    wait_idle(&d, Duration::from_secs(5));
    assert_eq!(
        std::fs::read_to_string(value_path(&root, 505)).unwrap(),
        "0"
    );
    d.assert_running();
}

#[test]
fn missing_gpio_files_are_a_clear_error_and_the_daemon_goes_on() {
    let dir = TempDir::new("atx-missing");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut d = start_with_gpio_root(&dir, &empty);
    for path in ["/api/atx/power", "/api/atx/reset", "/api/atx/power-long"] {
        let r = http::post_json(d.addr(), path, "");
        assert_eq!(r.status, 503, "{path}: {}", r.summary());
        assert!(
            r.text().contains("sys/class/gpio/gpio50") && r.text().contains("no such file"),
            "{}",
            r.text()
        );
    }
    let state = atx_json(&d);
    assert_eq!(state["busy"], serde_json::Value::Null, "{state}");
    // Nothing was created: a missing line is not pretended into existence.
    assert!(std::fs::read_dir(&empty).unwrap().next().is_none());
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(d.addr(), true).await;
        let (_, ok, message) = press_over_ws(&mut ws, AtxAction::Power).await;
        assert!(!ok && message.contains("gpio503"), "{message}");
        ws.recv_video(Duration::from_secs(5)).await;
    });
    d.assert_running();
}

#[test]
fn bad_requests_are_refused_and_nothing_is_pressed() {
    let dir = TempDir::new("atx-bad");
    let root = scratch_tree(&dir);
    let mut d = start_with_gpio_root(&dir, &root);
    let rec = PulseRecorder::start(&root);
    let cases: [(&str, &str, &str, u16, &str); 8] = [
        (
            "POST",
            "/api/atx/shutdown",
            "",
            404,
            "unknown front-panel action",
        ),
        (
            "POST",
            "/api/atx/power-long",
            r#"{"ms": 999}"#,
            400,
            "1000..=30000",
        ),
        (
            "POST",
            "/api/atx/power-long",
            r#"{"ms": 30001}"#,
            400,
            "out of range",
        ),
        ("POST", "/api/atx/power-long", r#"{"ms": -5}"#, 400, "ms"),
        (
            "POST",
            "/api/atx/power-long",
            r#"{"ms": 2000, "x": 1}"#,
            400,
            "unknown field",
        ),
        ("POST", "/api/atx/power", "{not json", 400, "JSON"),
        (
            "POST",
            "/api/atx/reset",
            r#"{"ms": 2000}"#,
            400,
            "no parameters",
        ),
        ("GET", "/api/atx/power", "", 405, "POST"),
    ];
    for (method, path, body, status, says) in cases {
        let r = http::request(
            d.addr(),
            method,
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
            http::TIMEOUT,
        )
        .unwrap();
        assert_eq!(r.status, status, "{method} {path} {body}: {}", r.summary());
        assert!(
            r.text().contains(says),
            "{method} {path} {body}: {}",
            r.text()
        );
    }
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(d.addr(), false).await;
        let (action, ok, message) = press_over_ws(&mut ws, AtxAction::PowerLong { ms: 50 }).await;
        assert_eq!((action, ok), (AtxKind::PowerLong, false), "{message}");
        assert!(message.contains("out of range"), "{message}");
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rec.take(), vec![], "nothing may be pressed");
    assert_eq!(
        std::fs::read_to_string(value_path(&root, POWER)).unwrap(),
        "0"
    );
    d.assert_running();
}

/// Waits until both a `VideoStatus` matching `video` and an `Atx` matching `atx` arrived, in
/// either order.
async fn recv_video_and_atx(
    ws: &mut WsClient,
    what: &str,
    video: impl Fn(&nanokvm_e2e::proto::VideoStatus) -> bool,
    atx: impl Fn(&AtxState) -> bool,
) {
    let (mut video_seen, mut atx_seen) = (false, false);
    ws.recv_until(Duration::from_secs(5), what, |m| {
        match m {
            Msg::VideoStatus(s) if video(s) => video_seen = true,
            Msg::Atx(s) if atx(s) => atx_seen = true,
            _ => {}
        }
        video_seen && atx_seen
    })
    .await;
}

fn sim_power(d: &Daemon) -> String {
    let r = http::get(d.addr(), "/api/sim/state");
    assert_eq!(r.status, 200, "{}", r.summary());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["power"].as_str().unwrap_or_default().to_string()
}

#[test]
fn the_simulated_target_is_forced_off_and_boots_again() {
    let mut d = Daemon::start(&[]);
    assert_eq!(sim_power(&d), "on");
    block_on(async {
        let (mut ws, _, _) = WsClient::connect_hello(d.addr(), true).await;
        recv_video_and_atx(
            &mut ws,
            "signal and the power LED lit",
            |s| s.signal,
            |s| s.power_led,
        )
        .await;

        // Force off: the target loses power while the button is still held.
        let r = http::post_json(d.addr(), "/api/atx/power-long", r#"{"ms": 1000}"#);
        assert_eq!(r.status, 202, "{}", r.summary());
        recv_video_and_atx(
            &mut ws,
            "no signal and the power LED dark",
            |s| !s.signal,
            |s| !s.power_led,
        )
        .await;
        assert_eq!(sim_power(&d), "off");
        recv_atx(&mut ws, "the press over", |s| s.busy.is_none()).await;

        // A short press boots it: the boot screen (800x600), then the console (1920x1080).
        let r = http::post_json(d.addr(), "/api/atx/power", "");
        assert_eq!(r.status, 202, "{}", r.summary());
        recv_video_and_atx(
            &mut ws,
            "the boot screen and the power LED lit",
            |s| s.signal && s.source_width == 800,
            |s| s.power_led,
        )
        .await;
        assert_eq!(sim_power(&d), "booting");
        ws.recv_until(
            Duration::from_secs(5),
            "the console after booting",
            |m| matches!(m, Msg::VideoStatus(s) if s.signal && s.source_width == 1920),
        )
        .await;
        assert_eq!(sim_power(&d), "on");
        ws.recv_video(Duration::from_secs(3)).await;
    });
    d.assert_running();
}
