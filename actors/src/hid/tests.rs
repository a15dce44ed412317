use super::*;

const A: u8 = 0x04;
const B: u8 = 0x05;
const SHIFT: u8 = 0xE1;

/// A core with all three devices open and their first "all released" reports written.
fn ready() -> HidCore {
    let mut core = HidCore::new();
    for dev in Device::ALL {
        assert!(core.wants_open(dev, 0));
        core.opened(dev, 0, true);
    }
    for dev in Device::ALL {
        let first = written(&mut core, dev, 0);
        assert_eq!(first.len(), 1, "{dev:?} starts with one release report");
        assert!(first[0].iter().all(|&b| b == 0));
    }
    core
}

/// Writes everything queued for `dev` and returns it.
fn written(core: &mut HidCore, dev: Device, now: Micros) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(r) = core.next_write(dev, now) {
        out.push(r.to_vec());
        core.written(dev, now, WriteOutcome::Written);
    }
    out
}

fn keys(core: &mut HidCore, now: Micros) -> Vec<Vec<u8>> {
    written(core, Device::Keyboard, now)
}

#[test]
fn key_down_and_up_become_reports_with_their_latency() {
    let mut core = ready();
    core.input(100, 1, 90, Input::KeyDown(SHIFT));
    core.input(100, 1, 90, Input::KeyDown(A));
    assert_eq!(
        core.next_write(Device::Keyboard, 100),
        Some(&[2, 0, 0, 0, 0, 0, 0, 0][..])
    );
    assert_eq!(
        core.written(Device::Keyboard, 150, WriteOutcome::Written),
        Some(60)
    );
    assert_eq!(keys(&mut core, 150), vec![vec![2, 0, A, 0, 0, 0, 0, 0]]);
    core.input(200, 1, 200, Input::KeyUp(A));
    core.input(200, 1, 200, Input::KeyUp(SHIFT));
    assert_eq!(
        keys(&mut core, 200),
        vec![vec![2, 0, 0, 0, 0, 0, 0, 0], vec![0; 8]]
    );
    // A repeated key-down changes nothing and sends nothing.
    core.input(300, 1, 300, Input::KeyDown(B));
    core.input(310, 1, 310, Input::KeyDown(B));
    assert_eq!(keys(&mut core, 310).len(), 1);
}

#[test]
fn two_clients_type_into_one_report() {
    let mut core = ready();
    core.input(0, 1, 0, Input::KeyDown(A));
    core.input(0, 2, 0, Input::KeyDown(B));
    core.input(0, 2, 0, Input::KeyDown(A));
    assert_eq!(
        keys(&mut core, 0).last().unwrap(),
        &vec![0, 0, A, B, 0, 0, 0, 0]
    );
    // Client 1 lets go of A, but client 2 still holds it.
    core.input(1, 1, 1, Input::KeyUp(A));
    assert_eq!(keys(&mut core, 1), Vec::<Vec<u8>>::new());
    core.leave(2);
    assert_eq!(keys(&mut core, 2), vec![vec![0; 8]]);
}

#[test]
fn a_client_that_leaves_has_its_keys_and_buttons_released() {
    let mut core = ready();
    core.input(0, 7, 0, Input::KeyDown(A));
    core.input(
        0,
        7,
        0,
        Input::PointerAbs {
            x: 100,
            y: 200,
            buttons: 1,
            wheel: 0,
        },
    );
    core.input(
        0,
        7,
        0,
        Input::PointerRel {
            dx: 0,
            dy: 0,
            buttons: 2,
            wheel: 0,
        },
    );
    keys(&mut core, 0);
    written(&mut core, Device::Absolute, 0);
    written(&mut core, Device::Mouse, 0);
    core.leave(7);
    assert_eq!(keys(&mut core, 1), vec![vec![0; 8]]);
    assert_eq!(
        written(&mut core, Device::Absolute, 1),
        vec![vec![0, 100, 0, 200, 0, 0]]
    );
    assert_eq!(written(&mut core, Device::Mouse, 1), vec![vec![0; 4]]);
}

#[test]
fn a_silent_client_is_released_after_one_second_but_keep_alives_hold() {
    let mut core = ready();
    core.input(0, 1, 0, Input::KeyDown(A));
    keys(&mut core, 0);
    assert_eq!(core.next_wakeup(), Some(KEEP_ALIVE_US));
    core.input(600_000, 1, 600_000, Input::KeepAlive);
    core.tick(1_200_000);
    assert_eq!(
        keys(&mut core, 1_200_000),
        Vec::<Vec<u8>>::new(),
        "kept alive"
    );
    core.tick(1_600_000);
    assert_eq!(
        keys(&mut core, 1_600_000),
        vec![vec![0; 8]],
        "released after 1 s of silence"
    );
    assert_eq!(core.next_wakeup(), None, "nothing left to watch");
}

