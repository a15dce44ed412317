//! What `/proc` says about the daemon: CPU time and memory.

use std::time::Instant;

/// utime + stime in clock ticks, from the text of `/proc/PID/stat` (the command name may
/// contain spaces and parentheses, so fields are counted from the last `)`).
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A `kB` field of `/proc/PID/status` text (`VmRSS`, `VmHWM`, ...), in KiB.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// The process's CPU time at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnap {
    pub at: Instant,
    pub ticks: u64,
}

impl CpuSnap {
    pub fn take(pid: u32) -> Result<CpuSnap, String> {
        let at = Instant::now();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
        let ticks = stat_ticks(&stat).ok_or_else(|| format!("cannot parse /proc/{pid}/stat"))?;
        Ok(CpuSnap { at, ticks })
    }

    /// CPU milliseconds per wall second from `self` to `later`.
    pub fn ms_per_s(&self, later: &CpuSnap, ticks_per_s: f64) -> f64 {
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        later.ticks.saturating_sub(self.ticks) as f64 / ticks_per_s * 1000.0 / wall
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
    fn ticks_are_utime_plus_stime_even_with_odd_command_names() {
        let stat = "1234 (nano kvm) (d)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 31 0 0 20 0 3 0";
        assert_eq!(stat_ticks(stat), Some(281));
        assert_eq!(stat_ticks("garbage"), None);
    }

    #[test]
    fn status_fields_in_kib() {
        let status = "Name:\tnanokvmd\nVmHWM:\t    5120 kB\nVmRSS:\t    4096 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(4096));
        assert_eq!(status_kib(status, "VmHWM"), Some(5120));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }
}
