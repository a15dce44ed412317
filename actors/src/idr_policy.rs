//! When to force an IDR and when to spend extra bits: a pure state machine fed with events and
//! the time, owned by the encoder actor (every decision is needed synchronously per frame, so it
//! has no task of its own).
//!
//! Why each rule exists:
//! - a new (or re-shown) viewer can decode nothing before an IDR, so it gets one on the next
//!   frame, even when the screen is still and the frame would otherwise be skipped;
//! - a client whose decoder failed or that saw a gap asks for one;
//! - a scene change costs nearly an IDR's bits as a P-frame anyway, and an IDR resets drift;
//! - after a pause (≥ 1 s still) the first change is usually the user acting: an IDR plus a
//!   short burst of lower-QP frames makes the picture sharp at once instead of converging slowly;
//! - forced IDRs are rate-limited so a misbehaving client cannot flood the link with them,
//!   except when a viewer is waiting for its first picture.
//!
//! With `forced_idrs` off (`--idr-policy off`, for comparison measurements only) none of this
//! happens: like the stock server, viewers wait for the encoder's own IDR at the end of its GOP.

use crate::clock::Micros;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdrReason {
    NewViewer,
    ClientRequest,
    SceneChange,
    Resume,
    Overflow,
    Settings,
    Resolution,
}

impl IdrReason {
    pub const ALL: [IdrReason; 7] = [
        IdrReason::NewViewer,
        IdrReason::ClientRequest,
        IdrReason::SceneChange,
        IdrReason::Resume,
        IdrReason::Overflow,
        IdrReason::Settings,
        IdrReason::Resolution,
    ];

    pub fn label(self) -> &'static str {
        match self {
            IdrReason::NewViewer => "new_viewer",
            IdrReason::ClientRequest => "client_request",
            IdrReason::SceneChange => "scene_change",
            IdrReason::Resume => "resume",
            IdrReason::Overflow => "overflow",
            IdrReason::Settings => "settings",
            IdrReason::Resolution => "resolution",
        }
    }

    /// Requests made for a picture that changed: once that change has gone out (as a P-frame,
    /// the IDR having been deferred), a still screen gives them nothing left to do.
    fn follows_a_change(self) -> bool {
        matches!(self, IdrReason::SceneChange | IdrReason::Resume)
    }

    /// A waiting viewer sees nothing until the IDR arrives, so these skip the rate limit.
    fn is_urgent(self) -> bool {
        matches!(
            self,
            IdrReason::NewViewer | IdrReason::Settings | IdrReason::Resolution
        )
    }
}

/// How the captured picture differs from the previous one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FrameChange {
    Unchanged,
    /// `fraction` of the sampled positions changed (0.0 when a change fell between samples).
    Changed {
        fraction: f32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyConfig {
    pub min_forced_interval_us: Micros,
    pub pause_us: Micros,
    pub scene_change_fraction: f32,
    /// Frames encoded at lower QP after a pause, the IDR included.
    pub burst_frames: u8,
    /// False: no forced IDR and no quality burst, ever (the stock server's behaviour).
    pub forced_idrs: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            min_forced_interval_us: 250_000,
            pause_us: 1_000_000,
            scene_change_fraction: 0.5,
            burst_frames: 3,
            forced_idrs: true,
        }
    }
}

/// What to do with one captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameDecision {
    /// False: the picture is unchanged and nobody needs it; encode and send nothing.
    pub encode: bool,
    pub force_idr: Option<IdrReason>,
    /// Spend more bits on this frame (lower QP): part of the burst after a pause.
    pub quality_boost: bool,
}

#[derive(Debug)]
pub struct IdrPolicy {
    cfg: PolicyConfig,
    pending: Option<IdrReason>,
    last_forced_us: Option<Micros>,
    last_change_us: Option<Micros>,
    burst_left: u8,
}

impl IdrPolicy {
    pub fn new(cfg: PolicyConfig) -> Self {
        Self {
            cfg,
            pending: None,
            last_forced_us: None,
            last_change_us: None,
            burst_left: 0,
        }
    }

