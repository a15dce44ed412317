//! Timing for the `#[ignore]`d measurement tests of the pixel code
//! (`cargo test --release -p nanokvmd -- --ignored --nocapture --test-threads=1 timing`).

use std::time::{Duration, Instant};

/// Runs `f` `n` times; returns the fastest and the median duration of one run (the machine is
/// shared, so the mean says little).
pub fn fastest_and_median(n: usize, mut f: impl FnMut(usize)) -> (Duration, Duration) {
    let mut t: Vec<Duration> = (0..n)
        .map(|i| {
            let start = Instant::now();
            f(i);
            start.elapsed()
        })
        .collect();
    t.sort();
    (t[0], t[n / 2])
}
