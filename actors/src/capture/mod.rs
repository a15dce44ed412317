//! The capture actor: paces the source at the configured frame rate. Each tick asks the media
//! thread for one picture (unless the previous one is still being taken: then the tick is
//! skipped, never queued, so a slow encoder lowers the frame rate instead of adding latency),
//! and passes what the grab saw to the encoder actor.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use futures_lite::future;
use nanokvm_protocol::StreamSettings;

use crate::clock::{wall_millis_of_day, Clock, Micros};
use crate::media::{GrabReport, MediaCmd};
use crate::video_msgs::{CaptureMsg, EncoderMsg};

/// A grab the pacer wants issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrabOrder {
    pub grab_seq: u64,
}

/// If the media thread has not answered a grab in this long, it is assumed lost and pacing
/// resumes (a stuck grab must not stop the stream for good).
const GRAB_TIMEOUT_US: Micros = 2_000_000;

#[derive(Debug)]
pub struct CapturePacer {
    active: bool,
    fps: u8,
    next_seq: u64,
    in_flight: Option<(u64, Micros)>,
    pub skipped_ticks: u64,
}

impl CapturePacer {
    pub fn new(fps: u8) -> Self {
        Self {
            active: false,
            fps,
            next_seq: 1,
            in_flight: None,
            skipped_ticks: 0,
        }
    }

    pub fn period(&self) -> Duration {
        Duration::from_micros(1_000_000 / self.fps.max(1) as u64)
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Returns true when the tick period changed.
    pub fn configure(&mut self, active: bool, fps: u8) -> bool {
        self.active = active;
        let changed = fps != self.fps;
        self.fps = fps;
        changed
    }

    pub fn tick(&mut self, now: Micros) -> Option<GrabOrder> {
        if !self.active {
            return None;
        }
        if let Some((_, since)) = self.in_flight {
            if now.saturating_sub(since) < GRAB_TIMEOUT_US {
                self.skipped_ticks += 1;
                return None;
            }
        }
        let grab_seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight = Some((grab_seq, now));
        Some(GrabOrder { grab_seq })
    }

    /// Returns true when the report answers the grab in flight (a late one is ignored).
    pub fn grabbed(&mut self, grab_seq: u64) -> bool {
        if self.in_flight.is_some_and(|(s, _)| s == grab_seq) {
            self.in_flight = None;
            true
        } else {
            false
        }
    }
}

pub async fn run(
    mailbox: Receiver<CaptureMsg>,
    grabs: Receiver<GrabReport>,
    media: Sender<MediaCmd>,
    encoder: Sender<EncoderMsg>,
    settings: StreamSettings,
    clock: Clock,
) {
    let mut pacer = CapturePacer::new(settings.fps);
    let mut settings = settings;
    // A deadline rather than an interval: after a stall, missed ticks are skipped, not caught
    // up in a burst.
    let mut next_tick = Instant::now() + pacer.period();
    let mut timer = smol::Timer::at(next_tick);
    enum Input {
        Tick,
        Msg(CaptureMsg),
        Grabbed(GrabReport),
        Closed,
    }
    // Each wait lives until it completes: an `async-channel` receive allocates when it starts
    // waiting, so a wait dropped and made anew every tick would allocate every tick.
    let mut next_msg = pin!(mailbox.recv());
    let mut next_grab = pin!(grabs.recv());
    loop {
        let input = future::poll_fn(|cx| {
            if let Poll::Ready(msg) = next_msg.as_mut().poll(cx) {
                next_msg.set(mailbox.recv());
                return Poll::Ready(msg.map_or(Input::Closed, Input::Msg));
            }
            if let Poll::Ready(report) = next_grab.as_mut().poll(cx) {
                next_grab.set(grabs.recv());
                return Poll::Ready(report.map_or(Input::Closed, Input::Grabbed));
            }
            // An idle capture does not even wake up.
            if pacer.is_active() && Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(Input::Tick);
            }
            Poll::Pending
        })
        .await;
        match input {
            Input::Closed => break,
            Input::Msg(CaptureMsg::Configure {
                active,
                settings: new_settings,
                grab_now,
            }) => {
                let waking = active && !pacer.is_active();
                settings = new_settings;
                if pacer.configure(active, settings.fps) || waking {
                    next_tick = Instant::now() + pacer.period();
                    timer.set_at(next_tick);
                }
                if waking || grab_now {
                    grab(&mut pacer, &media, clock, settings);
                }
            }
            Input::Tick => {
                let now = Instant::now();
                next_tick += pacer.period();
                if next_tick <= now {
                    next_tick = now + pacer.period();
                }
                timer.set_at(next_tick);
                grab(&mut pacer, &media, clock, settings);
            }
            Input::Grabbed(report) => {
                log::debug!(target: "frame", "{} captured {:?}", report.grab_seq, report.info.change);
                if pacer.grabbed(report.grab_seq)
                    && encoder.send(EncoderMsg::Captured(report)).await.is_err()
                {
                    break;
                }
            }
        }
    }
}

fn grab(
    pacer: &mut CapturePacer,
    media: &Sender<MediaCmd>,
    clock: Clock,
    settings: StreamSettings,
) {
    let now = clock.now_us();
    if let Some(order) = pacer.tick(now) {
        let cmd = MediaCmd::Grab {
            grab_seq: order.grab_seq,
            capture_us: now,
            wall_ms: wall_millis_of_day(),
            settings,
        };
        if media.try_send(cmd).is_err() {
            pacer.grabbed(order.grab_seq);
        } else {
            log::debug!(target: "frame", "{} grab", order.grab_seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_until_configured_active() {
        let mut p = CapturePacer::new(30);
        assert_eq!(p.tick(0), None);
        p.configure(true, 30);
        assert_eq!(p.tick(0), Some(GrabOrder { grab_seq: 1 }));
    }

    #[test]
    fn a_tick_during_a_grab_is_skipped_not_queued() {
        let mut p = CapturePacer::new(30);
        p.configure(true, 30);
        assert!(p.tick(0).is_some());
        assert_eq!(p.tick(33_000), None);
        assert_eq!(p.skipped_ticks, 1);
        assert!(p.grabbed(1));
        assert_eq!(p.tick(66_000), Some(GrabOrder { grab_seq: 2 }));
        assert!(
            !p.grabbed(1),
            "a stale report does not clear the grab in flight"
        );
    }

    #[test]
    fn a_lost_grab_does_not_stop_capture_for_good() {
        let mut p = CapturePacer::new(30);
        p.configure(true, 30);
        p.tick(0);
        assert_eq!(p.tick(GRAB_TIMEOUT_US - 1), None);
        assert_eq!(p.tick(GRAB_TIMEOUT_US), Some(GrabOrder { grab_seq: 2 }));
    }

    #[test]
    fn period_follows_fps() {
        let mut p = CapturePacer::new(30);
        assert_eq!(p.period(), Duration::from_micros(33_333));
        assert!(p.configure(true, 60));
        assert!(!p.configure(false, 60));
        assert_eq!(p.period(), Duration::from_micros(16_666));
    }
}
