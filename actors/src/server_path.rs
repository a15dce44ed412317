//! The server's own time per frame, encode excluded: from the moment the media thread has the
//! encoded frame to the moment the last WebSocket viewer's write of it returned (the bytes are
//! in every socket's kernel buffer). Shown in `/metrics` as
//! `nanokvmd_server_frame_seconds{_sum,_count,_max}`; `cargo xtask bench` compares the mean
//! with the 0.2 ms target.
//!
//! Every session reports each H.264 frame it wrote with the time since the frame was ready.
//! Sessions write frames in order, so a frame is complete once some session reports a newer
//! one: its slowest write is then added to the sum. A viewer so far behind that its write
//! comes after a newer frame was already reported is counted in `late_writes` instead (it has
//! a full queue and is about to be dropped to the next IDR, which is not the server's time).
//! Relaxed atomics like the other counters; only the executor thread writes them.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct ServerPath {
    /// The sequence number + 1 of the frame whose writes are being collected (0: none yet).
    current: AtomicU64,
    current_max_ns: AtomicU64,
    sum_ns: AtomicU64,
    count: AtomicU64,
    max_ns: AtomicU64,
    late_writes: AtomicU64,
}

impl ServerPath {
    /// One viewer's write of H.264 frame `seq` returned `ns` after the frame was ready.
    pub fn written(&self, seq: u32, ns: u64) {
        let key = u64::from(seq) + 1;
        let current = self.current.load(Relaxed);
        if key == current {
            self.current_max_ns.fetch_max(ns, Relaxed);
        } else if key > current || current - key > u64::from(u32::MAX / 2) {
            // A newer frame (or the sequence wrapped): the previous one is complete.
            self.complete(current);
            self.current.store(key, Relaxed);
            self.current_max_ns.store(ns, Relaxed);
        } else {
            self.late_writes.fetch_add(1, Relaxed);
        }
    }

    fn complete(&self, key: u64) {
        if key == 0 {
            return;
        }
        let ns = self.current_max_ns.load(Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.max_ns.fetch_max(ns, Relaxed);
    }

    pub fn render(&self, out: &mut String) {
        let secs = |v: &AtomicU64| v.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "# HELP nanokvmd_server_frame_seconds Encoded H.264 frame ready -> the last WebSocket viewer's write of it returned.\n\
             # TYPE nanokvmd_server_frame_seconds summary\n\
             nanokvmd_server_frame_seconds_sum {:.9}\n\
             nanokvmd_server_frame_seconds_count {}\n\
             nanokvmd_server_frame_seconds_max {:.9}",
            secs(&self.sum_ns),
            self.count.load(Relaxed),
            secs(&self.max_ns)
        );
        let _ = writeln!(
            out,
            "# HELP nanokvmd_server_frame_late_writes_total Frame writes that came after a newer frame's (a viewer far behind).\n\
             # TYPE nanokvmd_server_frame_late_writes_total counter\n\
             nanokvmd_server_frame_late_writes_total {}",
            self.late_writes.load(Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(p: &ServerPath) -> (u64, u64, u64, u64) {
        (
            p.sum_ns.load(Relaxed),
            p.count.load(Relaxed),
            p.max_ns.load(Relaxed),
            p.late_writes.load(Relaxed),
        )
    }

    #[test]
    fn a_frame_counts_its_slowest_write_once_a_newer_frame_is_written() {
        let p = ServerPath::default();
        p.written(7, 100);
        p.written(7, 300);
        p.written(7, 200);
        assert_eq!(
            totals(&p),
            (0, 0, 0, 0),
            "frame 7 may still have writes to come"
        );
        p.written(8, 50);
        assert_eq!(totals(&p), (300, 1, 300, 0));
        p.written(8, 70);
        p.written(10, 10);
        assert_eq!(totals(&p), (370, 2, 300, 0));
    }

    #[test]
    fn a_write_of_an_older_frame_is_late() {
        let p = ServerPath::default();
        p.written(5, 100);
        p.written(6, 100);
        p.written(5, 9_000);
        assert_eq!(totals(&p), (100, 1, 100, 1));
    }

    #[test]
    fn the_sequence_may_wrap() {
        let p = ServerPath::default();
        p.written(u32::MAX, 40);
        p.written(0, 60);
        p.written(1, 60);
        assert_eq!(totals(&p).1, 2);
    }

    #[test]
    fn renders_sum_count_and_max_in_seconds() {
        let p = ServerPath::default();
        p.written(1, 150_000);
        p.written(2, 1);
        let mut out = String::new();
        p.render(&mut out);
        assert!(
            out.contains("nanokvmd_server_frame_seconds_sum 0.000150000\n"),
            "{out}"
        );
        assert!(
            out.contains("nanokvmd_server_frame_seconds_count 1\n"),
            "{out}"
        );
        assert!(
            out.contains("nanokvmd_server_frame_late_writes_total 0\n"),
            "{out}"
        );
    }
}
