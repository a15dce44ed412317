use super::*;

const MS: Micros = 1000;

#[test]
fn each_action_drives_its_button_for_its_time() {
    let mut core = AtxCore::new(false);
    let p = core.request(5 * MS, AtxAction::Power).unwrap();
    assert_eq!((p.button, p.ms, p.until), (Button::Power, 800, 805 * MS));
    assert_eq!(core.due(804 * MS), None);
    assert_eq!(core.due(805 * MS), Some(Due::Release(p)));
    // Released, but the next press waits for the gap.
    assert_eq!(core.deadline(), Some(1005 * MS));
    assert_eq!(
        core.request(900 * MS, AtxAction::Reset),
        Err(Refusal::Busy(AtxKind::Power))
    );
    assert_eq!(core.due(1004 * MS), None);
    assert_eq!(core.due(1005 * MS), Some(Due::Done(p)));
    assert_eq!(core.deadline(), None);

    let p = core.request(0, AtxAction::Reset).unwrap();
    assert_eq!(
        (p.button, p.ms, p.kind),
        (Button::Reset, 800, AtxKind::Reset)
    );
    assert_eq!(core.due(800 * MS), Some(Due::Release(p)));
    assert_eq!(core.due(1000 * MS), Some(Due::Done(p)));

    let p = core
        .request(0, AtxAction::PowerLong { ms: 12_000 })
        .unwrap();
    assert_eq!(
        (p.button, p.kind, p.until),
        (Button::Power, AtxKind::PowerLong, 12_000 * MS)
    );
    assert_eq!(core.deadline(), Some(12_000 * MS));
}

#[test]
fn a_press_in_progress_is_never_doubled() {
    let mut core = AtxCore::new(false);
    core.request(0, AtxAction::PowerLong { ms: 5_000 }).unwrap();
    for action in [
        AtxAction::Power,
        AtxAction::Reset,
        AtxAction::PowerLong { ms: 1_000 },
    ] {
        assert_eq!(
            core.request(MS, action),
            Err(Refusal::Busy(AtxKind::PowerLong))
        );
    }
    // The refused requests changed nothing: the press ends when it was going to.
    assert_eq!(core.deadline(), Some(5_000 * MS));
    assert_eq!(core.state().busy, Some(AtxKind::PowerLong));
    assert_eq!(core.due(4_999 * MS), None);
    assert!(matches!(core.due(5_000 * MS), Some(Due::Release(_))));
    assert_eq!(core.state().busy, Some(AtxKind::PowerLong));
    assert!(matches!(core.due(5_200 * MS), Some(Due::Done(_))));
    assert_eq!(core.state().busy, None);
    assert!(core.request(5_201 * MS, AtxAction::Power).is_ok());
}

#[test]
fn long_press_durations_outside_the_range_are_refused() {
    let mut core = AtxCore::new(false);
    for ms in [0, 999, 30_001, u32::MAX] {
        let r = core.request(0, AtxAction::PowerLong { ms });
        assert_eq!(r, Err(Refusal::Duration(ms)));
        assert!(r.unwrap_err().to_string().contains("1000..=30000"));
    }
    assert_eq!(core.state().busy, None);
    for ms in [1_000, 30_000] {
        assert!(core.request(0, AtxAction::PowerLong { ms }).is_ok());
        core.interrupt();
    }
}

#[test]
fn a_failed_or_interrupted_press_leaves_nothing_busy() {
    let mut core = AtxCore::new(false);
    core.request(0, AtxAction::Power).unwrap();
    core.abort();
    assert_eq!(core.state().busy, None);
    assert_eq!(core.deadline(), None);
    let p = core
        .request(0, AtxAction::PowerLong { ms: 12_000 })
        .unwrap();
    assert_eq!(core.interrupt(), Some(p));
    assert_eq!(core.interrupt(), None);
    assert_eq!(core.due(u64::MAX), None);
}

#[test]
fn the_power_led_changes_only_once_a_level_has_settled() {
    let mut core = AtxCore::new(false);
    assert!(!core.state().power_led);
    core.sample(0, Some(true), None);
    assert!(!core.state().power_led, "one sample is not enough");
    core.sample(20 * MS, Some(true), None);
    assert!(core.state().power_led);
    // A single dark sample (a glitch) is ignored.
    core.sample(40 * MS, Some(false), None);
    core.sample(60 * MS, Some(true), None);
    core.sample(80 * MS, Some(true), None);
    assert!(core.state().power_led);
    // Two dark samples 20 ms apart turn it off; an unreadable line changes nothing.
    core.sample(100 * MS, Some(false), None);
    core.sample(110 * MS, None, None);
    core.sample(120 * MS, Some(false), None);
    assert!(!core.state().power_led);
    core.sample(140 * MS, None, None);
    assert!(!core.state().power_led);
}

#[test]
fn the_hdd_led_shows_a_single_blink_and_holds_for_a_while() {
    let mut core = AtxCore::new(true);
    core.sample(0, None, Some(false));
    assert_eq!(core.state().hdd_led, Some(false));
    core.sample(20 * MS, None, Some(true));
    assert_eq!(core.state().hdd_led, Some(true), "lit at once");
    core.sample(40 * MS, None, Some(false));
    core.sample(100 * MS, None, Some(false));
    assert_eq!(core.state().hdd_led, Some(true), "held");
    core.sample(120 * MS, None, Some(false));
    assert_eq!(core.state().hdd_led, Some(false), "dark for 100 ms");
}

#[test]
fn a_fast_flicker_is_shown_as_activity_with_few_changes() {
    let mut core = AtxCore::new(true);
    let mut shown = Vec::new();
    // The LED toggles every sample (25 Hz) for a second, then stays dark.
    for i in 0..100u64 {
        let lit = i < 50 && i % 2 == 0;
        core.sample(i * 20 * MS, None, Some(lit));
        let s = core.state().hdd_led.unwrap();
        if shown.last() != Some(&s) {
            shown.push(s);
        }
    }
    assert_eq!(shown, vec![true, false], "one on, one off: not 50 messages");
}

#[test]
fn boards_without_an_hdd_led_report_none() {
    let mut core = AtxCore::new(false);
    core.sample(0, Some(false), Some(true));
    assert_eq!(core.state().hdd_led, None);
}
