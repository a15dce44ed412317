//! Fan-out of encoded frames to viewers. Each viewer has a bounded queue; a frame is pushed as
//! a reference-counted handle, never copied. A viewer whose queue is full misses frames until
//! the next IDR (anything else would be undecodable for it), and asks for that IDR once its
//! queue has room again — a viewer that never drains never causes a single extra IDR.

use nanokvm_protocol::{Codec, StreamSettings, VideoStatus};

use crate::media::EncodedFrame;

mod frame_queue;
pub use frame_queue::{frame_queue, FrameReceiver, FrameSender};

pub type ViewerId = u64;

/// What the encoder actor tells each viewer besides frames.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewerEvent {
    /// `status` is `None` until the first picture is captured: nothing is known about the
    /// video yet, and the first capture announces it.
    Welcome {
        settings: StreamSettings,
        status: Option<VideoStatus>,
    },
    Settings(StreamSettings),
    VideoStatus(VideoStatus),
    SettingsRejected(String),
}

#[derive(Debug, PartialEq, Eq)]
pub enum PushError {
    Full,
    Closed,
}

/// Where a viewer's frames and announcements go: its bounded queues.
pub trait ViewerSink {
    fn try_push(&self, frame: &EncodedFrame) -> Result<(), PushError>;
    /// Status and settings announcements; lossy (a viewer that cannot take them is far behind
    /// and will be told the state again by the next change).
    fn tell(&self, event: &ViewerEvent);
    fn has_room(&self) -> bool;
    fn is_closed(&self) -> bool;
}

/// The queues of a live viewer.
pub struct ViewerQueues {
    pub frames: FrameSender,
    /// `None` for plain HTTP streams, which have no use for announcements.
    pub events: Option<async_channel::Sender<ViewerEvent>>,
}

impl ViewerSink for ViewerQueues {
    fn try_push(&self, frame: &EncodedFrame) -> Result<(), PushError> {
        self.frames.try_push(frame)
    }

    fn tell(&self, event: &ViewerEvent) {
        if let Some(events) = &self.events {
            let _ = events.try_send(event.clone());
        }
    }

    fn has_room(&self) -> bool {
        !self.frames.is_full()
    }

    fn is_closed(&self) -> bool {
        self.frames.is_closed()
    }
}

/// Why a viewer has nothing decodable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// It never had a keyframe (new, or shown again after being hidden).
    New,
    /// Its queue overflowed and has room again.
    Recovering,
}

/// Where a viewer stands with keyframes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyState {
    /// It decodes what it gets.
    Live,
    /// It never had a keyframe: new, or shown again after being hidden.
    New,
    /// It had one but lost track (its queue overflowed, or its decoder failed).
    Lost,
}

struct Viewer<S> {
    id: ViewerId,
    codec: Codec,
    sink: S,
    visible: bool,
    key: KeyState,
    /// Its queue overflowed: every frame until its next IDR counts as dropped.
    overflowed: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub sent: u64,
    pub bytes: u64,
    pub dropped: u64,
}

pub struct Hub<S> {
    viewers: Vec<Viewer<S>>,
}

impl<S: ViewerSink> Hub<S> {
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
            key: KeyState::New,
            overflowed: false,
        });
    }

    pub fn leave(&mut self, id: ViewerId) {
        self.viewers.retain(|v| v.id != id);
    }

    /// Forgets viewers whose queues are gone (disconnected), hidden ones included.
    pub fn sweep_closed(&mut self) {
        self.viewers.retain(|v| !v.sink.is_closed());
    }

    /// Returns the viewer's codec when it just became visible (and so needs a keyframe).
    pub fn set_visible(&mut self, id: ViewerId, visible: bool) -> Option<Codec> {
        let v = self.viewers.iter_mut().find(|v| v.id == id)?;
        let shown = visible && !v.visible;
        v.visible = visible;
        if shown {
            v.key = KeyState::New;
            v.overflowed = false;
        }
        shown.then_some(v.codec)
    }

    /// The viewer's decoder lost track: stop sending it P-frames until the next IDR.
    pub fn await_key(&mut self, id: ViewerId) {
        if let Some(v) = self.viewers.iter_mut().find(|v| v.id == id) {
            if v.key == KeyState::Live {
                v.key = KeyState::Lost;
            }
        }
    }

    /// Somebody is watching this codec.
    pub fn wants(&self, codec: Codec) -> bool {
        self.viewers.iter().any(|v| v.codec == codec && v.visible)
    }

    pub fn anyone_watching(&self) -> bool {
        self.viewers.iter().any(|v| v.visible)
    }

    /// Whether a viewer of this codec needs a keyframe it could take now; a new viewer
    /// outranks a recovering one (only new viewers skip the IDR rate limit, so a client that
    /// keeps asking cannot force an IDR per frame on everybody).
    pub fn waiting(&self, codec: Codec) -> Option<Waiting> {
        let waiting = self.viewers.iter().filter(|v| {
            v.codec == codec && v.visible && v.key != KeyState::Live && v.sink.has_room()
        });
        waiting.fold(None, |acc, v| match (acc, v.key) {
            (Some(Waiting::New), _) | (_, KeyState::New) => Some(Waiting::New),
            _ => Some(Waiting::Recovering),
        })
    }

    pub fn tell(&self, id: ViewerId, event: &ViewerEvent) {
        if let Some(v) = self.viewers.iter().find(|v| v.id == id) {
            v.sink.tell(event);
        }
    }

    pub fn broadcast(&self, event: &ViewerEvent) {
        self.viewers.iter().for_each(|v| v.sink.tell(event));
    }

    pub fn deliver(&mut self, frame: &EncodedFrame) -> Delivery {
        let mut d = Delivery::default();
        let codec = frame.header.codec;
        for v in self
            .viewers
            .iter_mut()
            .filter(|v| v.codec == codec && v.visible)
        {
            if v.key != KeyState::Live && !frame.keyframe() {
                d.dropped += u64::from(v.overflowed);
                continue;
            }
            match v.sink.try_push(frame) {
                Ok(()) => {
                    v.key = KeyState::Live;
                    v.overflowed = false;
                    d.sent += 1;
                    d.bytes += frame.payload_len() as u64;
                }
                Err(PushError::Full) => {
                    d.dropped += 1;
                    if v.key == KeyState::Live {
                        v.key = KeyState::Lost;
                    }
                    v.overflowed = true;
                }
                // Removed by the next sweep.
                Err(PushError::Closed) => {}
            }
        }
        d
    }
}

#[cfg(test)]
pub(crate) mod tests;
