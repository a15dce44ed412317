//! What `/proc` says about the daemon: CPU time and memory.

use std::time::Instant;

/// A `kB` field of `/proc/PID/status` text (`VmRSS`, `VmHWM`, ...), in KiB.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The process's CPU time at one moment: the sum over its threads of the time on a CPU from
/// `/proc/PID/task/*/schedstat` (nanoseconds; the clock-tick counts of `/proc/PID/stat` are
/// 10 ms coarse, too coarse for a few ms per second over a short window). Threads that ended
/// in between are not counted; the daemon's threads live as long as it does.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnap {
    pub at: Instant,
    pub ns: u64,
}

/// The first field of a `schedstat` line: time spent on a CPU, ns.
pub fn schedstat_ns(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

impl CpuSnap {
    pub fn take(pid: u32) -> Result<CpuSnap, String> {
        let at = Instant::now();
        let dir = format!("/proc/{pid}/task");
        let mut ns = 0;
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
            let path = entry
                .map_err(|e| format!("{dir}: {e}"))?
                .path()
                .join("schedstat");
            // A thread that ended meanwhile has no file any more.
            if let Ok(text) = std::fs::read_to_string(&path) {
                ns += schedstat_ns(&text)
                    .ok_or_else(|| format!("cannot parse {}", path.display()))?;
            }
        }
        Ok(CpuSnap { at, ns })
    }

    /// CPU milliseconds per wall second from `self` to `later`.
    pub fn ms_per_s(&self, later: &CpuSnap) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        later.ns.saturating_sub(self.ns) as f64 / 1e6 / wall
    }
}

/// `VmRSS` and `VmHWM` of a process, KiB.
pub fn memory_kib(pid: u32) -> Result<(u64, u64), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    match (status_kib(&status, "VmRSS"), status_kib(&status, "VmHWM")) {
        (Some(rss), Some(hwm)) => Ok((rss, hwm)),
        _ => Err(format!("no VmRSS/VmHWM in /proc/{pid}/status")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_gives_the_time_on_cpu() {
        assert_eq!(schedstat_ns("2816310 117120 21\n"), Some(2_816_310));
        assert_eq!(schedstat_ns(""), None);
    }

    #[test]
    fn status_fields_in_kib() {
        let status = "Name:\tnanokvmd\nVmHWM:\t    5120 kB\nVmRSS:\t    4096 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(4096));
        assert_eq!(status_kib(status, "VmHWM"), Some(5120));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }
}
