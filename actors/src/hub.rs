//! Fan-out of encoded frames to viewers. Each viewer has a bounded queue; a frame is pushed as
//! a reference-counted handle, never copied. A viewer whose queue is full misses frames until
//! the next IDR (anything else would be undecodable for it), and the overflow asks for one.

use nanokvm_protocol::Codec;

use crate::media::EncodedFrame;

pub type ViewerId = u64;

#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    Full,
    Closed,
}

/// Where a viewer's frames go: its bounded queue.
pub trait FrameSink {
    fn try_push(&self, frame: &EncodedFrame) -> Result<(), PushError>;
}

impl FrameSink for async_channel::Sender<EncodedFrame> {
    fn try_push(&self, frame: &EncodedFrame) -> Result<(), PushError> {
        self.try_send(frame.clone()).map_err(|e| match e {
            async_channel::TrySendError::Full(_) => PushError::Full,
            async_channel::TrySendError::Closed(_) => PushError::Closed,
        })
    }
}

struct Viewer<S> {
    id: ViewerId,
    codec: Codec,
    sink: S,
    visible: bool,
    awaiting_key: bool,
    /// Its queue overflowed: every frame until the next IDR it receives counts as dropped.
    overflowed: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: u64,
    pub bytes: u64,
    pub dropped: u64,
    /// A queue overflowed: that viewer now waits for an IDR.
    pub overflowed: bool,
    /// Viewers whose queue is gone (disconnected); they were removed.
    pub closed: Vec<ViewerId>,
}

pub struct Hub<S> {
    viewers: Vec<Viewer<S>>,
}

impl<S: FrameSink> Hub<S> {
    pub fn new() -> Self {
        Self {
            viewers: Vec::new(),
        }
    }

    pub fn join(&mut self, id: ViewerId, codec: Codec, sink: S, visible: bool) {
        self.viewers.push(Viewer {
            id,
            codec,
            sink,
            visible,
            awaiting_key: true,
            overflowed: false,
        });
    }

    pub fn leave(&mut self, id: ViewerId) -> bool {
        let before = self.viewers.len();
        self.viewers.retain(|v| v.id != id);
        self.viewers.len() != before
    }

    /// Returns true when the viewer just became visible and so needs an IDR.
    pub fn set_visible(&mut self, id: ViewerId, visible: bool) -> bool {
        let Some(v) = self.viewers.iter_mut().find(|v| v.id == id) else {
            return false;
        };
        let shown = visible && !v.visible;
        v.visible = visible;
        if shown {
            v.awaiting_key = true;
        }
        shown
    }

    /// The viewer's decoder lost track: stop sending it P-frames until the next IDR.
    pub fn await_key(&mut self, id: ViewerId) {
        if let Some(v) = self.viewers.iter_mut().find(|v| v.id == id) {
            v.awaiting_key = true;
        }
    }

    /// Somebody is watching this codec.
    pub fn wants(&self, codec: Codec) -> bool {
        self.viewers.iter().any(|v| v.codec == codec && v.visible)
    }

    /// Somebody watching this codec has nothing decodable yet.
    pub fn waiting(&self, codec: Codec) -> bool {
        self.viewers
            .iter()
            .any(|v| v.codec == codec && v.visible && v.awaiting_key)
    }

    pub fn is_empty(&self) -> bool {
        self.viewers.is_empty()
    }