    /// Asks for an IDR on the next frame. An urgent reason replaces a pending non-urgent one.
    pub fn request(&mut self, reason: IdrReason) {
        if !self.cfg.forced_idrs {
            return;
        }
        match self.pending {
            Some(p) if p.is_urgent() || !reason.is_urgent() => {}
            _ => self.pending = Some(reason),
        }
    }

    #[cfg(test)]
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// An IDR reached the viewers (forced or chosen by the encoder itself): every request made
    /// before it is answered, and the rate limit counts from it.
    pub fn keyframe_delivered(&mut self, now: Micros) {
        self.pending = None;
        self.last_forced_us = Some(now);
    }

    pub fn on_frame(&mut self, now: Micros, change: FrameChange) -> FrameDecision {
        let mut decision = FrameDecision::default();
        if let FrameChange::Changed { fraction } = change {
            decision.encode = true;
            let paused = self
                .last_change_us
                .is_some_and(|t| now.saturating_sub(t) >= self.cfg.pause_us);
            if paused && self.cfg.forced_idrs {
                self.request(IdrReason::Resume);
                self.burst_left = self.cfg.burst_frames;
            } else if fraction >= self.cfg.scene_change_fraction {
                self.request(IdrReason::SceneChange);
            }
            self.last_change_us = Some(now);
        }

        if let Some(reason) = self.pending {
            let allowed = reason.is_urgent()
                || self
                    .last_forced_us
                    .is_none_or(|t| now.saturating_sub(t) >= self.cfg.min_forced_interval_us);
            if allowed && change == FrameChange::Unchanged && reason.follows_a_change() {
                self.pending = None;
            } else if allowed {
                self.pending = None;
                self.last_forced_us = Some(now);
                decision.force_idr = Some(reason);
                // An unchanged picture is encoded only because someone is waiting for it.
                decision.encode = true;
            }
        }

        if decision.encode && self.burst_left > 0 {
            self.burst_left -= 1;
            decision.quality_boost = true;
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Micros = 1000;
    const SMALL: FrameChange = FrameChange::Changed { fraction: 0.01 };

    fn policy() -> IdrPolicy {
        IdrPolicy::new(PolicyConfig::default())
    }

    #[test]
    fn unchanged_frames_are_skipped_without_requests() {
        let mut p = policy();
        assert_eq!(
            p.on_frame(0, FrameChange::Unchanged),
            FrameDecision::default()
        );
        let d = p.on_frame(33 * MS, SMALL);
        assert!(d.encode && d.force_idr.is_none() && !d.quality_boost);
    }

    #[test]
    fn new_viewer_gets_an_idr_on_the_next_frame_even_when_still() {
        let mut p = policy();
        p.on_frame(0, SMALL);
        p.request(IdrReason::NewViewer);
        let d = p.on_frame(33 * MS, FrameChange::Unchanged);
        assert!(d.encode);
        assert_eq!(d.force_idr, Some(IdrReason::NewViewer));
        assert!(!p.has_pending());
    }

    #[test]
    fn new_viewers_are_not_rate_limited() {
        let mut p = policy();
        p.request(IdrReason::NewViewer);
        assert!(p.on_frame(0, SMALL).force_idr.is_some());
        p.request(IdrReason::NewViewer);
        assert_eq!(
            p.on_frame(33 * MS, SMALL).force_idr,
            Some(IdrReason::NewViewer)
        );
    }

    #[test]
    fn client_requests_are_limited_to_one_per_250ms() {
        let mut p = policy();
        p.request(IdrReason::ClientRequest);
        assert_eq!(
            p.on_frame(0, SMALL).force_idr,
            Some(IdrReason::ClientRequest)
        );
        p.request(IdrReason::ClientRequest);
        let d = p.on_frame(100 * MS, SMALL);
        assert!(d.encode);
        assert_eq!(d.force_idr, None, "too soon after the last forced IDR");
        assert!(p.has_pending(), "the request is deferred, not lost");
        assert_eq!(
            p.on_frame(200 * MS, FrameChange::Unchanged),
            FrameDecision::default()
        );
        let d = p.on_frame(250 * MS, FrameChange::Unchanged);
        assert_eq!(d.force_idr, Some(IdrReason::ClientRequest));
        assert!(
            d.encode,
            "a deferred request is served even on a still screen"
        );
    }

    #[test]
    fn urgent_request_replaces_a_deferred_one() {
        let mut p = policy();
        p.request(IdrReason::Overflow);
        p.on_frame(0, SMALL);
        p.request(IdrReason::Overflow);
        p.request(IdrReason::NewViewer);
        p.request(IdrReason::ClientRequest);
        assert_eq!(
            p.on_frame(10 * MS, SMALL).force_idr,
            Some(IdrReason::NewViewer)
        );
    }

    #[test]
    fn scene_change_forces_an_idr() {
        let mut p = policy();
        p.on_frame(0, SMALL);
        let d = p.on_frame(33 * MS, FrameChange::Changed { fraction: 0.9 });
        assert_eq!(d.force_idr, Some(IdrReason::SceneChange));
        assert!(!d.quality_boost);
        let d = p.on_frame(66 * MS, FrameChange::Changed { fraction: 0.49 });
        assert_eq!(d.force_idr, None);
    }

    #[test]
    fn first_change_after_a_pause_gets_idr_and_a_three_frame_burst() {
        let mut p = policy();
        p.on_frame(0, SMALL);
        for i in 1..=30 {
            assert!(!p.on_frame(i * 33 * MS, FrameChange::Unchanged).encode);
        }
        let t = 1_000 * MS;
        let d = p.on_frame(t, SMALL);
        assert_eq!(d.force_idr, Some(IdrReason::Resume));
        assert!(d.quality_boost);
        assert!(p.on_frame(t + 33 * MS, SMALL).quality_boost);
        let d = p.on_frame(t + 66 * MS, FrameChange::Unchanged);
        assert!(
            !d.encode && !d.quality_boost,
            "a skipped frame does not use up the burst"
        );
        assert!(p.on_frame(t + 99 * MS, SMALL).quality_boost);
        assert!(
            !p.on_frame(t + 133 * MS, SMALL).quality_boost,
            "burst is 3 frames"
        );
    }

    #[test]
    fn a_deferred_scene_change_is_dropped_when_the_screen_is_still() {
        let mut p = policy();
        p.request(IdrReason::ClientRequest);
        p.on_frame(0, SMALL);
        let d = p.on_frame(33 * MS, FrameChange::Changed { fraction: 0.9 });
        assert_eq!(d.force_idr, None, "rate-limited");
        let d = p.on_frame(300 * MS, FrameChange::Unchanged);
        assert_eq!(
            d,
            FrameDecision::default(),
            "no IDR of a picture already sent"
        );
        assert!(!p.has_pending());
    }

    #[test]
    fn any_delivered_keyframe_answers_requests_and_starts_the_rate_limit() {
        let mut p = policy();
        p.on_frame(0, SMALL);
        p.request(IdrReason::ClientRequest);
        p.keyframe_delivered(10 * MS);
        assert!(!p.has_pending());
        p.request(IdrReason::Overflow);
        assert_eq!(p.on_frame(100 * MS, SMALL).force_idr, None);
        assert_eq!(
            p.on_frame(260 * MS, SMALL).force_idr,
            Some(IdrReason::Overflow)
        );
    }

    #[test]
    fn with_forced_idrs_off_nothing_is_forced_and_there_is_no_burst() {
        let mut p = IdrPolicy::new(PolicyConfig {
            forced_idrs: false,
            ..PolicyConfig::default()
        });
        p.request(IdrReason::NewViewer);
        let d = p.on_frame(0, FrameChange::Unchanged);
        assert_eq!(
            d,
            FrameDecision::default(),
            "a still screen stays unencoded"
        );
        p.request(IdrReason::ClientRequest);
        let d = p.on_frame(33 * MS, FrameChange::Changed { fraction: 0.9 });
        assert_eq!((d.encode, d.force_idr), (true, None), "no scene-change IDR");
        let d = p.on_frame(2_000 * MS, SMALL);
        assert_eq!(
            (d.force_idr, d.quality_boost),
            (None, false),
            "no resume IDR, no burst"
        );
        assert!(!p.has_pending());
    }

    #[test]
    fn a_short_pause_is_not_a_resume() {
        let mut p = policy();
        p.on_frame(0, SMALL);
        let d = p.on_frame(999 * MS, SMALL);
        assert_eq!(d.force_idr, None);
        assert!(!d.quality_boost);
    }
}
