//! A viewer's frame queue: bounded, owned by the executor thread, with one stored waker.
//!
//! Why not `async-channel`: every time a receiver waits on an empty channel, it allocates an
//! event-listener entry, and a viewer waits once per frame — one heap allocation per frame per
//! viewer. Here the ring is allocated once at its capacity, and a waiting viewer leaves a clone
//! of its task's waker (a reference count), so pushing and taking frames allocates nothing.
//! Both ends live on the one executor thread, so an `Rc<RefCell<…>>` is all the sharing needed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use futures_lite::Stream;

use super::PushError;
use crate::media::EncodedFrame;

struct Shared {
    frames: VecDeque<EncodedFrame>,
    capacity: usize,
    /// The viewer's task, when it found the queue empty.
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

/// The hub's end.
pub struct FrameSender {
    shared: Rc<RefCell<Shared>>,
}

/// The viewer's end.
pub struct FrameReceiver {
    shared: Rc<RefCell<Shared>>,
}

pub fn frame_queue(capacity: usize) -> (FrameSender, FrameReceiver) {
    let shared = Rc::new(RefCell::new(Shared {
        frames: VecDeque::with_capacity(capacity),
        capacity,
        waker: None,
        sender_gone: false,
        receiver_gone: false,
    }));
    (
        FrameSender {
            shared: shared.clone(),
        },
        FrameReceiver { shared },
    )
}

impl FrameSender {
    pub fn try_push(&self, frame: &EncodedFrame) -> Result<(), PushError> {
        let mut s = self.shared.borrow_mut();
        if s.receiver_gone {
            return Err(PushError::Closed);
        }
        if s.frames.len() >= s.capacity {
            return Err(PushError::Full);
        }
        s.frames.push_back(frame.clone());
        let waker = s.waker.take();
        // Woken outside the borrow: a waker may run code that looks at the queue.
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    pub fn is_full(&self) -> bool {
        let s = self.shared.borrow();
        s.frames.len() >= s.capacity
    }

    /// The viewer is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.borrow().receiver_gone
    }
}

impl Drop for FrameSender {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.shared.borrow_mut();
            s.sender_gone = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl FrameReceiver {
    /// The next frame; `None` once the hub has let go of the viewer and the queue is empty.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<EncodedFrame>> {
        let mut s = self.shared.borrow_mut();
        if let Some(frame) = s.frames.pop_front() {
            return Poll::Ready(Some(frame));
        }
        if s.sender_gone {
            return Poll::Ready(None);
        }
        match &mut s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Stream for FrameReceiver {
    type Item = EncodedFrame;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<EncodedFrame>> {
        self.poll_recv(cx)
    }
}

impl Drop for FrameReceiver {
    fn drop(&mut self) {
        let mut s = self.shared.borrow_mut();
        s.receiver_gone = true;
        // The frames go back to the pool now, not when the hub sweeps this viewer out.
        s.frames.clear();
        s.waker = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::{future, StreamExt};
    use nanokvm_protocol::{Codec, VideoHeader};

    fn frame(seq: u32) -> EncodedFrame {
        let header = VideoHeader {
            codec: Codec::H264,
            keyframe: false,
            seq,
            capture_us: 0,
            width: 16,
            height: 16,
        };
        EncodedFrame::seal(header, EncodedFrame::payload_buffer(8))
    }

    #[test]
    fn frames_come_out_in_order_and_a_full_queue_refuses_more() {
        let (tx, mut rx) = frame_queue(2);
        assert_eq!(tx.try_push(&frame(1)), Ok(()));
        assert!(!tx.is_full());
        assert_eq!(tx.try_push(&frame(2)), Ok(()));
        assert!(tx.is_full());
        assert_eq!(tx.try_push(&frame(3)), Err(PushError::Full));
        let seq = |f: Option<EncodedFrame>| f.map(|f| f.header.seq);
        assert_eq!(seq(future::block_on(rx.next())), Some(1));
        assert_eq!(seq(future::block_on(rx.next())), Some(2));
        assert!(future::block_on(future::poll_once(rx.next())).is_none());
    }

    #[test]
    fn a_waiting_viewer_is_woken_by_a_frame() {
        let (tx, mut rx) = frame_queue(4);
        let ex = smol::LocalExecutor::new();
        let task = ex.spawn(async move { rx.next().await.map(|f| f.header.seq) });
        future::block_on(ex.run(async {
            smol::future::yield_now().await;
            tx.try_push(&frame(9)).expect("room");
            assert_eq!(task.await, Some(9));
        }));
    }

    #[test]
    fn each_end_sees_the_other_go() {
        let (tx, mut rx) = frame_queue(4);
        tx.try_push(&frame(1)).expect("room");
        drop(tx);
        assert!(future::block_on(rx.next()).is_some(), "queued frames first");
        assert!(future::block_on(rx.next()).is_none());

        let (tx, rx) = frame_queue(4);
        let f = frame(1);
        tx.try_push(&f).expect("room");
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.try_push(&f), Err(PushError::Closed));
        assert!(f.wire().is_unique(), "the queued frame was released");
    }
}