    pub fn deliver(&mut self, frame: &EncodedFrame) -> Delivery {
        let mut d = Delivery::default();
        let codec = frame.header.codec;
        for v in self
            .viewers
            .iter_mut()
            .filter(|v| v.codec == codec && v.visible)
        {
            if v.awaiting_key && !frame.keyframe() {
                d.dropped += u64::from(v.overflowed);
                continue;
            }
            match v.sink.try_push(frame) {
                Ok(()) => {
                    v.awaiting_key = false;
                    v.overflowed = false;
                    d.sent += 1;
                    d.bytes += frame.payload().len() as u64;
                }
                Err(PushError::Full) => {
                    d.dropped += 1;
                    // A refused IDR asks again (the policy rate-limits), or the viewer would
                    // wait for the end of the GOP.
                    if !v.overflowed || frame.keyframe() {
                        v.awaiting_key = true;
                        v.overflowed = true;
                        d.overflowed = true;
                    }
                }
                Err(PushError::Closed) => d.closed.push(v.id),
            }
        }
        self.viewers.retain(|v| !d.closed.contains(&v.id));
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanokvm_protocol::VideoHeader;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A queue of fixed capacity whose contents the test can inspect.
    #[derive(Clone)]
    struct TestSink {
        queue: Rc<RefCell<Vec<EncodedFrame>>>,
        capacity: usize,
        closed: Rc<RefCell<bool>>,
    }

    impl TestSink {
        fn new(capacity: usize) -> Self {
            Self {
                queue: Rc::default(),
                capacity,
                closed: Rc::default(),
            }
        }
        fn seqs(&self) -> Vec<u32> {
            self.queue.borrow().iter().map(|f| f.header.seq).collect()
        }
    }

    impl FrameSink for TestSink {
        fn try_push(&self, frame: &EncodedFrame) -> Result<(), PushError> {
            if *self.closed.borrow() {
                return Err(PushError::Closed);
            }
            let mut q = self.queue.borrow_mut();
            if q.len() >= self.capacity {
                return Err(PushError::Full);
            }
            q.push(frame.clone());
            Ok(())
        }
    }

    fn frame(seq: u32, keyframe: bool) -> EncodedFrame {
        let header = VideoHeader {
            codec: Codec::H264,
            keyframe,
            seq,
            capture_us: 0,
            width: 16,
            height: 16,
        };
        let mut buf = EncodedFrame::payload_buffer(4);
        buf.extend_from_slice(&[0, 0, 1, 0x65]);
        EncodedFrame::seal(header, buf)
    }

    #[test]
    fn a_new_viewer_starts_at_a_keyframe() {
        let mut hub = Hub::new();
        let sink = TestSink::new(8);
        hub.join(1, Codec::H264, sink.clone(), true);
        assert!(hub.waiting(Codec::H264));
        hub.deliver(&frame(0, false));
        hub.deliver(&frame(1, true));
        hub.deliver(&frame(2, false));
        assert_eq!(sink.seqs(), vec![1, 2]);
        assert!(!hub.waiting(Codec::H264));
    }

    #[test]
    fn every_viewer_gets_the_same_bytes_not_a_copy() {
        let mut hub = Hub::new();
        let (a, b) = (TestSink::new(8), TestSink::new(8));
        hub.join(1, Codec::H264, a.clone(), true);
        hub.join(2, Codec::H264, b.clone(), true);
        let f = frame(0, true);
        assert_eq!(hub.deliver(&f).sent, 2);
        let pa = a.queue.borrow()[0].wire().as_ptr();
        let pb = b.queue.borrow()[0].wire().as_ptr();
        assert_eq!(pa, pb);
        assert_eq!(pa, f.wire().as_ptr());
    }

    #[test]
    fn overflow_drops_to_the_next_idr_without_touching_others() {
        let mut hub = Hub::new();
        let (slow, fast) = (TestSink::new(2), TestSink::new(100));
        hub.join(1, Codec::H264, slow.clone(), true);
        hub.join(2, Codec::H264, fast.clone(), true);
        hub.deliver(&frame(0, true));
        hub.deliver(&frame(1, false));
        let d = hub.deliver(&frame(2, false));
        assert!(d.overflowed);
        assert_eq!(d.dropped, 1);
        slow.queue.borrow_mut().clear(); // the slow client catches up
        let d = hub.deliver(&frame(3, false));
        assert!(!d.overflowed, "one overflow asks once");
        assert_eq!(
            d.dropped, 1,
            "frames skipped until the IDR count as dropped"
        );
        hub.deliver(&frame(4, true));
        hub.deliver(&frame(5, false));
        assert_eq!(slow.seqs(), vec![4, 5]);
        assert_eq!(fast.seqs(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn hidden_viewers_get_nothing_and_need_a_key_when_shown() {
        let mut hub = Hub::new();
        let sink = TestSink::new(8);
        hub.join(1, Codec::H264, sink.clone(), true);
        hub.deliver(&frame(0, true));
        assert!(!hub.set_visible(1, false));
        assert!(!hub.wants(Codec::H264));
        hub.deliver(&frame(1, false));
        assert!(hub.set_visible(1, true));
        hub.deliver(&frame(2, false));
        hub.deliver(&frame(3, true));
        assert_eq!(sink.seqs(), vec![0, 3]);
    }

    #[test]
    fn closed_viewers_are_removed_and_codecs_kept_apart() {
        let mut hub = Hub::new();
        let (a, j) = (TestSink::new(8), TestSink::new(8));
        hub.join(1, Codec::H264, a.clone(), true);
        hub.join(2, Codec::Jpeg, j.clone(), true);
        *a.closed.borrow_mut() = true;
        let d = hub.deliver(&frame(0, true));
        assert_eq!(d.closed, vec![1]);
        assert!(!hub.wants(Codec::H264));
        assert!(hub.wants(Codec::Jpeg));
        assert!(j.seqs().is_empty());
        assert!(hub.leave(2));
        assert!(hub.is_empty());
    }
}
