//! The simulated target's USB side: it reads the HID reports from FIFOs standing where the
//! gadget's `/dev/hidgN` would be, decodes them ([`SimKeyboard`], [`SimPointer`]), and acts
//! on them — typed text and console switches go to the screen on the media thread, the
//! pointer is drawn there — and it answers the keyboard's lock LEDs through one more FIFO,
//! `dev/hidg0.leds` (sim only: a FIFO carries one direction, the device node both).
//!
//! "Unplugging" it (`POST /api/sim/hid {"connected": false}`) closes its ends of the FIFOs:
//! the hid actor's writes then fail as they do on a NanoKVM whose host went away, and its
//! reopens fail until the sim is "plugged" back in.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_lite::future;
use nanokvm_protocol::hid::report::{
    leds_from_output, ABSOLUTE_REPORT_LEN, KEYBOARD_REPORT_LEN, MOUSE_REPORT_LEN,
};
use nanokvm_protocol::KeyboardLeds;
use smol::Async;

use super::keyboard::{KeyAction, SimKeyboard};
use super::pointer::{PointerState, SimPointer};
use super::power::run::DiskLight;
use crate::hid::HidPaths;
use crate::media::{MediaCmd, SimInput};

pub enum SimTargetMsg {
    /// What the target's keyboard and mouse drivers see now.
    State(Sender<TargetInputState>),
    /// Plug (`true`) or unplug the USB cable.
    Connect(bool),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetInputState {
    pub pointer: PointerState,
    pub leds: KeyboardLeds,
    /// Usages the target sees held.
    pub keys_held: Vec<u8>,
    pub hid_connected: bool,
}

/// Makes the FIFOs under `root` (`dev/hidg0`, `dev/hidg1`, `dev/hidg2`, `dev/hidg0.leds`).
pub fn create_fifos(root: &Path) -> std::io::Result<HidPaths> {
    let dev = root.join("dev");
    std::fs::create_dir_all(&dev)?;
    let paths = HidPaths {
        keyboard: dev.join("hidg0"),
        mouse: dev.join("hidg1"),
        absolute: dev.join("hidg2"),
        leds: dev.join("hidg0.leds"),
    };
    for p in [&paths.keyboard, &paths.mouse, &paths.absolute, &paths.leds] {
        crate::sys::make_fifo(p, 0o600)?;
    }
    Ok(paths)
}

/// The FIFOs' read ends, open while the cable is "plugged in".
struct Plugged {
    keyboard: Async<File>,
    mouse: Async<File>,
    absolute: Async<File>,
    /// The LED FIFO's write end, once the hid actor has it open for reading.
    leds: Option<File>,
}

impl Plugged {
    /// Opened read-write, so the sim itself counts as a writer and never sees end-of-file
    /// when the hid actor reopens its end.
    fn open(paths: &HidPaths) -> std::io::Result<Plugged> {
        let open = |p: &Path| {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(p)?;
            Async::new(f)
        };
        Ok(Plugged {
            keyboard: open(&paths.keyboard)?,
            mouse: open(&paths.mouse)?,
            absolute: open(&paths.absolute)?,
            leds: None,
        })
    }
}

/// How often an undelivered LED byte is retried.
const LED_RETRY: Duration = Duration::from_millis(100);

/// `disk` is the target's HDD LED: typing makes it flicker, as a real machine's would.
pub async fn run(
    inbox: Receiver<SimTargetMsg>,
    paths: HidPaths,
    media: Sender<MediaCmd>,
    disk: DiskLight,
) {
    let mut keyboard = SimKeyboard::new();
    let mut pointer = SimPointer::new();
    let mut plugged = match Plugged::open(&paths) {
        Ok(p) => Some(p),
        Err(e) => {
            log::error!("sim target: opening its HID FIFOs: {e}");
            None
        }
    };
    // The host tells a new keyboard its LEDs right away.
    let mut leds_pending = true;
    let mut led_retry = smol::Timer::never();
    let mut actions = Vec::new();
    loop {
        if leds_pending {
            if let Some(p) = &mut plugged {
                leds_pending = !send_leds(p, &paths, keyboard.leds());
            }
            if leds_pending {
                led_retry.set_after(LED_RETRY);
            }
        }
        enum Next {
            Msg(Option<SimTargetMsg>),
            Keyboard(Vec<u8>),
            Mouse(Vec<u8>),
            Absolute(Vec<u8>),
            Failed(std::io::Error),
            LedRetry,
        }
        let next = {
            let msg = async { Next::Msg(inbox.recv().await.ok()) };
            let retry = async {
                (&mut led_retry).await;
                Next::LedRetry
            };
            let reads = async {
                match &plugged {
                    None => future::pending().await,
                    Some(p) => {
                        let kb = async {
                            read_reports(&p.keyboard, KEYBOARD_REPORT_LEN)
                                .await
                                .map(Next::Keyboard)
                        };
                        let mouse = async {
                            read_reports(&p.mouse, MOUSE_REPORT_LEN)
                                .await
                                .map(Next::Mouse)
                        };
                        let abs = async {
                            read_reports(&p.absolute, ABSOLUTE_REPORT_LEN)
                                .await
                                .map(Next::Absolute)
                        };
                        future::or(kb, future::or(mouse, abs))
                            .await
                            .unwrap_or_else(Next::Failed)
                    }
                }
            };
            future::or(msg, future::or(reads, retry)).await
        };
        let mut pointer_moved = false;
        match next {
            Next::Msg(None) => break,
            Next::Msg(Some(SimTargetMsg::State(reply))) => {
                let _ = reply.try_send(TargetInputState {
                    pointer: pointer.state,
                    leds: leds_from_output(keyboard.leds()),
                    keys_held: keyboard.held(),
                    hid_connected: plugged.is_some(),
                });
            }
            Next::Msg(Some(SimTargetMsg::Connect(connect))) => {
                if connect && plugged.is_none() {
                    match Plugged::open(&paths) {
                        Ok(p) => {
                            log::info!("sim target: USB plugged in");
                            plugged = Some(p);
                            leds_pending = true;
                        }
                        Err(e) => log::error!("sim target: opening its HID FIFOs: {e}"),
                    }
                } else if !connect && plugged.is_some() {
                    log::info!("sim target: USB unplugged");
                    plugged = None;
                }
            }
            Next::Keyboard(bytes) => {
                for r in bytes.chunks_exact(KEYBOARD_REPORT_LEN) {
                    keyboard.report(r, &mut actions);
                }
            }
            Next::Mouse(bytes) => {
                for r in bytes.chunks_exact(MOUSE_REPORT_LEN) {
                    pointer.relative_report(r);
                }
                pointer_moved = true;
            }
            Next::Absolute(bytes) => {
                for r in bytes.chunks_exact(ABSOLUTE_REPORT_LEN) {
                    pointer.absolute_report(r);
                }
                pointer_moved = true;
            }
            Next::Failed(e) => {
                log::error!("sim target: reading HID reports: {e}; unplugged");
                plugged = None;
            }
            Next::LedRetry => {}
        }
        if pointer_moved {
            let s = pointer.state;
            send(&media, SimInput::Pointer { x: s.x, y: s.y }).await;
        }
        let mut text = String::new();
        for action in actions.drain(..) {
            match action {
                KeyAction::Type(c) => {
                    disk.blink();
                    text.push(c)
                }
                KeyAction::SwitchConsole(n) => {
                    if !text.is_empty() {
                        send(&media, SimInput::Text(std::mem::take(&mut text))).await;
                    }
                    send(&media, SimInput::Console(n)).await;
                }
                KeyAction::Leds(_) => leds_pending = true,
            }
        }
        if !text.is_empty() {
            send(&media, SimInput::Text(text)).await;
        }
    }
}

async fn send(media: &Sender<MediaCmd>, input: SimInput) {
    // Waits for room: typed text must not be lost (the FIFO backs up meanwhile, as a busy
    // host would make the gadget wait).
    let _ = media.send(MediaCmd::SimInput(input)).await;
}

/// Reads whatever whole reports are there. The buffer holds a whole number of reports and
/// each was written in one atomic write, so a read never splits one.
async fn read_reports(fifo: &Async<File>, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len * 64];
    let n = fifo.read_with(|f| (&*f).read(&mut buf)).await?;
    buf.truncate(n - n % len);
    Ok(buf)
}

/// Writes the LED byte to the hid actor; false when it cannot be delivered yet.
fn send_leds(p: &mut Plugged, paths: &HidPaths, leds: u8) -> bool {
    if p.leds.is_none() {
        // ENXIO until the hid actor has its read end open.
        p.leds = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&paths.leds)
            .ok();
    }
    let Some(f) = &p.leds else { return false };
    match (&*f).write(&[leds]) {
        Ok(1) => true,
        Ok(_) => false,
        Err(e) => {
            log::debug!("sim target: writing LEDs: {e}");
            p.leds = None;
            false
        }
    }
}
