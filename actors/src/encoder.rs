//! The encoder actor: decides per captured frame what to encode (through the IDR policy), hands
//! the work to the media thread, and fans the result out to viewers through the hub.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::Poll;

use async_channel::{Receiver, Sender};
use futures_lite::future;
use nanokvm_protocol::{Codec, StreamSettings, VideoStatus};

use crate::clock::{Clock, Micros};
use crate::hub::{Delivery, Hub, ViewerEvent, ViewerId, ViewerQueues, ViewerSink, Waiting};
use crate::idr_policy::{FrameChange, IdrPolicy, IdrReason, PolicyConfig};
use crate::media::{EncodeJob, EncodeReport, EncodedFrame, GrabReport, H264Job, MediaCmd};
use crate::metrics::{Metrics, ViewerKind};
use crate::video_msgs::{CaptureMsg, EncoderMsg};

/// A viewer's place in the hub, held by its session or stream: counted in `/metrics` while it
/// lives, and it leaves the hub when dropped (or earlier, with [`Membership::leave`]).
pub struct Membership {
    id: ViewerId,
    kind: ViewerKind,
    encoder: Sender<EncoderMsg>,
    metrics: Arc<Metrics>,
    left: bool,
}

impl Membership {
    pub fn new(
        id: ViewerId,
        kind: ViewerKind,
        encoder: Sender<EncoderMsg>,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.viewer_joined(kind);
        Self {
            id,
            kind,
            encoder,
            metrics,
            left: false,
        }
    }

    /// Stops the frames (the viewer is still counted until dropped).
    pub fn leave(&mut self) {
        if !std::mem::replace(&mut self.left, true) {
            // If the mailbox is full, the hub still finds the closed queue on the next frame.
            let _ = self.encoder.try_send(EncoderMsg::Leave { id: self.id });
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.leave();
        self.metrics.viewer_left(self.kind);
    }
}

#[derive(Debug, PartialEq)]
pub enum Action {
    Encode(EncodeJob),
    Capture(CaptureMsg),
}

/// An encode the media thread has not answered yet.
#[derive(Debug)]
struct InFlight {
    grab_seq: u64,
    h264: bool,
    /// Why the H.264 frame was forced to be an IDR, for the counters and for asking again if
    /// the encode is lost.
    idr: Option<IdrReason>,
}

pub struct EncoderCore<S> {
    hub: Hub<S>,
    policy: IdrPolicy,
    settings: StreamSettings,
    status: Option<VideoStatus>,
    in_flight: VecDeque<InFlight>,
    /// A changed picture was not encoded (the media thread skipped or failed it), so the next
    /// one must be, even if it equals that picture.
    reencode: bool,
    capture: Option<(bool, StreamSettings)>,
    settings_changed_us: Option<Micros>,
    /// A valid change that came too soon after the previous one.
    pending_settings: Option<StreamSettings>,
    metrics: Arc<Metrics>,
}

const MIN_SETTINGS_INTERVAL_US: Micros = 500_000;

impl<S: ViewerSink> EncoderCore<S> {
    pub fn new(settings: StreamSettings, policy: PolicyConfig, metrics: Arc<Metrics>) -> Self {
        Self {
            hub: Hub::new(),
            policy: IdrPolicy::new(policy),
            settings,
            status: None,
            in_flight: VecDeque::new(),
            reencode: false,
            capture: None,
            settings_changed_us: None,
            pending_settings: None,
            metrics,
        }
    }

    /// Tells the capture actor what it should be doing when that changed, or when a viewer
    /// wants a picture now rather than at the next tick.
    fn update_capture(&mut self, grab_now: bool, out: &mut Vec<Action>) {
        let state = (self.hub.anyone_watching(), self.settings);
        if self.capture != Some(state) || (grab_now && state.0) {
            self.capture = Some(state);
            out.push(Action::Capture(CaptureMsg::Configure {
                active: state.0,
                settings: state.1,
                grab_now,
            }));
        }
    }

