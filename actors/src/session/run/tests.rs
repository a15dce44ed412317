//! The frame path from the hub to the sockets allocates nothing in steady state: the hub's
//! queues, the writer's waits and the WebSocket framing reuse what they set up at the start.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Wake, Waker};
use std::time::Instant;

use nanokvm_protocol::{AtxState, HidLink, HidStatus, StreamSettings, VideoHeader};

use super::*;
use crate::alloc_count::thread_allocations;
use crate::hub::{Hub, ViewerQueues};
use crate::media::FramePool;
use crate::watch::watch;

/// A socket that takes everything at once and counts the bytes.
struct CountingSocket(Rc<Cell<usize>>);

impl AsyncWrite for CountingSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.set(self.0.get() + buf.len());
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let n = bufs.iter().map(|b| b.len()).sum();
        self.0.set(self.0.get() + n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A waker that only notes it was used: the test polls the writers itself, so the executor's
/// own bookkeeping is not part of what is counted.
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn hid_status(leds: bool) -> HidStatus {
    HidStatus {
        keyboard: HidLink::Ready,
        mouse: HidLink::Ready,
        absolute: HidLink::Ready,
        leds: leds.then_some(nanokvm_protocol::KeyboardLeds {
            num_lock: true,
            caps_lock: false,
            scroll_lock: false,
        }),
    }
}

#[test]
fn the_frame_path_allocates_nothing_in_steady_state() {
    const VIEWERS: usize = 4;
    const WARM_UP: u32 = 40;
    const MEASURED: u32 = 300;
    const PAYLOAD: usize = 3000;
    let metrics = Arc::new(Metrics::default());
    let (_shutdown_tx, shutdown_rx) = async_channel::bounded::<()>(1);
    let (hid_tx, hid_rx) = watch(hid_status(false));
    let (_atx_tx, atx_feed) = watch(AtxState {
        power_led: true,
        hdd_led: None,
        busy: None,
    });
    let mut hub = Hub::new();
    let mut writers: Vec<Pin<Box<dyn Future<Output = Ending>>>> = Vec::new();
    let mut sockets = Vec::new();
    // The reader's ends of the session's channels, kept open as a live reader would.
    let mut readers = Vec::new();
    for id in 0..VIEWERS as u64 {
        let (frames_tx, frames_rx) = frame_queue(FRAME_QUEUE);
        let (events_tx, events_rx) = async_channel::bounded(16);
        let (control_tx, control_rx) = async_channel::bounded(16);
        let (paste_tx, paste_rx) = async_channel::bounded(2);
        let (atx_tx, atx_replies) = async_channel::bounded(4);
        let written = Rc::new(Cell::new(0));
        sockets.push(written.clone());
        let devices = DeviceFeeds {
            hid: hid_rx.clone(),
            atx: atx_feed.clone(),
        };
        let (shutdown, metrics) = (shutdown_rx.clone(), metrics.clone());
        writers.push(Box::pin(async move {
            let mut out = WsWriter::new(CountingSocket(written));
            write(
                &mut out,
                id,
                WriterInbox {
                    frames: frames_rx,
                    events: events_rx,
                    control: control_rx,
                    pastes: paste_rx,
                    atx: atx_replies,
                },
                &shutdown,
                devices,
                future::pending(),
                &metrics,
            )
            .await
        }));
        let queues = ViewerQueues {
            frames: frames_tx,
            events: Some(events_tx),
        };
        hub.join(id, Codec::H264, queues, true);
        readers.push((control_tx, paste_tx, atx_tx));
    }
    hub.broadcast(&ViewerEvent::Welcome {
        settings: StreamSettings::default(),
        status: None,
    });

    let woken = Arc::new(Woken(AtomicBool::new(true)));
    let waker = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&waker);
    let mut pool = FramePool::new(6);
    let mut frame = |seq: u32| {
        let mut buf = pool.take(PAYLOAD);
        buf.extend_from_slice(&[0x5a; PAYLOAD]);
        let header = VideoHeader {
            codec: Codec::H264,
            keyframe: seq.is_multiple_of(30),
            seq,
            capture_us: u64::from(seq) * 33_333,
            width: 1280,
            height: 720,
        };
        let mut frame = pool.seal(header, buf);
        frame.ready_at = Some(Instant::now());
        frame
    };
    let mut allocations = 0;
    for seq in 0..WARM_UP + MEASURED {
        if seq == WARM_UP / 2 {
            // A device change while warming up: the writers' waits complete and are made
            // anew, as they are now and then in a real session.
            hid_tx.set(hid_status(true));
        }
        let before = thread_allocations();
        let f = frame(seq);
        let delivery = hub.deliver(&f);
        drop(f);
        assert_eq!(delivery.sent, VIEWERS as u64, "frame {seq}");
        assert!(
            woken.0.swap(false, Ordering::Relaxed),
            "frame {seq} woke nobody"
        );
        for w in &mut writers {
            assert!(w.as_mut().poll(&mut cx).is_pending(), "a writer ended");
        }
        if seq >= WARM_UP {
            allocations += thread_allocations() - before;
        }
    }
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in {MEASURED} frames to {VIEWERS} viewers"
    );
    for s in sockets {
        assert!(
            s.get() > (WARM_UP + MEASURED) as usize * PAYLOAD,
            "every frame reached every socket"
        );
    }
}
