//! The hid actor: owns the three USB HID gadget devices (keyboard, relative mouse, absolute
//! pointer), turns every client's input into reports, and reads the host's keyboard LEDs.
//!
//! [`HidCore`] is the logic, with no I/O and no clock: what each client holds, the one
//! report per device that is the union of them, the paste in progress, and each device's
//! link (open, retrying, absent) with its bounded queue. `run.rs` is the thin loop that
//! opens, writes and reads the files and drives the timers.
//!
//! Rules:
//! - **Several clients may type at once.** Each client's held keys and buttons are tracked
//!   separately; what goes to the target is their union (keys in the order they went down,
//!   client by client, the paste last). A key one client releases stays down while another
//!   holds it. The absolute position is the last one any client sent.
//! - **No key stays stuck.** A client that leaves, or sends nothing for 1 s while it holds
//!   a key or button, has everything it holds released. So does everybody when a device
//!   comes back after being absent (the host may have missed any number of reports).
//! - **Nothing waits on the host.** A full device (`EAGAIN`) keeps its reports in a bounded
//!   queue and is retried; a gone one (`ENXIO`, `ESHUTDOWN`, `EPIPE`...) is closed, its
//!   queue dropped, and reopened on a timer. Clients see the state as [`HidStatus`].
//! - **A paste never starves live input.** It types one key every [`PASTE_STEP_US`] (down,
//!   then up half-way), only when the keyboard's queue is empty, so a live key press is
//!   written at once between two pasted ones.

mod run;

pub use run::{run, HidMsg, HidPaths};

use std::collections::{BTreeMap, VecDeque};

use nanokvm_protocol::hid::layout::{self, CharStrokes};
use nanokvm_protocol::hid::report::{self, KeyboardReport};
use nanokvm_protocol::{HidLink, HidStatus, KeyboardLayout, KeyboardLeds};

use crate::clock::Micros;

/// Who sent an input: the session's viewer id.
pub type ClientId = u64;

/// One input message from a client, as the session decoded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    KeyDown(u8),
    KeyUp(u8),
    ReleaseAll,
    PointerAbs {
        x: u16,
        y: u16,
        buttons: u8,
        wheel: i8,
    },
    PointerRel {
        dx: i16,
        dy: i16,
        buttons: u8,
        wheel: i8,
    },
    KeepAlive,
}

/// How a paste ended, for whoever asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasteOutcome {
    /// Finished (or cut short because the keyboard went away): characters typed, and the
    /// ones the layout cannot type.
    Done { typed: u32, unknown: String },
    /// Another paste is running.
    Busy,
    /// The keyboard is not connected.
    Unavailable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Device {
    Keyboard = 0,
    Mouse = 1,
    Absolute = 2,
}

impl Device {
    pub const ALL: [Device; 3] = [Device::Keyboard, Device::Mouse, Device::Absolute];

    pub fn name(self) -> &'static str {
        match self {
            Device::Keyboard => "keyboard",
            Device::Mouse => "mouse",
            Device::Absolute => "absolute pointer",
        }
    }
}

/// What a write of one report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Written,
    /// The device is full (`EAGAIN`): try again later.
    WouldBlock,
    /// The device is gone or refused the report: close and reopen it.
    Failed,
}

/// Without any message for this long, a client's held keys and buttons are released.
pub const KEEP_ALIVE_US: Micros = 1_000_000;
/// One pasted key: down, then up after half of it. 10 ms is 100 characters a second: slower
/// than a USB keyboard could go, because hosts poll HID at up to 10 ms intervals (and a
/// BIOS may poll slower), and a report overwritten before the host read it is a lost key.
pub const PASTE_STEP_US: Micros = 10_000;
/// How often a full device is retried.
pub const RETRY_US: Micros = 2_000;
/// A device full this long is closed and reopened (a stuck endpoint after a USB reset
/// recovers that way); its queue is kept.
pub const RETRY_REOPEN_US: Micros = 50_000;
/// How often an absent device is reopened.
pub const REOPEN_US: Micros = 250_000;
/// Reports kept per device while it is full. When more come, the oldest go: for a keyboard
/// the newest report is the state that counts.
pub const QUEUE_LIMIT: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Queued {
    bytes: [u8; 8],
    len: u8,
    /// When the input that caused it was received, for the latency figure.
    origin: Option<Micros>,
    /// The up report of a pasted character's last stroke: once written, it counts as typed.
    completes_char: bool,
}