    pub fn join(
        &mut self,
        id: ViewerId,
        codec: Codec,
        sink: S,
        visible: bool,
        out: &mut Vec<Action>,
    ) {
        self.hub.join(id, codec, sink, visible);
        if visible && codec == Codec::H264 {
            self.policy.request(IdrReason::NewViewer);
        }
        let welcome = ViewerEvent::Welcome {
            settings: self.settings,
            status: self.status,
        };
        self.hub.tell(id, &welcome);
        self.update_capture(visible, out);
    }

    pub fn leave(&mut self, id: ViewerId, out: &mut Vec<Action>) {
        self.hub.leave(id);
        self.update_capture(false, out);
    }

    pub fn visibility(&mut self, id: ViewerId, visible: bool, out: &mut Vec<Action>) {
        let shown = self.hub.set_visible(id, visible);
        if shown == Some(Codec::H264) {
            self.policy.request(IdrReason::NewViewer);
        }
        // Only a viewer that was just shown wants a picture at once: repeating `visible`
        // must not make the media thread grab at the rate of messages.
        self.update_capture(shown.is_some(), out);
    }

    pub fn keyframe_request(&mut self, id: ViewerId) {
        self.hub.await_key(id);
        self.policy.request(IdrReason::ClientRequest);
    }

    pub fn change_settings(
        &mut self,
        now: Micros,
        id: ViewerId,
        settings: StreamSettings,
        out: &mut Vec<Action>,
    ) {
        if let Err(e) = settings.validate() {
            self.hub
                .tell(id, &ViewerEvent::SettingsRejected(e.to_string()));
            return;
        }
        if settings == self.settings {
            // Nothing to rebuild: no IDR for everybody because one client re-sent its form.
            self.pending_settings = None;
            self.hub.tell(id, &ViewerEvent::Settings(settings));
            return;
        }
        // Each change rebuilds the encoder and sends every viewer an IDR: not at any rate. A
        // change that comes too soon waits, and the latest one wins.
        if self
            .settings_changed_us
            .is_some_and(|t| now.saturating_sub(t) < MIN_SETTINGS_INTERVAL_US)
        {
            self.pending_settings = Some(settings);
            return;
        }
        self.apply_settings(now, settings, out);
    }

    fn apply_settings(&mut self, now: Micros, settings: StreamSettings, out: &mut Vec<Action>) {
        self.pending_settings = None;
        self.settings_changed_us = Some(now);
        self.settings = settings;
        // A new encoder configuration starts with an IDR; count it as such.
        self.policy.request(IdrReason::Settings);
        self.hub.broadcast(&ViewerEvent::Settings(settings));
        self.update_capture(true, out);
    }

    fn idr_in_flight(&self) -> bool {
        self.in_flight.iter().any(|j| j.idr.is_some())
    }

    /// One captured picture: announce what changed about the video, make sure waiting
    /// viewers get their keyframe, and decide what to encode.
    pub fn captured(&mut self, now: Micros, report: GrabReport, out: &mut Vec<Action>) {
        self.metrics.frames_captured.fetch_add(1, Relaxed);
        self.apply_pending_settings(now, out);
        self.hub.sweep_closed();
        self.update_capture(false, out);
        self.announce_status(&report);
        self.heal_waiting_viewers();
        self.plan_encode(now, &report, out);
    }

    fn apply_pending_settings(&mut self, now: Micros, out: &mut Vec<Action>) {
        let due = self
            .settings_changed_us
            .is_none_or(|t| now.saturating_sub(t) >= MIN_SETTINGS_INTERVAL_US);
        if let (Some(settings), true) = (self.pending_settings, due) {
            self.apply_settings(now, settings, out);
        }
    }

