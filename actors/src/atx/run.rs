//! The atx actor's loop: requests in, the press timer, the LED sampler, shutdown. The value
//! files are opened once and written and read in place (`pwrite`/`pread` at offset 0): on
//! sysfs and tmpfs that takes microseconds, so it runs on the executor.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use futures_lite::{future, StreamExt};
use nanokvm_protocol::{AtxAction, AtxKind, AtxState};
use smol::Timer;

use super::{describe, hw_file, value_path, AtxCore, Button, Due, Press, Refusal, Variant};
use crate::clock::{Clock, Micros};
use crate::watch::WatchSender;

/// The LEDs are read this often (50 Hz): enough to show disk activity.
const SAMPLE_PERIOD: Duration = Duration::from_millis(20);
/// A missing LED file is looked for again this often (the GPIOs may be exported later).
const REOPEN_PERIOD_US: Micros = 2_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct AtxConfig {
    /// Stands for `/`: the value files are under `ROOT/sys/class/gpio`, the board variant in
    /// `ROOT/etc/kvm/hw`.
    pub root: PathBuf,
    /// Overrides `ROOT/etc/kvm/hw`.
    pub variant: Option<Variant>,
    /// A "force off" press without a duration lasts this long.
    pub power_long_ms: u32,
}

impl AtxConfig {
    /// The configured variant, else the one `ROOT/etc/kvm/hw` names (alpha when it names
    /// none). Read once, at start.
    pub fn resolve_variant(&self) -> Variant {
        if let Some(v) = self.variant {
            return v;
        }
        let path = hw_file(&self.root);
        let contents = std::fs::read_to_string(&path).ok();
        let v = Variant::from_hw_file(contents.as_deref());
        if contents.is_none() {
            log::info!("{} is missing: assuming the alpha board", path.display());
        }
        v
    }
}

/// What a session or HTTP handler holds to ask for presses.
#[derive(Clone)]
pub struct AtxHandle {
    pub requests: Sender<AtxRequest>,
    /// A "force off" press without a duration lasts this long.
    pub power_long_ms: u32,
}

pub struct AtxRequest {
    pub action: AtxAction,
    /// Gets `Started` (or why not) at once, and `Finished` when the press ends. Sent with
    /// `try_send`: a requester that stopped listening never holds up the actor.
    pub reply: Sender<AtxReply>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AtxReply {
    Started {
        kind: AtxKind,
        ms: u32,
    },
    /// Nothing was pressed.
    Refused {
        kind: AtxKind,
        reason: Refusal,
    },
    /// The line's value file could not be written: nothing was pressed.
    Unavailable {
        kind: AtxKind,
        error: GpioError,
    },
    Finished {
        kind: AtxKind,
        ok: bool,
        message: String,
    },
}

/// A value file that could not be opened, written or read.
#[derive(Debug, Clone, PartialEq)]
pub struct GpioError {
    pub path: PathBuf,
    pub message: String,
}

impl std::fmt::Display for GpioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl GpioError {
    fn new(path: &Path, e: std::io::Error) -> Self {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "no such file (is the GPIO exported? see /etc/init.d/S15kvmhwd)".to_string()
            }
            _ => e.to_string(),
        };
        Self {
            path: path.to_owned(),
            message,
        }
    }
}

/// A button's line. Opened when first needed (and again after an error); never created: a
/// missing file means the GPIO is not there, and nothing must be pretended pressed.
struct OutputLine {
    path: PathBuf,
    file: Option<File>,
    driven: bool,
}

impl OutputLine {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            driven: false,
        }
    }

    fn set(&mut self, pressed: bool) -> Result<(), GpioError> {
        if self.file.is_none() {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&self.path)
                .map_err(|e| GpioError::new(&self.path, e))?;
            self.file = Some(f);
        }
        let value: &[u8] = if pressed { b"1" } else { b"0" };
        let written = match &self.file {
            Some(f) => f.write_at(value, 0),
            None => return Ok(()),
        };
        match written {
            Ok(1) => {
                self.driven = pressed;
                Ok(())
            }
            Ok(n) => Err(GpioError {
                path: self.path.clone(),
                message: format!("short write ({n} bytes)"),
            }),
            Err(e) => {
                self.file = None;
                Err(GpioError::new(&self.path, e))
            }
        }
    }
}