impl Queued {
    fn new(bytes: &[u8], origin: Option<Micros>) -> Self {
        let mut b = [0u8; 8];
        b[..bytes.len()].copy_from_slice(bytes);
        Self {
            bytes: b,
            len: bytes.len() as u8,
            origin,
            completes_char: false,
        }
    }
}

#[derive(Debug)]
struct Link {
    state: HidLink,
    open: bool,
    queue: VecDeque<Queued>,
    /// When to retry a write (Retrying) or an open (Absent).
    retry_at: Micros,
    /// Since when writes would block.
    blocked_since: Option<Micros>,
    dropped: u64,
}

impl Link {
    fn new() -> Self {
        Self {
            state: HidLink::Absent,
            open: false,
            queue: VecDeque::new(),
            retry_at: 0,
            blocked_since: None,
            dropped: 0,
        }
    }

    fn push(&mut self, q: Queued) {
        if !self.open {
            return; // nobody to tell; a recovered device starts from "all released"
        }
        if self.queue.len() == QUEUE_LIMIT {
            self.queue.pop_front();
            self.dropped += 1;
        }
        self.queue.push_back(q);
    }
}

#[derive(Debug, Default)]
struct Client {
    keys: Vec<u8>,
    rel_buttons: u8,
    abs_buttons: u8,
    last_seen: Micros,
}

impl Client {
    fn holds_anything(&self) -> bool {
        !self.keys.is_empty() || self.rel_buttons != 0 || self.abs_buttons != 0
    }
}

#[derive(Debug)]
struct Paste {
    requester: u64,
    chars: Vec<CharStrokes>,
    /// Next character and stroke within it.
    char_at: usize,
    stroke_at: usize,
    /// The stroke currently down.
    down: Option<layout::Stroke>,
    next_at: Micros,
    unknown: String,
    /// Characters whose last stroke was written (down and up).
    typed: u32,
    /// The stroke down now is the last of its character.
    last_of_char: bool,
}

/// Something the loop must pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HidEvent {
    PasteDone {
        requester: u64,
        outcome: PasteOutcome,
    },
}

pub struct HidCore {
    clients: BTreeMap<ClientId, Client>,
    links: [Link; 3],
    paste: Option<Paste>,
    leds: Option<KeyboardLeds>,
    abs_pos: (u16, u16),
    keyboard: KeyboardReport,
    rel_buttons: u8,
    abs_buttons: u8,
    events: Vec<HidEvent>,
}

impl Default for HidCore {
    fn default() -> Self {
        Self::new()
    }
}

impl HidCore {
    pub fn new() -> Self {
        Self {
            clients: BTreeMap::new(),
            links: [Link::new(), Link::new(), Link::new()],
            paste: None,
            leds: None,
            abs_pos: (0, 0),
            keyboard: [0; 8],
            rel_buttons: 0,
            abs_buttons: 0,
            events: Vec::new(),
        }
    }

    pub fn status(&self) -> HidStatus {
        HidStatus {
            keyboard: self.links[0].state,
            mouse: self.links[1].state,
            absolute: self.links[2].state,
            leds: self.leds,
        }
    }

    /// Reports dropped because a device's queue was full.
    pub fn dropped_total(&self) -> u64 {
        self.links.iter().map(|l| l.dropped).sum()
    }

    // ---- input ------------------------------------------------------------------------