#[test]
fn release_all_lets_go_of_keys_and_buttons() {
    let mut core = ready();
    core.input(0, 1, 0, Input::KeyDown(SHIFT));
    core.input(
        0,
        1,
        0,
        Input::PointerRel {
            dx: 5,
            dy: 0,
            buttons: 1,
            wheel: 0,
        },
    );
    keys(&mut core, 0);
    written(&mut core, Device::Mouse, 0);
    core.input(10, 1, 10, Input::ReleaseAll);
    assert_eq!(keys(&mut core, 10), vec![vec![0; 8]]);
    assert_eq!(written(&mut core, Device::Mouse, 10), vec![vec![0; 4]]);
}

#[test]
fn pointer_reports_are_clamped_split_and_deduplicated() {
    let mut core = ready();
    core.input(
        0,
        1,
        0,
        Input::PointerAbs {
            x: 40000,
            y: 5,
            buttons: 0xFF,
            wheel: -128,
        },
    );
    assert_eq!(
        written(&mut core, Device::Absolute, 0),
        vec![vec![0x1F, 0xFF, 0x7F, 5, 0, 0x81]]
    );
    core.input(
        0,
        1,
        0,
        Input::PointerAbs {
            x: 32767,
            y: 5,
            buttons: 0x1F,
            wheel: 0,
        },
    );
    assert!(
        written(&mut core, Device::Absolute, 0).is_empty(),
        "same state"
    );
    core.input(
        0,
        1,
        0,
        Input::PointerRel {
            dx: 200,
            dy: -3,
            buttons: 0,
            wheel: 0,
        },
    );
    let rel = written(&mut core, Device::Mouse, 0);
    assert_eq!(rel.len(), 2);
    let dx: i32 = rel.iter().map(|r| i32::from(r[1] as i8)).sum();
    assert_eq!(dx, 200);
}

#[test]
fn a_full_device_is_retried_and_its_queue_is_bounded() {
    let mut core = ready();
    core.input(0, 1, 0, Input::KeyDown(A));
    assert!(core.next_write(Device::Keyboard, 0).is_some());
    core.written(Device::Keyboard, 0, WriteOutcome::WouldBlock);
    assert_eq!(core.status().keyboard, HidLink::Retrying);
    assert_eq!(
        core.next_write(Device::Keyboard, 1000),
        None,
        "waits for the retry"
    );
    assert_eq!(core.next_wakeup(), Some(RETRY_US));
    for i in 0..200u8 {
        core.input(10, 1, 10, Input::KeyDown(if i % 2 == 0 { B } else { A }));
        core.input(10, 1, 10, Input::KeyUp(if i % 2 == 0 { B } else { A }));
    }
    let out = keys(&mut core, RETRY_US);
    assert_eq!(out.len(), QUEUE_LIMIT);
    assert!(core.dropped_total() > 0);
    assert_eq!(core.status().keyboard, HidLink::Ready);
}

#[test]
fn a_device_full_for_long_is_reopened_keeping_its_queue() {
    let mut core = ready();
    core.input(0, 1, 0, Input::KeyDown(A));
    core.written(Device::Keyboard, 0, WriteOutcome::WouldBlock);
    core.written(Device::Keyboard, RETRY_REOPEN_US, WriteOutcome::WouldBlock);
    assert!(!core.is_open(Device::Keyboard));
    assert!(core.wants_open(Device::Keyboard, RETRY_REOPEN_US));
    core.opened(Device::Keyboard, RETRY_REOPEN_US, true);
    assert_eq!(
        keys(&mut core, RETRY_REOPEN_US),
        vec![vec![0, 0, A, 0, 0, 0, 0, 0]]
    );
}

#[test]
fn a_vanished_device_is_reopened_and_everything_is_released() {
    let mut core = ready();
    core.input(0, 1, 0, Input::KeyDown(A));
    core.input(0, 1, 0, Input::KeyDown(SHIFT));
    keys(&mut core, 0);
    core.input(10, 1, 10, Input::KeyDown(B));
    core.written(Device::Keyboard, 10, WriteOutcome::Failed);
    assert_eq!(core.status().keyboard, HidLink::Absent);
    assert!(!core.wants_open(Device::Keyboard, 11));
    assert!(core.wants_open(Device::Keyboard, 10 + REOPEN_US));
    core.opened(Device::Keyboard, 10 + REOPEN_US, false);
    assert!(!core.wants_open(Device::Keyboard, 10 + REOPEN_US + 1));
    let back = 10 + 2 * REOPEN_US;
    core.opened(Device::Keyboard, back, true);
    assert_eq!(core.status().keyboard, HidLink::Ready);
    assert_eq!(
        keys(&mut core, back),
        vec![vec![0; 8]],
        "released on recovery"
    );
    // The client's old keys are forgotten: pressing B again is a fresh press.
    core.input(back, 1, back, Input::KeyDown(B));
    assert_eq!(keys(&mut core, back), vec![vec![0, 0, B, 0, 0, 0, 0, 0]]);
}

