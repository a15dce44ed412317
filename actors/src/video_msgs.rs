//! The mailboxes of the video pipeline: what the capture actor and the encoder actor are
//! told, by each other and by the sessions and streams.
//! They live here, apart from both actors, so that neither actor imports the other.

use async_channel::Sender;
use nanokvm_protocol::{Codec, KeyframeReason, StreamSettings};

use crate::hub::{FrameSender, ViewerEvent, ViewerId};
use crate::media::GrabReport;

/// To the capture actor, from the encoder actor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CaptureMsg {
    /// The whole desired state, so that a newer message can replace an older one unread.
    /// Capture runs only while somebody watches; `grab_now` takes a picture at once for a
    /// viewer that is waiting, instead of at the next tick.
    Configure {
        active: bool,
        settings: StreamSettings,
        grab_now: bool,
    },
}

/// To the encoder actor: viewers joining and leaving (sessions, streams) and captured
/// pictures (the capture actor).
pub enum EncoderMsg {
    Join {
        id: ViewerId,
        codec: Codec,
        frames: FrameSender,
        /// Status and settings changes; `None` for plain HTTP streams, which have no use for them.
        events: Option<Sender<ViewerEvent>>,
        visible: bool,
    },
    Leave {
        id: ViewerId,
    },
    Visibility {
        id: ViewerId,
        visible: bool,
    },
    KeyframeRequest {
        id: ViewerId,
        reason: KeyframeReason,
    },
    ChangeSettings {
        id: ViewerId,
        settings: StreamSettings,
    },
    Captured(GrabReport),
}