    /// One input from `client`, received at `at` (the latency clock starts there).
    pub fn input(&mut self, now: Micros, client: ClientId, at: Micros, input: Input) {
        let c = self.clients.entry(client).or_default();
        c.last_seen = now;
        match input {
            Input::KeyDown(usage) => {
                if usage != 0 && !c.keys.contains(&usage) {
                    c.keys.push(usage);
                }
                self.update_keyboard(Some(at));
            }
            Input::KeyUp(usage) => {
                c.keys.retain(|&k| k != usage);
                self.update_keyboard(Some(at));
            }
            Input::ReleaseAll => self.release(client, Some(at)),
            Input::PointerRel {
                dx,
                dy,
                buttons,
                wheel,
            } => {
                c.rel_buttons = buttons & report::BUTTONS_MASK;
                let union = self.union(|c| c.rel_buttons);
                if dx != 0 || dy != 0 || wheel != 0 || union != self.rel_buttons {
                    self.rel_buttons = union;
                    for r in report::mouse_reports(dx.into(), dy.into(), union, wheel) {
                        self.links[1].push(Queued::new(&r, Some(at)));
                    }
                }
            }
            Input::PointerAbs {
                x,
                y,
                buttons,
                wheel,
            } => {
                c.abs_buttons = buttons & report::BUTTONS_MASK;
                let union = self.union(|c| c.abs_buttons);
                let pos = (x.min(report::ABSOLUTE_MAX), y.min(report::ABSOLUTE_MAX));
                if pos != self.abs_pos || wheel != 0 || union != self.abs_buttons {
                    self.abs_pos = pos;
                    self.abs_buttons = union;
                    let r = report::absolute_report(pos.0, pos.1, union, wheel);
                    self.links[2].push(Queued::new(&r, Some(at)));
                }
            }
            Input::KeepAlive => {}
        }
        self.forget_idle(client);
    }

    /// The client is gone (its session ended): release what it held.
    pub fn leave(&mut self, client: ClientId) {
        self.release(client, None);
    }

    /// Starts typing `text`. The outcome comes as a [`HidEvent::PasteDone`] for `requester`,
    /// or at once when refused.
    pub fn paste(
        &mut self,
        now: Micros,
        requester: u64,
        text: &str,
        layout: KeyboardLayout,
    ) -> Result<(), PasteOutcome> {
        if self.paste.is_some() {
            return Err(PasteOutcome::Busy);
        }
        if !self.links[0].open {
            return Err(PasteOutcome::Unavailable);
        }
        let plan = layout::plan(text, layout);
        self.paste = Some(Paste {
            requester,
            chars: plan.chars,
            char_at: 0,
            stroke_at: 0,
            down: None,
            next_at: now,
            unknown: plan.unknown,
            typed: 0,
            last_of_char: false,
        });
        self.step_paste(now);
        Ok(())
    }

    pub fn leds(&mut self, output_report: u8) {
        self.leds = Some(report::leds_from_output(output_report));
    }