impl Drop for OutputLine {
    /// However the actor ends (its task dropped with the executor, a panic), a pressed
    /// button is let go.
    fn drop(&mut self) {
        if self.driven {
            match self.set(false) {
                Ok(()) => log::info!("released {} on the way out", self.path.display()),
                Err(e) => log::error!("could not release the button: {e}"),
            }
        }
    }
}

/// An LED's line: `0` in the file means lit (active-low).
struct InputLine {
    path: PathBuf,
    file: Option<File>,
    last_attempt: Option<Micros>,
    complained: bool,
}

impl InputLine {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            last_attempt: None,
            complained: false,
        }
    }

    /// Whether the LED is lit; `None` when the file is missing or unreadable (said once).
    fn read(&mut self, now: Micros) -> Option<bool> {
        if self.file.is_none() {
            if self
                .last_attempt
                .is_some_and(|t| now.saturating_sub(t) < REOPEN_PERIOD_US)
            {
                return None;
            }
            self.last_attempt = Some(now);
            match File::open(&self.path) {
                Ok(f) => {
                    if std::mem::take(&mut self.complained) {
                        log::info!("{} is back", self.path.display());
                    }
                    self.file = Some(f);
                }
                Err(e) => {
                    self.complain(&GpioError::new(&self.path, e).to_string());
                    return None;
                }
            }
        }
        let mut buf = [0u8; 1];
        let read = self.file.as_ref().map(|f| f.read_at(&mut buf, 0));
        match read {
            Some(Ok(1)) if buf[0] == b'0' => Some(true),
            Some(Ok(1)) if buf[0] == b'1' => Some(false),
            Some(Ok(_)) => {
                self.complain(&format!(
                    "{}: expected 0 or 1, read {:?}",
                    self.path.display(),
                    char::from(buf[0])
                ));
                None
            }
            Some(Err(e)) => {
                self.file = None;
                self.complain(&GpioError::new(&self.path, e).to_string());
                None
            }
            None => None,
        }
    }

    fn complain(&mut self, what: &str) {
        if !std::mem::replace(&mut self.complained, true) {
            log::warn!("LED unreadable: {what}");
        }
    }
}

fn reply(to: &Sender<AtxReply>, r: AtxReply) {
    let _ = to.try_send(r);
}

/// The deadline `until` on the clock as an `Instant` for a timer.
fn instant_at(clock: Clock, until: Micros) -> Instant {
    Instant::now() + Duration::from_micros(until.saturating_sub(clock.now_us()))
}

