use super::*;
use nanokvm_protocol::VideoHeader;
use std::cell::RefCell;
use std::rc::Rc;

/// A queue of fixed capacity whose contents the test can inspect.
#[derive(Clone)]
pub(crate) struct TestSink {
    pub queue: Rc<RefCell<Vec<EncodedFrame>>>,
    pub events: Rc<RefCell<Vec<ViewerEvent>>>,
    capacity: usize,
    pub closed: Rc<RefCell<bool>>,
}

impl TestSink {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Rc::default(),
            events: Rc::default(),
            capacity,
            closed: Rc::default(),
        }
    }
    pub fn seqs(&self) -> Vec<u32> {
        self.queue.borrow().iter().map(|f| f.header.seq).collect()
    }
}

impl ViewerSink for TestSink {
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
    fn tell(&self, event: &ViewerEvent) {
        self.events.borrow_mut().push(event.clone());
    }
    fn has_room(&self) -> bool {
        self.queue.borrow().len() < self.capacity
    }
    fn is_closed(&self) -> bool {
        *self.closed.borrow()
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
    assert_eq!(hub.waiting(Codec::H264), Some(Waiting::New));
    hub.deliver(&frame(0, false));
    hub.deliver(&frame(1, true));
    hub.deliver(&frame(2, false));
    assert_eq!(sink.seqs(), vec![1, 2]);
    assert_eq!(hub.waiting(Codec::H264), None);
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
    assert_eq!(hub.deliver(&frame(2, false)).dropped, 1);
    assert_eq!(
        hub.waiting(Codec::H264),
        None,
        "a full queue asks for nothing"
    );
    hub.deliver(&frame(3, true));
    assert_eq!(
        hub.waiting(Codec::H264),
        None,
        "a stalled viewer causes no IDR storm"
    );
    slow.queue.borrow_mut().clear(); // the slow client catches up
    assert_eq!(hub.waiting(Codec::H264), Some(Waiting::Recovering));
    assert_eq!(
        hub.deliver(&frame(4, false)).dropped,
        1,
        "missed frames count until the IDR"
    );
    hub.deliver(&frame(5, true));
    hub.deliver(&frame(6, false));
    assert_eq!(slow.seqs(), vec![5, 6]);
    assert_eq!(fast.seqs(), vec![0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(hub.waiting(Codec::H264), None);
}

#[test]
fn a_client_asking_for_keyframes_is_recovering_not_new() {
    let mut hub = Hub::new();
    let sink = TestSink::new(8);
    hub.join(1, Codec::H264, sink.clone(), true);
    hub.deliver(&frame(0, true));
    hub.await_key(1);
    assert_eq!(hub.waiting(Codec::H264), Some(Waiting::Recovering));
    hub.deliver(&frame(1, false));
    hub.deliver(&frame(2, true));
    assert_eq!(sink.seqs(), vec![0, 2]);
    assert_eq!(hub.waiting(Codec::H264), None);
}

#[test]
fn a_new_viewer_outranks_a_recovering_one() {
    let mut hub = Hub::new();
    let slow = TestSink::new(1);
    hub.join(1, Codec::H264, slow.clone(), true);
    hub.deliver(&frame(0, true));
    hub.deliver(&frame(1, false));
    slow.queue.borrow_mut().clear();
    hub.join(2, Codec::H264, TestSink::new(8), true);
    assert_eq!(hub.waiting(Codec::H264), Some(Waiting::New));
}

#[test]
fn hidden_viewers_get_nothing_and_need_a_key_when_shown() {
    let mut hub = Hub::new();
    let sink = TestSink::new(8);
    hub.join(1, Codec::H264, sink.clone(), true);
    hub.deliver(&frame(0, true));
    assert_eq!(hub.set_visible(1, false), None);
    assert!(!hub.wants(Codec::H264));
    assert!(!hub.anyone_watching());
    hub.deliver(&frame(1, false));
    assert_eq!(hub.set_visible(1, true), Some(Codec::H264));
    assert_eq!(hub.waiting(Codec::H264), Some(Waiting::New));
    hub.deliver(&frame(2, false));
    hub.deliver(&frame(3, true));
    assert_eq!(sink.seqs(), vec![0, 3]);
}

#[test]
fn closed_viewers_are_swept_even_when_hidden_and_codecs_kept_apart() {
    let mut hub = Hub::new();
    let (a, j) = (TestSink::new(8), TestSink::new(8));
    hub.join(1, Codec::H264, a.clone(), false);
    hub.join(2, Codec::Jpeg, j.clone(), true);
    *a.closed.borrow_mut() = true;
    hub.sweep_closed();
    hub.set_visible(1, true);
    assert!(!hub.wants(Codec::H264));
    assert!(hub.wants(Codec::Jpeg));
    hub.deliver(&frame(0, true));
    assert!(j.seqs().is_empty());
    hub.leave(2);
    assert!(!hub.anyone_watching());
}

#[test]
fn announcements_reach_one_or_all() {
    let mut hub = Hub::new();
    let (a, b) = (TestSink::new(1), TestSink::new(1));
    hub.join(1, Codec::H264, a.clone(), true);
    hub.join(2, Codec::H264, b.clone(), false);
    hub.tell(2, &ViewerEvent::SettingsRejected("x".into()));
    hub.broadcast(&ViewerEvent::Settings(Default::default()));
    assert_eq!(a.events.borrow().len(), 1);
    assert_eq!(b.events.borrow().len(), 2);
}