    fn announce_status(&mut self, report: &GrabReport) {
        let info = report.info;
        // A signal of a size not known yet (the device learns it from its first frame): say
        // nothing rather than "no signal" for a moment.
        if info.signal && info.output_size.0 == 0 {
            return;
        }
        let status = VideoStatus {
            signal: info.signal && info.output_size.0 > 0,
            source_width: info.source_size.0,
            source_height: info.source_size.1,
            width: info.output_size.0,
            height: info.output_size.1,
            fps: report.settings.fps,
            bitrate_kbps: info
                .encoder
                .map_or(report.settings.h264_bitrate_kbps, |e| e.effective_kbps),
            gop: info
                .encoder
                .map_or(report.settings.gop, |e| e.effective_gop),
        };
        if self.status == Some(status) {
            return;
        }
        if self
            .status
            .is_some_and(|s| (s.width, s.height) != (status.width, status.height))
        {
            self.policy.request(IdrReason::Resolution);
        }
        self.status = Some(status);
        self.hub.broadcast(&ViewerEvent::VideoStatus(status));
    }

    /// Whoever still waits for a keyframe it can take gets one asked for, whatever happened to
    /// earlier requests — unless one is already on its way.
    fn heal_waiting_viewers(&mut self) {
        if self.idr_in_flight() {
            return;
        }
        match self.hub.waiting(Codec::H264) {
            Some(Waiting::New) => self.policy.request(IdrReason::NewViewer),
            Some(Waiting::Recovering) => self.policy.request(IdrReason::Overflow),
            None => {}
        }
    }

    fn plan_encode(&mut self, now: Micros, report: &GrabReport, out: &mut Vec<Action>) {
        let mut change = report.info.change;
        if std::mem::take(&mut self.reencode) && change == FrameChange::Unchanged {
            change = FrameChange::Changed { fraction: 0.0 };
        }
        let decision = self.policy.on_frame(now, change);
        if !decision.encode {
            self.metrics.frames_unchanged.fetch_add(1, Relaxed);
        }
        let h264 = (self.hub.wants(Codec::H264) && decision.encode).then_some(H264Job {
            force_idr: decision.force_idr.is_some(),
            quality_boost: decision.quality_boost,
        });
        let jpeg = self.hub.wants(Codec::Jpeg)
            && (change != FrameChange::Unchanged || self.hub.waiting(Codec::Jpeg).is_some());
        if h264.is_none() && !jpeg {
            return;
        }
        self.in_flight.push_back(InFlight {
            grab_seq: report.grab_seq,
            h264: h264.is_some(),
            idr: h264.and(decision.force_idr),
        });
        out.push(Action::Encode(EncodeJob {
            grab_seq: report.grab_seq,
            h264,
            jpeg,
            settings: self.settings,
        }));
    }

    /// The media thread's queue was full: the job just issued by [`Self::captured`] was never
    /// sent. Its picture is encoded with the next frame, and its IDR asked for again.
    pub fn not_sent(&mut self, grab_seq: u64) {
        if self
            .in_flight
            .back()
            .is_some_and(|j| j.grab_seq == grab_seq)
        {
            if let Some(job) = self.in_flight.pop_back() {
                self.reencode = true;
                if let Some(reason) = job.idr {
                    self.policy.request(reason);
                }
            }
        }
    }

    pub fn encoded(&mut self, now: Micros, report: EncodeReport) {
        // The media thread answers every encode, in order.
        let job = match self.in_flight.pop_front() {
            Some(j) if j.grab_seq == report.grab_seq => j,
            other => {
                log::error!(
                    "encode report {} does not match the job in flight {other:?}",
                    report.grab_seq
                );
                self.in_flight.clear();
                return;
            }
        };
        if job.h264 && report.h264.is_none() {
            self.reencode = true;
            if let Some(reason) = job.idr {
                self.policy.request(reason);
            }
        }
        if let Some(frame) = report.h264 {
            self.fan_out(&frame);
            if frame.keyframe() {
                self.metrics.count_idr(job.idr);
                self.policy.keyframe_delivered(now);
            }
        }
        if let Some(frame) = report.jpeg {
            self.fan_out(&frame);
        }
    }

