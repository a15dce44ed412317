//! The encoder actor: decides per captured frame what to encode (through the IDR policy), hands
//! the work to the media thread, and fans the result out to viewers through the hub.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use async_channel::{Receiver, Sender};
use futures_lite::future;
use nanokvm_protocol::{Codec, KeyframeReason, StreamSettings, VideoStatus};

use crate::capture::CaptureMsg;
use crate::clock::{Clock, Micros};
use crate::hub::{Delivery, FrameSink, Hub, ViewerId};
use crate::idr_policy::{IdrPolicy, IdrReason, PolicyConfig};
use crate::media::{EncodeReport, EncodedFrame, GrabReport, H264Job, MediaCmd};
use crate::metrics::Metrics;

pub enum EncoderMsg {
    Join {
        id: ViewerId,
        codec: Codec,
        frames: Sender<EncodedFrame>,
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

#[derive(Debug, PartialEq)]
pub enum Action {
    Media(MediaCmdKind),
    Capture(CaptureMsg),
    Tell(ViewerId, ViewerEvent),
    Broadcast(ViewerEvent),
}

/// The media commands the core issues (a comparable mirror of [`MediaCmd`] for tests).
#[derive(Debug, PartialEq)]
pub enum MediaCmdKind {
    Encode {
        grab_seq: u64,
        h264: Option<H264Job>,
        jpeg: bool,
    },
    Configure(StreamSettings),
}

pub struct EncoderCore<S> {
    hub: Hub<S>,
    policy: IdrPolicy,
    settings: StreamSettings,
    status: VideoStatus,
    /// Why the H.264 frame now being encoded was forced, for the IDR counters.
    in_flight_reason: Option<IdrReason>,
    metrics: Arc<Metrics>,
}

impl<S: FrameSink> EncoderCore<S> {
    pub fn new(settings: StreamSettings, metrics: Arc<Metrics>) -> Self {
        Self {
            hub: Hub::new(),
            policy: IdrPolicy::new(PolicyConfig::default()),
            settings,
            status: VideoStatus {
                signal: false,
                source_width: 0,
                source_height: 0,
                width: 0,
                height: 0,
                fps: settings.fps,
            },
            in_flight_reason: None,
            metrics,
        }
    }

    fn capture_state(&self) -> Action {
        Action::Capture(CaptureMsg::Configure {
            active: !self.hub.is_empty(),
            fps: self.settings.fps,
        })
    }

    pub fn join(
        &mut self,
        id: ViewerId,
        codec: Codec,
        sink: S,
        visible: bool,
        out: &mut Vec<Action>,
    ) {
        let was_empty = self.hub.is_empty();
        self.hub.join(id, codec, sink, visible);
        if visible && codec == Codec::H264 {
            self.policy.request(IdrReason::NewViewer);
        }
        out.push(Action::Tell(
            id,
            ViewerEvent::Welcome {
                settings: self.settings,
                status: (self.status.source_width > 0).then_some(self.status),
            },
        ));
        if was_empty {
            out.push(self.capture_state());
        }
    }

    pub fn leave(&mut self, id: ViewerId, out: &mut Vec<Action>) {
        if self.hub.leave(id) && self.hub.is_empty() {
            out.push(self.capture_state());
        }
    }

    pub fn visibility(&mut self, id: ViewerId, visible: bool) {
        if self.hub.set_visible(id, visible) {
            self.policy.request(IdrReason::NewViewer);
        }
    }

    pub fn keyframe_request(&mut self, id: ViewerId) {
        self.hub.await_key(id);
        self.policy.request(IdrReason::ClientRequest);
    }

    pub fn change_settings(
        &mut self,
        id: ViewerId,
        settings: StreamSettings,
        out: &mut Vec<Action>,
    ) {
        if let Err(e) = settings.validate() {
            out.push(Action::Tell(
                id,
                ViewerEvent::SettingsRejected(e.to_string()),
            ));
            return;
        }
        let fps_changed = settings.fps != self.settings.fps;
        self.settings = settings;
        self.status.fps = settings.fps;
        // A new encoder configuration starts with an IDR; count it as such.
        self.policy.request(IdrReason::Settings);
        out.push(Action::Media(MediaCmdKind::Configure(settings)));
        out.push(Action::Broadcast(ViewerEvent::Settings(settings)));
        if fps_changed {
            out.push(self.capture_state());
        }
    }

    pub fn captured(&mut self, now: Micros, report: GrabReport, out: &mut Vec<Action>) {
        let info = report.info;
        self.metrics.frames_captured.fetch_add(1, Relaxed);
        let status = VideoStatus {
            signal: info.output_size.0 > 0,
            source_width: info.source_size.0,
            source_height: info.source_size.1,
            width: info.output_size.0,
            height: info.output_size.1,
            fps: self.settings.fps,
        };
        if status != self.status {
            if self.status.width != 0
                && (status.width, status.height) != (self.status.width, self.status.height)
            {
                self.policy.request(IdrReason::Resolution);
            }
            self.status = status;
            out.push(Action::Broadcast(ViewerEvent::VideoStatus(status)));
        }
        let decision = self.policy.on_frame(now, info.change);
        if !decision.encode {
            self.metrics.frames_unchanged.fetch_add(1, Relaxed);
        }
        let h264 = (self.hub.wants(Codec::H264) && decision.encode).then_some(H264Job {
            force_idr: decision.force_idr.is_some(),
            quality_boost: decision.quality_boost,
        });
        let jpeg =
            self.hub.wants(Codec::Jpeg) && (decision.encode || self.hub.waiting(Codec::Jpeg));
        if h264.is_some() || jpeg {
            self.in_flight_reason = decision.force_idr;
            out.push(Action::Media(MediaCmdKind::Encode {
                grab_seq: report.grab_seq,
                h264,
                jpeg,
            }));
        }
    }

    pub fn encoded(&mut self, report: EncodeReport, out: &mut Vec<Action>) {
        if let Some(frame) = report.h264 {
            if frame.keyframe() {
                self.metrics.count_idr(self.in_flight_reason.take());
            }
            self.fan_out(&frame, out);
        }
        if let Some(frame) = report.jpeg {
            self.fan_out(&frame, out);
        }
    }

    fn fan_out(&mut self, frame: &EncodedFrame, out: &mut Vec<Action>) {
        let Delivery {
            sent,
            bytes,
            dropped,
            overflowed,
            closed,
        } = self.hub.deliver(frame);
        let m = self.metrics.codec(frame.header.codec);
        m.sent.fetch_add(sent, Relaxed);
        m.bytes_sent.fetch_add(bytes, Relaxed);
        self.metrics.frames_dropped.fetch_add(dropped, Relaxed);
        if overflowed && frame.header.codec == Codec::H264 {
            self.policy.request(IdrReason::Overflow);
        }
        if !closed.is_empty() && self.hub.is_empty() {
            out.push(self.capture_state());
        }
    }
}

/// The actor's loop: messages in, actions out. It never waits on the media thread: commands go
/// into its bounded queue with `try_send`, and a full queue drops the command (the next frame
/// brings a fresh one).
pub async fn run(
    mailbox: Receiver<EncoderMsg>,
    encodes: Receiver<EncodeReport>,
    media: Sender<MediaCmd>,
    capture: Sender<CaptureMsg>,
    settings: StreamSettings,
    clock: Clock,
    metrics: Arc<Metrics>,
) {
    let mut core: EncoderCore<Sender<EncodedFrame>> = EncoderCore::new(settings, metrics);
    let mut events: HashMap<ViewerId, Sender<ViewerEvent>> = HashMap::new();
    let mut actions = Vec::new();
    loop {
        enum Input {
            Msg(EncoderMsg),
            Encoded(EncodeReport),
        }
        let input = future::or(async { mailbox.recv().await.map(Input::Msg) }, async {
            encodes.recv().await.map(Input::Encoded)
        })
        .await;
        match input {
            Err(_) => break,
            Ok(Input::Encoded(report)) => core.encoded(report, &mut actions),
            Ok(Input::Msg(msg)) => match msg {
                EncoderMsg::Join {
                    id,
                    codec,
                    frames,
                    events: ev,
                    visible,
                } => {
                    if let Some(ev) = ev {
                        events.insert(id, ev);
                    }
                    core.join(id, codec, frames, visible, &mut actions);
                }
                EncoderMsg::Leave { id } => {
                    events.remove(&id);
                    core.leave(id, &mut actions);
                }
                EncoderMsg::Visibility { id, visible } => core.visibility(id, visible),
                EncoderMsg::KeyframeRequest { id, reason } => {
                    log::debug!("viewer {id} asks for a keyframe: {reason:?}");
                    core.keyframe_request(id);
                }
                EncoderMsg::ChangeSettings { id, settings } => {
                    core.change_settings(id, settings, &mut actions)
                }
                EncoderMsg::Captured(report) => core.captured(clock.now_us(), report, &mut actions),
            },
        }
        for action in actions.drain(..) {
            match action {
                Action::Media(kind) => {
                    let cmd = match kind {
                        MediaCmdKind::Encode {
                            grab_seq,
                            h264,
                            jpeg,
                        } => MediaCmd::Encode {
                            grab_seq,
                            h264,
                            jpeg,
                        },
                        MediaCmdKind::Configure(s) => MediaCmd::Configure(s),
                    };
                    if media.try_send(cmd).is_err() {
                        log::warn!("media thread busy: command dropped");
                    }
                }
                Action::Capture(msg) => {
                    let _ = capture.try_send(msg);
                }
                Action::Tell(id, event) => {
                    if let Some(tx) = events.get(&id) {
                        let _ = tx.try_send(event);
                    }
                }
                Action::Broadcast(event) => {
                    for tx in events.values() {
                        let _ = tx.try_send(event.clone());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