    pub fn take_events(&mut self) -> std::vec::Drain<'_, HidEvent> {
        self.events.drain(..)
    }

    // ---- time -------------------------------------------------------------------------

    /// Releases silent clients and moves the paste on.
    pub fn tick(&mut self, now: Micros) {
        let silent: Vec<ClientId> = self
            .clients
            .iter()
            .filter(|(_, c)| now.saturating_sub(c.last_seen) >= KEEP_ALIVE_US)
            .map(|(&id, _)| id)
            .collect();
        for id in silent {
            log::info!("hid: client {id} sent nothing for 1 s while holding keys; released");
            self.release(id, None);
        }
        self.step_paste(now);
    }

    /// When [`tick`](Self::tick) or the I/O wants to run next.
    pub fn next_wakeup(&self) -> Option<Micros> {
        let keep_alive = self
            .clients
            .values()
            .map(|c| c.last_seen + KEEP_ALIVE_US)
            .min();
        let paste = self.paste.as_ref().map(|p| p.next_at);
        let links = self.links.iter().filter_map(|l| match (l.open, l.state) {
            (false, _) => Some(l.retry_at),
            (true, HidLink::Retrying) => Some(l.retry_at),
            _ => None,
        });
        keep_alive.into_iter().chain(paste).chain(links).min()
    }

    // ---- device I/O -------------------------------------------------------------------

    /// Whether the loop should (re)open `dev` now.
    pub fn wants_open(&self, dev: Device, now: Micros) -> bool {
        let l = &self.links[dev as usize];
        !l.open && now >= l.retry_at
    }

    pub fn is_open(&self, dev: Device) -> bool {
        self.links[dev as usize].open
    }

    /// The result of opening `dev`.
    pub fn opened(&mut self, dev: Device, now: Micros, ok: bool) {
        let l = &mut self.links[dev as usize];
        if !ok {
            l.state = HidLink::Absent;
            l.retry_at = now + REOPEN_US;
            return;
        }
        l.open = true;
        if l.state == HidLink::Absent {
            // A new start (or the host came back): whatever it last saw may be stale, and
            // what clients hold may have changed meanwhile. Start from "nothing held".
            l.state = HidLink::Ready;
            log::info!("hid: {} connected; everything released", dev.name());
            self.release_everything(dev);
        }
        // Else it was reopened while retrying: its queue goes out as it is.
    }

    /// The next report to write to `dev`, if it is open and not waiting for a retry.
    pub fn next_write(&self, dev: Device, now: Micros) -> Option<&[u8]> {
        let l = &self.links[dev as usize];
        if !l.open || (l.state == HidLink::Retrying && now < l.retry_at) {
            return None;
        }
        l.queue.front().map(|q| &q.bytes[..usize::from(q.len)])
    }

    /// The result of writing the report from [`next_write`](Self::next_write). Returns the
    /// latency (input received → report written) when the report came from an input.
    pub fn written(&mut self, dev: Device, now: Micros, outcome: WriteOutcome) -> Option<Micros> {
        let l = &mut self.links[dev as usize];
        match outcome {
            WriteOutcome::Written => {
                l.state = HidLink::Ready;
                l.blocked_since = None;
                let q = l.queue.pop_front()?;
                if q.completes_char {
                    if let Some(p) = &mut self.paste {
                        p.typed += 1;
                    }
                }
                q.origin.map(|o| now.saturating_sub(o))
            }
            WriteOutcome::WouldBlock => {
                let since = *l.blocked_since.get_or_insert(now);
                l.state = HidLink::Retrying;
                l.retry_at = now + RETRY_US;
                if now.saturating_sub(since) >= RETRY_REOPEN_US {
                    // Closed with its queue kept; `opened` makes it Ready again.
                    l.open = false;
                    l.blocked_since = None;
                    l.retry_at = now;
                }
                None
            }
            WriteOutcome::Failed => {
                log::info!("hid: {} is gone; reopening", dev.name());
                l.open = false;
                l.state = HidLink::Absent;
                l.queue.clear();
                l.blocked_since = None;
                l.retry_at = now + REOPEN_US;
                if dev == Device::Keyboard {
                    self.finish_paste();
                }
                None
            }
        }
    }

    // ---- internals --------------------------------------------------------------------

    fn union(&self, f: impl Fn(&Client) -> u8) -> u8 {
        self.clients.values().fold(0, |acc, c| acc | f(c))
    }

    fn forget_idle(&mut self, client: ClientId) {
        if self
            .clients
            .get(&client)
            .is_some_and(|c| !c.holds_anything())
        {
            self.clients.remove(&client);
        }
    }

    /// Queues the keyboard report if the set of held keys changed; returns whether it did.
    fn update_keyboard(&mut self, origin: Option<Micros>) -> bool {
        self.update_keyboard_marked(origin, false)
    }

    fn update_keyboard_marked(&mut self, origin: Option<Micros>, completes_char: bool) -> bool {
        let paste_key = self.paste.as_ref().and_then(|p| p.down);
        let held = self
            .clients
            .values()
            .flat_map(|c| c.keys.iter().copied())
            .chain(paste_key.map(|s| s.usage));
        let mut r = report::keyboard_report(held);
        if let Some(s) = paste_key {
            r[0] |= s.modifiers;
        }
        // The slots are a set to the host: a new order alone is no new report.
        let set = |r: &KeyboardReport| {
            let mut keys = [r[2], r[3], r[4], r[5], r[6], r[7]];
            keys.sort_unstable();
            (r[0], keys)
        };
        if set(&r) == set(&self.keyboard) {
            return false;
        }
        self.keyboard = r;
        let mut q = Queued::new(&r, origin);
        q.completes_char = completes_char;
        self.links[0].push(q);
        true
    }

    fn release(&mut self, client: ClientId, origin: Option<Micros>) {
        if self.clients.remove(&client).is_none() {
            return;
        }
        self.update_keyboard(origin);
        let rel = self.union(|c| c.rel_buttons);
        if rel != self.rel_buttons {
            self.rel_buttons = rel;
            self.links[1].push(Queued::new(&report::mouse_reports(0, 0, rel, 0)[0], origin));
        }
        let abs = self.union(|c| c.abs_buttons);
        if abs != self.abs_buttons {
            self.abs_buttons = abs;
            let r = report::absolute_report(self.abs_pos.0, self.abs_pos.1, abs, 0);
            self.links[2].push(Queued::new(&r, origin));
        }
    }

    /// After a device came back: nobody holds anything on it, and the host is told so.
    fn release_everything(&mut self, dev: Device) {
        if dev == Device::Keyboard {
            self.finish_paste();
        }
        self.links[dev as usize].queue.clear();
        match dev {
            Device::Keyboard => {
                for c in self.clients.values_mut() {
                    c.keys.clear();
                }
                self.keyboard = [0; 8];
                self.links[0].push(Queued::new(&[0; 8], None));
            }
            Device::Mouse => {
                for c in self.clients.values_mut() {
                    c.rel_buttons = 0;
                }
                self.rel_buttons = 0;
                self.links[1].push(Queued::new(&[0; 4], None));
            }
            Device::Absolute => {
                for c in self.clients.values_mut() {
                    c.abs_buttons = 0;
                }
                self.abs_buttons = 0;
                let r = report::absolute_report(self.abs_pos.0, self.abs_pos.1, 0, 0);
                self.links[2].push(Queued::new(&r, None));
            }
        }
        self.clients.retain(|_, c| c.holds_anything());
    }

    fn step_paste(&mut self, now: Micros) {
        loop {
            let Some(p) = &mut self.paste else { return };
            if now < p.next_at || !self.links[0].queue.is_empty() {
                return;
            }
            if p.down.take().is_some() {
                // The up half of a stroke.
                p.next_at = now + PASTE_STEP_US / 2;
                let completes = std::mem::take(&mut p.last_of_char);
                if !self.update_keyboard_marked(None, completes) && completes {
                    // Someone else holds the same key: nothing to write, but it was typed.
                    if let Some(p) = &mut self.paste {
                        p.typed += 1;
                    }
                }
                continue;
            }
            let Some(ch) = p.chars.get(p.char_at) else {
                self.finish_paste();
                return;
            };
            let stroke = ch.as_slice()[p.stroke_at];
            p.stroke_at += 1;
            if p.stroke_at == ch.as_slice().len() {
                p.stroke_at = 0;
                p.char_at += 1;
                p.last_of_char = true;
            }
            p.down = Some(stroke);
            p.next_at = now + PASTE_STEP_US / 2;
            self.update_keyboard(None);
        }
    }

    fn finish_paste(&mut self) {
        let Some(p) = self.paste.take() else { return };
        self.events.push(HidEvent::PasteDone {
            requester: p.requester,
            outcome: PasteOutcome::Done {
                typed: p.typed,
                unknown: p.unknown,
            },
        });
        if p.down.is_some() {
            self.update_keyboard(None);
        }
    }
}

#[cfg(test)]
mod tests;
