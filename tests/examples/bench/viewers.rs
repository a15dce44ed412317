//! The daemon from outside: `/metrics`, the sim's console switch, and viewers that just watch.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
pub use nanokvm_e2e::bench::probe::{metrics, post_console};
use nanokvm_e2e::proto::{ClientMsg, PROTOCOL_VERSION};
use nanokvm_e2e::ws::{Event, Msg, WsClient};
use nanokvm_e2e::{timeout, Metrics};

pub const MS: fn(u64) -> Duration = Duration::from_millis;

/// `later - earlier` of one series; `None` when either scrape lacks it.
pub fn delta(earlier: &Metrics, later: &Metrics, series: &str) -> Option<f64> {
    Some(later.get(series)? - earlier.get(series)?)
}

pub async fn send(c: &mut WsClient, m: &ClientMsg) -> Result<(), String> {
    c.try_send_raw(Message::binary(m.encode()))
        .await
        .map_err(|e| format!("send {m:?}: {e}"))
}

pub async fn hello(c: &mut WsClient) -> Result<(), String> {
    send(
        c,
        &ClientMsg::Hello {
            version: PROTOCOL_VERSION,
            visible: true,
        },
    )
    .await
}

pub async fn close(mut c: WsClient) {
    let _ = c.try_send_raw(Message::Close(None)).await;
    let _ = timeout(MS(300), async {
        while let Some(Event::Msg(_)) = c.next_event(MS(300)).await {}
    })
    .await;
}

/// WebSocket viewers, each on its own thread, reading every frame until stopped.
pub struct Viewers {
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    threads: Vec<JoinHandle<Result<(), String>>>,
}

impl Viewers {
    pub fn start(addr: SocketAddr, n: usize) -> Viewers {
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let threads = (0..n)
            .map(|_| {
                let (stop, frames) = (stop.clone(), frames.clone());
                std::thread::spawn(move || {
                    smol::block_on(async {
                        let mut c = WsClient::connect(addr).await;
                        hello(&mut c).await?;
                        while !stop.load(Relaxed) {
                            match c.next_event(MS(200)).await {
                                Some(Event::Msg(Msg::Video(_))) => {
                                    frames.fetch_add(1, Relaxed);
                                }
                                Some(Event::Msg(_)) | None => {}
                                Some(other) => return Err(format!("a viewer got {other:?}")),
                            }
                        }
                        close(c).await;
                        Ok(())
                    })
                })
            })
            .collect();
        Viewers {
            stop,
            frames,
            threads,
        }
    }

    /// Frames received by all the viewers together.
    pub fn frames(&self) -> u64 {
        self.frames.load(Relaxed)
    }

    /// Waits (bounded) until every viewer has had `frames` frames on average.
    pub fn wait_frames(&self, frames: u64, d: Duration) -> Result<(), String> {
        let want = frames * self.threads.len() as u64;
        let deadline = Instant::now() + d;
        while self.frames() < want {
            if Instant::now() > deadline {
                return Err(format!(
                    "{} viewers had {} frames after {d:?}, expected {want}",
                    self.threads.len(),
                    self.frames()
                ));
            }
            std::thread::sleep(MS(20));
        }
        Ok(())
    }

    pub fn stop(mut self) -> Result<u64, String> {
        self.stop.store(true, Relaxed);
        let mut errors = Vec::new();
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push("a viewer thread panicked".into()),
            }
        }
        if errors.is_empty() {
            Ok(self.frames())
        } else {
            Err(errors.join("; "))
        }
    }
}

impl Drop for Viewers {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

/// Switches the sim console between 3 and 1 every `period` until dropped.
pub struct Switcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<String>>>,
}

impl Switcher {
    pub fn start(addr: SocketAddr, period: Duration) -> Switcher {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let mut errors = Vec::new();
            for k in 1u32.. {
                let due = start + period * k;
                while Instant::now() < due {
                    if flag.load(Relaxed) {
                        return errors;
                    }
                    std::thread::sleep((due - Instant::now()).min(MS(20)));
                }
                if let Err(e) = post_console(addr, if k % 2 == 1 { 3 } else { 1 }) {
                    errors.push(e);
                }
            }
            errors
        });
        Switcher {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops switching; the errors of the switches, if any.
    pub fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Relaxed);
        self.thread
            .take()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| vec!["switcher panicked".into()])
            })
            .unwrap_or_default()
    }
}

impl Drop for Switcher {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

/// xorshift64*: enough randomness for join moments, no dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn range_ms(&mut self, lo: u64, hi: u64) -> Duration {
        MS(lo + self.next() % (hi - lo + 1))
    }
}
