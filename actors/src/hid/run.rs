//! The hid actor's loop: opens the gadget devices non-blocking, writes what [`HidCore`]
//! queues, reads the keyboard's LED output report, and sleeps until the next input, LED
//! byte or timer. Every file operation is non-blocking, so the executor never waits on the
//! host.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_lite::future;
use nanokvm_protocol::{HidStatus, KeyboardLayout};
use smol::Async;

use super::{ClientId, Device, HidCore, HidEvent, Input, PasteOutcome, WriteOutcome};
use crate::clock::{Clock, Micros};
use crate::metrics::Metrics;
use crate::watch::WatchSender;

/// The device files; on the device `/dev/hidg0..2`, in the sim FIFOs under its scratch root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HidPaths {
    pub keyboard: PathBuf,
    pub mouse: PathBuf,
    pub absolute: PathBuf,
    /// Where the keyboard's LED output reports are read: the keyboard device itself on a
    /// NanoKVM; a second FIFO in the sim, because a FIFO carries one direction only.
    pub leds: PathBuf,
}

impl Default for HidPaths {
    fn default() -> Self {
        Self {
            keyboard: "/dev/hidg0".into(),
            mouse: "/dev/hidg1".into(),
            absolute: "/dev/hidg2".into(),
            leds: "/dev/hidg0".into(),
        }
    }
}

impl HidPaths {
    fn of(&self, dev: Device) -> &PathBuf {
        match dev {
            Device::Keyboard => &self.keyboard,
            Device::Mouse => &self.mouse,
            Device::Absolute => &self.absolute,
        }
    }
}

/// The hid actor's mailbox.
pub enum HidMsg {
    /// `at`: when the session decoded the message (the latency figure starts there).
    Input {
        client: ClientId,
        at: Micros,
        input: Input,
    },
    /// The client's session ended.
    Leave { client: ClientId },
    Paste {
        text: String,
        layout: KeyboardLayout,
        reply: Sender<PasteOutcome>,
    },
}

/// An LED reader with nothing to read (writer gone) is reopened this often.
const LED_REOPEN: Duration = Duration::from_millis(500);

pub async fn run(
    inbox: Receiver<HidMsg>,
    paths: HidPaths,
    status: WatchSender<HidStatus>,
    clock: Clock,
    metrics: Arc<Metrics>,
) {
    let mut core = HidCore::new();
    let mut files: [Option<File>; 3] = [None, None, None];
    let mut leds: Option<Async<File>> = None;
    let mut leds_retry = smol::Timer::after(Duration::ZERO);
    let mut replies: HashMap<u64, Sender<PasteOutcome>> = HashMap::new();
    let mut next_request = 0u64;
    let mut wake = smol::Timer::never();
    loop {
        let now = clock.now_us();
        core.tick(now);
        for dev in Device::ALL {
            sync_device(&mut core, &mut files, &paths, dev, now, &clock, &metrics);
        }
        for event in core.take_events() {
            let HidEvent::PasteDone { requester, outcome } = event;
            if let Some(reply) = replies.remove(&requester) {
                let _ = reply.try_send(outcome);
            }
        }
        status.set(core.status());
        metrics
            .hid_reports_dropped
            .store(core.dropped_total(), std::sync::atomic::Ordering::Relaxed);
        match core.next_wakeup() {
            Some(at) => wake.set_after(Duration::from_micros(at.saturating_sub(clock.now_us()))),
            None => wake.set_at(std::time::Instant::now() + Duration::from_secs(3600)),
        }

        enum Next {
            Msg(Option<HidMsg>),
            Timer,
            Led(std::io::Result<usize>, u8),
            LedReopen,
        }
        let msg = async { Next::Msg(inbox.recv().await.ok()) };
        let timer = async {
            (&mut wake).await;
            Next::Timer
        };
        let led = async {
            match &mut leds {
                Some(reader) => {
                    let mut buf = [0u8; 16];
                    let r = reader.read_with(|f| (&*f).read(&mut buf)).await;
                    let last = match &r {
                        Ok(n) if *n > 0 => buf[n - 1],
                        _ => 0,
                    };
                    Next::Led(r, last)
                }
                None => {
                    (&mut leds_retry).await;
                    Next::LedReopen
                }
            }
        };
        let next = future::or(msg, future::or(led, timer)).await;
        let now = clock.now_us();
        match next {
            Next::Msg(None) => break,
            Next::Msg(Some(HidMsg::Input { client, at, input })) => {
                core.input(now, client, at, input)
            }
            Next::Msg(Some(HidMsg::Leave { client })) => core.leave(client),
            Next::Msg(Some(HidMsg::Paste {
                text,
                layout,
                reply,
            })) => {
                next_request += 1;
                match core.paste(now, next_request, &text, layout) {
                    Ok(()) => {
                        replies.insert(next_request, reply);
                    }
                    Err(refused) => {
                        let _ = reply.try_send(refused);
                    }
                }
            }
            Next::Timer => {}
            Next::Led(Ok(n), byte) if n > 0 => core.leds(byte),
            Next::Led(result, _) => {
                // End of file (the sim's writer is gone) or an error (USB reset): reopen.
                if let Err(e) = result {
                    log::debug!("hid: reading LEDs from {}: {e}", paths.leds.display());
                }
                leds = None;
                leds_retry.set_after(LED_REOPEN);
            }
            Next::LedReopen => {
                leds = open_leds(&paths);
                if leds.is_none() {
                    leds_retry.set_after(LED_REOPEN);
                }
            }
        }
    }
    log::debug!("hid actor stopped");
}

/// Opens, closes and writes `dev` as the core says, until its queue is empty or the device
/// cannot take more.
fn sync_device(
    core: &mut HidCore,
    files: &mut [Option<File>; 3],
    paths: &HidPaths,
    dev: Device,
    now: Micros,
    clock: &Clock,
    metrics: &Metrics,
) {
    let slot = &mut files[dev as usize];
    if !core.is_open(dev) {
        *slot = None;
    }
    if core.wants_open(dev, now) {
        let path = paths.of(dev);
        match OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
        {
            Ok(f) => {
                *slot = Some(f);
                core.opened(dev, now, true);
            }
            Err(e) => {
                log::debug!("hid: opening {}: {e}", path.display());
                core.opened(dev, now, false);
            }
        }
    }
    while let (Some(file), Some(report)) = (slot.as_ref(), core.next_write(dev, now)) {
        let outcome = match (&*file).write(report) {
            Ok(_) => WriteOutcome::Written,
            Err(e) if e.kind() == ErrorKind::WouldBlock => WriteOutcome::WouldBlock,
            Err(e) => {
                log::info!("hid: writing to {}: {e}", paths.of(dev).display());
                WriteOutcome::Failed
            }
        };
        // The write has returned: this is where the latency figure stops.
        let done = clock.now_us();
        if let Some(us) = core.written(dev, done, outcome) {
            metrics.hid_latency.record(us);
        }
        if outcome != WriteOutcome::Written {
            if !core.is_open(dev) {
                *slot = None;
            }
            break;
        }
    }
}

/// Opened read-write: the gadget's node takes both, and a FIFO opened for reading only
/// would read end-of-file whenever nobody has it open for writing.
fn open_leds(paths: &HidPaths) -> Option<Async<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&paths.leds)
        .map_err(|e| log::debug!("hid: opening {} for LEDs: {e}", paths.leds.display()))
        .ok()?;
    Async::new(file)
        .map_err(|e| log::warn!("hid: cannot poll {}: {e}", paths.leds.display()))
        .ok()
}