/// Runs the actor until shutdown (or until every handle is gone). A press in progress at
/// shutdown is released before this returns.
pub async fn run(
    cfg: AtxConfig,
    mailbox: Receiver<AtxRequest>,
    state: WatchSender<AtxState>,
    shutdown: Receiver<()>,
    clock: Clock,
) {
    let variant = cfg.resolve_variant();
    let lines = variant.lines();
    log::info!(
        "front panel: {} board, power gpio{}, reset gpio{}, power LED gpio{}, HDD LED {} (under {})",
        variant.name(),
        lines.power,
        lines.reset,
        lines.power_led,
        lines.hdd_led.map_or("none".to_string(), |n| format!("gpio{n}")),
        cfg.root.display()
    );
    let mut power = OutputLine::new(value_path(&cfg.root, lines.power));
    let mut reset = OutputLine::new(value_path(&cfg.root, lines.reset));
    // A button left pressed by a daemon that was killed mid-press is let go now.
    for line in [&mut power, &mut reset] {
        if let Err(e) = line.set(false) {
            log::warn!("{e}; presses of this button will fail until it appears");
        }
    }
    let mut power_led = InputLine::new(value_path(&cfg.root, lines.power_led));
    let mut hdd_led = lines
        .hdd_led
        .map(|n| InputLine::new(value_path(&cfg.root, n)));

    let mut core = AtxCore::new(lines.hdd_led.is_some());
    let mut press_timer = Timer::never();
    let mut armed: Option<Micros> = None;
    let mut sampler = Timer::interval(SAMPLE_PERIOD);
    // Who asked for the press in progress, and how it went (told when it is finished).
    let mut requester: Option<Sender<AtxReply>> = None;
    let mut outcome = (false, String::new());

    enum Input {
        Shutdown,
        PressEnd,
        Request(AtxRequest),
        Sample,
    }
    loop {
        // Shutdown first, then the end of a press (its length is the point), then the rest.
        let input = future::or(
            async {
                let _ = shutdown.recv().await;
                Input::Shutdown
            },
            future::or(
                async {
                    (&mut press_timer).await;
                    Input::PressEnd
                },
                future::or(
                    async { mailbox.recv().await.map_or(Input::Shutdown, Input::Request) },
                    async {
                        sampler.next().await;
                        Input::Sample
                    },
                ),
            ),
        )
        .await;
        let now = clock.now_us();
        // A timer that fired must be armed again even for the same deadline (due() said
        // "not yet").
        let fired = matches!(input, Input::PressEnd);
        match input {
            Input::Shutdown => {
                let busy = core.state().busy;
                let cut_short = core.interrupt();
                if let Some(press) = cut_short {
                    let held = Micros::from(press.ms) * 1000 - press.until.saturating_sub(now);
                    outcome = match release(&mut power, &mut reset, press) {
                        Ok(()) => (
                            false,
                            format!(
                                "interrupted after {} ms: the server is shutting down",
                                held / 1000
                            ),
                        ),
                        Err(e) => (false, format!("could not release the button: {e}")),
                    };
                    log::info!(
                        "shutting down: the {} press was cut short after {} ms",
                        describe(press.kind),
                        held / 1000
                    );
                }
                // Pressed, or released and in the gap: the requester hears how it went.
                if let (Some(kind), Some(to)) = (busy, requester.take()) {
                    let (ok, message) = std::mem::take(&mut outcome);
                    reply(&to, AtxReply::Finished { kind, ok, message });
                }
                state.set(core.state());
                return;
            }
            Input::PressEnd => match core.due(now) {
                Some(Due::Release(press)) => {
                    outcome = match release(&mut power, &mut reset, press) {
                        Ok(()) => (
                            true,
                            format!("{} pressed for {} ms", describe(press.kind), press.ms),
                        ),
                        Err(e) => {
                            log::error!("releasing the button: {e}");
                            (false, format!("could not release the button: {e}"))
                        }
                    };
                }
                Some(Due::Done(press)) => {
                    if let Some(to) = requester.take() {
                        let (ok, message) = std::mem::take(&mut outcome);
                        reply(
                            &to,
                            AtxReply::Finished {
                                kind: press.kind,
                                ok,
                                message,
                            },
                        );
                    }
                }
                None => {}
            },
            Input::Request(req) => match core.request(now, req.action) {
                Err(reason) => {
                    log::info!("{:?} refused: {reason}", req.action);
                    reply(
                        &req.reply,
                        AtxReply::Refused {
                            kind: req.action.kind(),
                            reason,
                        },
                    );
                }
                Ok(press) => {
                    let line = match press.button {
                        Button::Power => &mut power,
                        Button::Reset => &mut reset,
                    };
                    match line.set(true) {
                        Ok(()) => {
                            log::info!("{} press for {} ms", describe(press.kind), press.ms);
                            reply(
                                &req.reply,
                                AtxReply::Started {
                                    kind: press.kind,
                                    ms: press.ms,
                                },
                            );
                            requester = Some(req.reply);
                        }
                        Err(error) => {
                            core.abort();
                            // A driven line that failed half-way is let go again.
                            let _ = line.set(false);
                            log::warn!("{} press not possible: {error}", describe(press.kind));
                            reply(
                                &req.reply,
                                AtxReply::Unavailable {
                                    kind: press.kind,
                                    error,
                                },
                            );
                        }
                    }
                }
            },
            Input::Sample => {
                let power_lit = power_led.read(now);
                let hdd_lit = hdd_led.as_mut().and_then(|l| l.read(now));
                core.sample(now, power_lit, hdd_lit);
            }
        }
        state.set(core.state());
        // Re-armed only when the deadline moved (not at every LED sample).
        let deadline = core.deadline();
        if deadline != armed || fired {
            match deadline {
                Some(at) => press_timer.set_at(instant_at(clock, at)),
                None => press_timer = Timer::never(),
            }
            armed = deadline;
        }
    }
}

fn release(power: &mut OutputLine, reset: &mut OutputLine, press: Press) -> Result<(), GpioError> {
    match press.button {
        Button::Power => power.set(false),
        Button::Reset => reset.set(false),
    }
}