    fn fan_out(&mut self, frame: &EncodedFrame) {
        let Delivery {
            sent,
            bytes,
            dropped,
        } = self.hub.deliver(frame);
        log::debug!(
            target: "frame",
            "{} encoded {:?} #{} {} B{}, queued for {sent} viewer(s), {dropped} dropped",
            frame.grab_seq,
            frame.header.codec,
            frame.header.seq,
            frame.payload_len(),
            if frame.keyframe() { " key" } else { "" },
        );
        let m = self.metrics.codec(frame.header.codec);
        m.sent.fetch_add(sent, Relaxed);
        m.bytes_sent.fetch_add(bytes, Relaxed);
        self.metrics.frames_dropped.fetch_add(dropped, Relaxed);
    }
}

/// What the encoder actor is connected to.
pub struct EncoderLinks {
    pub mailbox: Receiver<EncoderMsg>,
    /// The media thread's answers to encode commands.
    pub encodes: Receiver<EncodeReport>,
    pub media: Sender<MediaCmd>,
    pub capture: Sender<CaptureMsg>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
}

/// The actor's loop: messages in, actions out. It never waits on the media thread: a full
/// command queue drops the encode (answered as skipped, so nothing is lost but that frame).
pub async fn run(links: EncoderLinks, settings: StreamSettings, policy: PolicyConfig) {
    let EncoderLinks {
        mailbox,
        encodes,
        media,
        capture,
        clock,
        metrics,
    } = links;
    let mut core: EncoderCore<ViewerQueues> = EncoderCore::new(settings, policy, metrics);
    let mut actions = Vec::new();
    enum Input {
        Msg(EncoderMsg),
        Encoded(EncodeReport),
    }
    // Each wait lives until it completes: an `async-channel` receive allocates when it starts
    // waiting, so a wait dropped and made anew every turn would allocate every turn.
    let mut next_msg = pin!(mailbox.recv());
    let mut next_encoded = pin!(encodes.recv());
    loop {
        let input = future::poll_fn(|cx| {
            if let Poll::Ready(msg) = next_msg.as_mut().poll(cx) {
                next_msg.set(mailbox.recv());
                return Poll::Ready(msg.map(Input::Msg));
            }
            if let Poll::Ready(report) = next_encoded.as_mut().poll(cx) {
                next_encoded.set(encodes.recv());
                return Poll::Ready(report.map(Input::Encoded));
            }
            Poll::Pending
        })
        .await;
        match input {
            Err(_) => break,
            Ok(Input::Encoded(report)) => core.encoded(clock.now_us(), report),
            Ok(Input::Msg(msg)) => match msg {
                EncoderMsg::Join {
                    id,
                    codec,
                    frames,
                    events,
                    visible,
                } => core.join(
                    id,
                    codec,
                    ViewerQueues { frames, events },
                    visible,
                    &mut actions,
                ),
                EncoderMsg::Leave { id } => core.leave(id, &mut actions),
                EncoderMsg::Visibility { id, visible } => {
                    core.visibility(id, visible, &mut actions)
                }
                EncoderMsg::KeyframeRequest { id, reason } => {
                    log::debug!("viewer {id} asks for a keyframe: {reason:?}");
                    core.keyframe_request(id);
                }
                EncoderMsg::ChangeSettings { id, settings } => {
                    core.change_settings(clock.now_us(), id, settings, &mut actions)
                }
                EncoderMsg::Captured(report) => core.captured(clock.now_us(), report, &mut actions),
            },
        }
        for action in actions.drain(..) {
            match action {
                Action::Encode(job) => {
                    if let Err(e) = media.try_send(MediaCmd::Encode(job)) {
                        let MediaCmd::Encode(job) = e.into_inner() else {
                            continue;
                        };
                        log::warn!("media thread busy: frame {} not encoded", job.grab_seq);
                        core.not_sent(job.grab_seq);
                    }
                }
                // The capture actor needs only the latest state; an older one is replaced.
                Action::Capture(msg) => {
                    let _ = capture.force_send(msg);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
