//! Counters for `/metrics`. The one piece of state shared across actors and the media thread:
//! write-only relaxed atomics, read only to render the page, so no actor's logic depends on them.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};

use nanokvm_protocol::Codec;

use crate::idr_policy::IdrReason;
use crate::server_path::ServerPath;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewerKind {
    WebSocket,
    H264Http,
    MjpegHttp,
}

const VIEWER_KINDS: [(ViewerKind, &str); 3] = [
    (ViewerKind::WebSocket, "ws"),
    (ViewerKind::H264Http, "h264"),
    (ViewerKind::MjpegHttp, "mjpeg"),
];

const CODECS: [(Codec, &str); 2] = [(Codec::H264, "h264"), (Codec::Jpeg, "jpeg")];

#[derive(Default, Debug)]
pub struct PerCodec {
    pub encoded: AtomicU64,
    pub sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub encode_ns: AtomicU64,
}

#[derive(Default, Debug)]
pub struct Metrics {
    pub frames_captured: AtomicU64,
    pub frames_unchanged: AtomicU64,
    pub frames_dropped: AtomicU64,
    codecs: [PerCodec; 2],
    idr: [AtomicU64; IdrReason::ALL.len()],
    idr_gop: AtomicU64,
    viewers: [AtomicI64; 3],
    /// Input message received → HID report written.
    pub hid_latency: LatencyRing,
    /// HID reports dropped because a device stayed full (its queue overflowed).
    pub hid_reports_dropped: AtomicU64,
    pub server_path: ServerPath,
}

/// Samples kept for the latency quantiles.
const LATENCY_SAMPLES: usize = 1024;

/// The last [`LATENCY_SAMPLES`] latencies in µs, for quantiles on the metrics page. Written
/// by one actor, read only to render.
#[derive(Debug)]
pub struct LatencyRing {
    samples: [AtomicU32; LATENCY_SAMPLES],
    count: AtomicU64,
}

impl Default for LatencyRing {
    fn default() -> Self {
        Self {
            samples: std::array::from_fn(|_| AtomicU32::new(0)),
            count: AtomicU64::new(0),
        }
    }
}

impl LatencyRing {
    pub fn record(&self, us: u64) {
        let i = self.count.fetch_add(1, Relaxed) as usize % LATENCY_SAMPLES;
        self.samples[i].store(us.min(u64::from(u32::MAX)) as u32, Relaxed);
    }

    /// All samples ever recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The `q` quantiles (0..=1, nearest rank) of the samples kept, `None` before the first.
    pub fn quantiles<const N: usize>(&self, q: [f64; N]) -> Option<[u32; N]> {
        let kept = (self.count() as usize).min(LATENCY_SAMPLES);
        if kept == 0 {
            return None;
        }
        let mut v: Vec<u32> = self.samples[..kept]
            .iter()
            .map(|s| s.load(Relaxed))
            .collect();
        v.sort_unstable();
        Some(q.map(|q| v[((q * kept as f64).ceil() as usize).clamp(1, kept) - 1]))
    }
}

impl Metrics {
    pub fn codec(&self, codec: Codec) -> &PerCodec {
        &self.codecs[codec_index(codec)]
    }

    pub fn count_idr(&self, reason: Option<IdrReason>) {
        match reason {
            Some(r) => self.idr[r as usize].fetch_add(1, Relaxed),
            None => self.idr_gop.fetch_add(1, Relaxed),
        };
    }

    pub fn viewer_joined(&self, kind: ViewerKind) {
        self.viewers[kind as usize].fetch_add(1, Relaxed);
    }

    pub fn viewer_left(&self, kind: ViewerKind) {
        self.viewers[kind as usize].fetch_sub(1, Relaxed);
    }

