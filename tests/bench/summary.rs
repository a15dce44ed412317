//! Median, p95 and friends of a set of samples.

use serde_json::{json, Value};

/// Nearest-rank percentiles of a non-empty sample set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Summary {
    /// `None` for no samples; NaNs are ignored.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Summary {
            n: v.len(),
            min: v[0],
            median: nearest_rank(&v, 0.5),
            p95: nearest_rank(&v, 0.95),
            p99: nearest_rank(&v, 0.99),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        })
    }

    pub fn to_json(self) -> Value {
        json!({
            "n": self.n, "min": self.min, "median": self.median, "p95": self.p95,
            "p99": self.p99, "max": self.max, "mean": self.mean,
        })
    }
}

/// The smallest sample with at least a fraction `p` of the samples at or below it.
pub fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).rev().collect();
        let s = Summary::of(&v).unwrap();
        assert_eq!((s.n, s.min, s.max), (20, 1.0, 20.0));
        assert_eq!(s.median, 10.0);
        assert_eq!(s.p95, 19.0);
        assert_eq!(s.p99, 20.0);
        assert_eq!(s.mean, 10.5);
    }

    #[test]
    fn one_sample_is_every_percentile_and_none_is_nothing() {
        let s = Summary::of(&[7.5]).unwrap();
        assert_eq!((s.median, s.p95, s.p99), (7.5, 7.5, 7.5));
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
    }
}
