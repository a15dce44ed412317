//! The daemon's `/metrics` (Prometheus text exposition), parsed for assertions and figures.

/// Prometheus text exposition, as `(series, value)` pairs; the series is the name with its
/// label set exactly as written, e.g. `nanokvmd_idr_total{reason="new_viewer"}`.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub text: String,
    pub samples: Vec<(String, f64)>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, rest) = match line.find('}') {
                Some(i) if line[..i].contains('{') => (&line[..=i], &line[i + 1..]),
                _ => match line.split_once(char::is_whitespace) {
                    Some((s, r)) => (s, r),
                    None => continue,
                },
            };
            let Some(value) = rest.split_whitespace().next() else {
                continue;
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => match v.parse() {
                    Ok(v) => v,
                    Err(_) => continue,
                },
            };
            let series: String = series.chars().filter(|c| !c.is_whitespace()).collect();
            samples.push((series, value));
        }
        Metrics {
            text: text.to_string(),
            samples,
        }
    }

    /// The value of one series, e.g. `nanokvmd_frames_sent_total{codec="h264"}`.
    pub fn get(&self, series: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
    }

    /// True when some sample has the metric name `name` (any labels).
    pub fn has(&self, name: &str) -> bool {
        self.samples
            .iter()
            .any(|(s, _)| s.split('{').next() == Some(name))
    }

    /// The sum over every label set of `name`.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(s, _)| s.split('{').next() == Some(name))
            .map(|(_, v)| *v)
            .sum()
    }
}