#[test]
fn leds_come_from_the_output_report() {
    let mut core = ready();
    assert_eq!(core.status().leds, None);
    core.leds(0b011);
    let leds = core.status().leds.unwrap();
    assert!(leds.num_lock && leds.caps_lock && !leds.scroll_lock);
}

/// Drives a paste to its end, writing every report; returns the reports and the outcome.
fn run_paste(core: &mut HidCore, mut now: Micros) -> (Vec<Vec<u8>>, PasteOutcome, Micros) {
    let mut out = Vec::new();
    loop {
        core.tick(now);
        out.extend(keys(core, now));
        if let Some(HidEvent::PasteDone { outcome, .. }) = core.take_events().next() {
            return (out, outcome, now);
        }
        now = core
            .next_wakeup()
            .expect("a paste in progress has a wakeup");
    }
}

#[test]
fn paste_types_each_character_down_then_up_at_a_steady_pace() {
    let mut core = ready();
    core.paste(0, 9, "aA€", KeyboardLayout::Us).unwrap();
    let (reports, outcome, end) = run_paste(&mut core, 0);
    assert_eq!(
        reports,
        vec![
            vec![0, 0, A, 0, 0, 0, 0, 0],
            vec![0; 8],
            vec![2, 0, A, 0, 0, 0, 0, 0],
            vec![0; 8],
        ]
    );
    assert_eq!(
        outcome,
        PasteOutcome::Done {
            typed: 2,
            unknown: "€".into()
        }
    );
    assert_eq!(end, 2 * PASTE_STEP_US);
    assert_eq!(
        core.paste(end, 9, "x", KeyboardLayout::Us),
        Ok(()),
        "free again"
    );
}

#[test]
fn a_second_paste_is_busy_and_live_keys_go_between_pasted_ones() {
    let mut core = ready();
    core.paste(0, 1, "aaaa", KeyboardLayout::Us).unwrap();
    assert_eq!(
        core.paste(0, 2, "b", KeyboardLayout::Us),
        Err(PasteOutcome::Busy)
    );
    assert_eq!(keys(&mut core, 0), vec![vec![0, 0, A, 0, 0, 0, 0, 0]]);
    // A live key while the paste runs is written at once, merged with the pasted key.
    core.input(1000, 5, 1000, Input::KeyDown(B));
    assert_eq!(keys(&mut core, 1000), vec![vec![0, 0, B, A, 0, 0, 0, 0]]);
    core.input(1000, 5, 1000, Input::KeyUp(B));
    let (_, outcome, _) = run_paste(&mut core, 1000);
    assert_eq!(
        outcome,
        PasteOutcome::Done {
            typed: 4,
            unknown: String::new()
        }
    );
}

#[test]
fn a_paste_is_refused_without_a_keyboard_and_cut_short_when_it_vanishes() {
    let mut core = HidCore::new();
    assert_eq!(
        core.paste(0, 1, "a", KeyboardLayout::Us),
        Err(PasteOutcome::Unavailable)
    );
    let mut core = ready();
    core.paste(0, 1, "abc", KeyboardLayout::Us).unwrap();
    // "a" goes down and up, "b" goes down; its up report fails.
    for step in 0..3 {
        let now = step * PASTE_STEP_US / 2;
        core.tick(now);
        assert_eq!(keys(&mut core, now).len(), 1);
    }
    core.tick(3 * PASTE_STEP_US / 2);
    core.written(
        Device::Keyboard,
        3 * PASTE_STEP_US / 2,
        WriteOutcome::Failed,
    );
    let events: Vec<HidEvent> = core.take_events().collect();
    assert_eq!(
        events,
        vec![HidEvent::PasteDone {
            requester: 1,
            outcome: PasteOutcome::Done {
                typed: 1,
                unknown: String::new()
            }
        }]
    );
}

#[test]
fn a_dead_key_character_is_two_strokes() {
    let mut core = ready();
    core.paste(0, 1, "ê", KeyboardLayout::Fr).unwrap();
    let (reports, outcome, _) = run_paste(&mut core, 0);
    assert_eq!(
        reports,
        vec![
            vec![0, 0, 0x2F, 0, 0, 0, 0, 0],
            vec![0; 8],
            vec![0, 0, 0x08, 0, 0, 0, 0, 0],
            vec![0; 8],
        ]
    );
    assert_eq!(
        outcome,
        PasteOutcome::Done {
            typed: 1,
            unknown: String::new()
        }
    );
}