    pub fn viewers_total(&self) -> i64 {
        self.viewers.iter().map(|v| v.load(Relaxed)).sum()
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let plain = [
            (
                "frames_captured_total",
                "Frames grabbed from the source.",
                &self.frames_captured,
            ),
            (
                "frames_unchanged_total",
                "Grabbed frames identical to the previous one (not encoded).",
                &self.frames_unchanged,
            ),
            (
                "frames_dropped_total",
                "Frames a viewer missed because its queue was full (counted until its next IDR).",
                &self.frames_dropped,
            ),
            (
                "hid_reports_dropped_total",
                "HID reports dropped because the device stayed full and its queue overflowed.",
                &self.hid_reports_dropped,
            ),
        ];
        for (name, help, v) in plain {
            let _ = writeln!(
                out,
                "# HELP nanokvmd_{name} {help}\n# TYPE nanokvmd_{name} counter"
            );
            let _ = writeln!(out, "nanokvmd_{name} {}", v.load(Relaxed));
        }
        type Field = fn(&PerCodec) -> &AtomicU64;
        let per_codec: [(&str, &str, Field); 3] = [
            ("frames_encoded_total", "Frames encoded.", |c| &c.encoded),
            (
                "frames_sent_total",
                "Frames queued to viewers (once per viewer).",
                |c| &c.sent,
            ),
            (
                "bytes_sent_total",
                "Payload bytes queued to viewers.",
                |c| &c.bytes_sent,
            ),
        ];
        for (name, help, field) in per_codec {
            let _ = writeln!(
                out,
                "# HELP nanokvmd_{name} {help}\n# TYPE nanokvmd_{name} counter"
            );
            for (codec, label) in CODECS {
                let _ = writeln!(
                    out,
                    "nanokvmd_{name}{{codec=\"{label}\"}} {}",
                    field(self.codec(codec)).load(Relaxed)
                );
            }
        }
        let _ = writeln!(out, "# HELP nanokvmd_encode_seconds Time spent encoding.\n# TYPE nanokvmd_encode_seconds summary");
        for (codec, label) in CODECS {
            let c = self.codec(codec);
            let secs = c.encode_ns.load(Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "nanokvmd_encode_seconds_sum{{codec=\"{label}\"}} {secs:.6}"
            );
            let _ = writeln!(
                out,
                "nanokvmd_encode_seconds_count{{codec=\"{label}\"}} {}",
                c.encoded.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP nanokvmd_idr_total IDR frames by reason; gop = chosen by the encoder itself (GOP end or its own scene detection).\n# TYPE nanokvmd_idr_total counter");
        for reason in IdrReason::ALL {
            let _ = writeln!(
                out,
                "nanokvmd_idr_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.idr[reason as usize].load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "nanokvmd_idr_total{{reason=\"gop\"}} {}",
            self.idr_gop.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP nanokvmd_viewers Connected viewers by kind.\n# TYPE nanokvmd_viewers gauge"
        );
        for (kind, label) in VIEWER_KINDS {
            let _ = writeln!(
                out,
                "nanokvmd_viewers{{kind=\"{label}\"}} {}",
                self.viewers[kind as usize].load(Relaxed)
            );
        }
        let name = "nanokvmd_hid_input_to_report_us";
        let _ = writeln!(out, "# HELP {name} Input message received by a session to its HID report written, in microseconds, over the last {LATENCY_SAMPLES} reports.\n# TYPE {name} summary");
        let qs = [0.5, 0.99, 1.0];
        let values = self.hid_latency.quantiles(qs);
        for (i, label) in ["0.5", "0.99", "1"].into_iter().enumerate() {
            match values {
                Some(v) => writeln!(out, "{name}{{quantile=\"{label}\"}} {}", v[i]),
                None => writeln!(out, "{name}{{quantile=\"{label}\"}} NaN"),
            }
            .unwrap_or_default();
        }
        let _ = writeln!(out, "{name}_count {}", self.hid_latency.count());
        self.server_path.render(&mut out);
        #[cfg(feature = "alloc-count")]
        crate::alloc_count::render(&mut out);
        out
    }
}

fn codec_index(codec: Codec) -> usize {
    match codec {
        Codec::H264 => 0,
        Codec::Jpeg => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_with_its_labels() {
        let m = Metrics::default();
        m.codec(Codec::Jpeg).encoded.fetch_add(3, Relaxed);
        m.count_idr(Some(IdrReason::NewViewer));
        m.count_idr(None);
        m.viewer_joined(ViewerKind::MjpegHttp);
        let text = m.render();
        assert!(text.contains("nanokvmd_frames_encoded_total{codec=\"jpeg\"} 3\n"));
        assert!(text.contains("nanokvmd_frames_encoded_total{codec=\"h264\"} 0\n"));
        assert!(text.contains("nanokvmd_idr_total{reason=\"new_viewer\"} 1\n"));
        assert!(text.contains("nanokvmd_idr_total{reason=\"gop\"} 1\n"));
        assert!(text.contains("nanokvmd_viewers{kind=\"mjpeg\"} 1\n"));
        assert!(text.contains("nanokvmd_encode_seconds_count{codec=\"jpeg\"} 3\n"));
        assert!(text.contains("nanokvmd_hid_input_to_report_us{quantile=\"0.99\"} NaN\n"));
        assert!(text.contains("nanokvmd_hid_input_to_report_us_count 0\n"));
    }

    #[test]
    fn latency_quantiles_cover_the_last_samples_only() {
        let ring = LatencyRing::default();
        assert_eq!(ring.quantiles([0.5]), None);
        for us in 1..=100 {
            ring.record(us);
        }
        assert_eq!(ring.quantiles([0.5, 0.99, 1.0]), Some([50, 99, 100]));
        for _ in 0..LATENCY_SAMPLES {
            ring.record(7);
        }
        assert_eq!(ring.quantiles([1.0]), Some([7]));
        assert_eq!(ring.count(), 100 + LATENCY_SAMPLES as u64);
        let m = Metrics::default();
        m.hid_latency.record(1500);
        let text = m.render();
        assert!(
            text.contains("nanokvmd_hid_input_to_report_us{quantile=\"1\"} 1500\n"),
            "{text}"
        );
        assert!(text.contains("nanokvmd_hid_input_to_report_us_count 1\n"));
    }
}
