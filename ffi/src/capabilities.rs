//! What the loaded library can do beyond the five calls every release has.
//!
//! Released libraries differ (see `vendor-library.md` in the shared references for the table):
//! `kvmv_hdmi_control` since 2.1.6, `set_venc_auto_recyc` since 2.2.2, `set_frame_detact` since
//! 2.2.3, `kvmv_hdmi_signal_active` in no release (only the untagged library after 2.5.0), the
//! separate SPS/PPS getters only up to 2.2.2, and `CVI_VENC_RequestIDR` wherever `libvenc.so`
//! ships next to `libkvm.so` (since 2.1.6).

use std::fmt;

/// An optional symbol, and what nanokvmd does without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optional {
    HdmiControl,
    SignalQuery,
    FrameDetect,
    FreeAll,
    AutoRecycle,
    InstantIdr,
}

impl Optional {
    pub const ALL: [Optional; 6] = [
        Optional::HdmiControl,
        Optional::SignalQuery,
        Optional::FrameDetect,
        Optional::FreeAll,
        Optional::AutoRecycle,
        Optional::InstantIdr,
    ];

    /// The C name.
    pub fn symbol(self) -> &'static str {
        match self {
            Optional::HdmiControl => "kvmv_hdmi_control",
            Optional::SignalQuery => "kvmv_hdmi_signal_active",
            Optional::FrameDetect => "set_frame_detact",
            Optional::FreeAll => "free_all_kvmv_data",
            Optional::AutoRecycle => "set_venc_auto_recyc",
            Optional::InstantIdr => "CVI_VENC_RequestIDR",
        }
    }

    /// Whether nanokvmd loses anything without it (else its absence is only worth a note).
    pub fn matters(self) -> bool {
        matches!(
            self,
            Optional::HdmiControl | Optional::SignalQuery | Optional::InstantIdr
        )
    }

    /// What is lost without it, for the start-up log.
    pub fn loss(self) -> &'static str {
        match self {
            Optional::HdmiControl => {
                "HDMI capture is neither reset nor enabled at start (the stock order \
                 0, 10 ms, 1 is skipped; on the PCIe board the receiver's enable line stays as it is)"
            }
            Optional::SignalQuery => "the HDMI signal is judged from read results",
            Optional::FrameDetect => "nothing: the MJPEG unchanged-frame check is not used",
            Optional::FreeAll => "nothing: every buffer is freed after its read",
            Optional::AutoRecycle => "nothing: the encoder never switches between MJPEG and H.264",
            Optional::InstantIdr => {
                "forced IDRs recreate the encoder (set_h264_gop) instead of asking the running one"
            }
        }
    }
}

/// Which optional symbols the loaded libraries have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub hdmi_control: bool,
    pub signal_query: bool,
    pub frame_detect: bool,
    pub free_all: bool,
    pub auto_recycle: bool,
    /// `CVI_VENC_RequestIDR` in `libvenc.so`.
    pub instant_idr: bool,
    /// `kvmv_get_sps_frame` and `kvmv_get_pps_frame` (up to 2.2.2): an IDR read returns the
    /// slice alone and the parameter sets come from these; the wrapper joins them.
    pub separate_parameter_sets: bool,
}

impl Capabilities {
    pub fn has(&self, symbol: Optional) -> bool {
        match symbol {
            Optional::HdmiControl => self.hdmi_control,
            Optional::SignalQuery => self.signal_query,
            Optional::FrameDetect => self.frame_detect,
            Optional::FreeAll => self.free_all,
            Optional::AutoRecycle => self.auto_recycle,
            Optional::InstantIdr => self.instant_idr,
        }
    }

    /// The optional symbols this library lacks.
    pub fn missing(&self) -> impl Iterator<Item = Optional> + '_ {
        Optional::ALL.into_iter().filter(|s| !self.has(*s))
    }

    /// The releases whose `libkvm.so` exports exactly this set (read from their symbol tables).
    pub fn releases(&self) -> &'static str {
        match (
            self.signal_query,
            self.frame_detect,
            self.separate_parameter_sets,
            self.hdmi_control,
        ) {
            (true, ..) => "newer than 2.5.0 (untagged)",
            (false, true, false, _) => "2.2.3 .. 2.5.0",
            (false, false, true, true) => "2.1.6 .. 2.2.2",
            (false, false, true, false) => "v1.3 or older",
            _ => "no known release",
        }
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exports like {}; has", self.releases())?;
        let mut any = false;
        for s in Optional::ALL.into_iter().filter(|s| self.has(*s)) {
            write!(f, " {}", s.symbol())?;
            any = true;
        }
        if self.separate_parameter_sets {
            write!(f, " kvmv_get_sps_frame kvmv_get_pps_frame")?;
            any = true;
        }
        if !any {
            write!(f, " none of the optional symbols")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_release_set_is_named() {
        let v2_5 = Capabilities {
            hdmi_control: true,
            frame_detect: true,
            free_all: true,
            auto_recycle: true,
            instant_idr: true,
            ..Default::default()
        };
        assert_eq!(v2_5.releases(), "2.2.3 .. 2.5.0");
        assert_eq!(v2_5.missing().collect::<Vec<_>>(), [Optional::SignalQuery]);
        let newest = Capabilities {
            signal_query: true,
            ..v2_5
        };
        assert_eq!(newest.releases(), "newer than 2.5.0 (untagged)");
        assert_eq!(newest.missing().count(), 0);
        let v2_2 = Capabilities {
            hdmi_control: true,
            free_all: true,
            instant_idr: true,
            separate_parameter_sets: true,
            ..Default::default()
        };
        assert_eq!(v2_2.releases(), "2.1.6 .. 2.2.2");
        let text = v2_2.to_string();
        assert!(text.contains("kvmv_get_sps_frame"), "{text}");
        assert!(!text.contains("set_frame_detact"), "{text}");
        let v1_3 = Capabilities {
            hdmi_control: false,
            instant_idr: false,
            ..v2_2
        };
        assert_eq!(v1_3.releases(), "v1.3 or older");
    }
}
