//! The pure parts of `cargo xtask bench` (the measurement program is
//! `tests/examples/bench/`): percentiles, the daemon's `/proc` figures, and the report with
//! its table, Markdown and JSON forms.

pub mod probe;
pub mod procfs;
pub mod report;
pub mod summary;

#[cfg(test)]
mod tests {
    use crate::Metrics;

    /// The series the bench reads, as the daemon writes them (labels, quantiles, sums).
    #[test]
    fn the_series_the_bench_reads_parse() {
        let text = "\
# HELP nanokvmd_server_frame_seconds Encoded H.264 frame ready -> written.
# TYPE nanokvmd_server_frame_seconds summary
nanokvmd_server_frame_seconds_sum 0.246622965
nanokvmd_server_frame_seconds_count 363
nanokvmd_heap_allocations_total 19146
nanokvmd_encode_seconds_sum{codec=\"h264\"} 1.5
nanokvmd_hid_input_to_report_us{quantile=\"0.5\"} 310
nanokvmd_hid_input_to_report_us{quantile=\"0.99\"} 1250.5
nanokvmd_hid_input_to_report_us{quantile=\"1\"} 4000
nanokvmd_hid_input_to_report_us_count 600
";
        let m = Metrics::parse(text);
        assert_eq!(
            m.get("nanokvmd_server_frame_seconds_sum"),
            Some(0.246622965)
        );
        assert_eq!(m.get("nanokvmd_server_frame_seconds_count"), Some(363.0));
        assert_eq!(m.get("nanokvmd_heap_allocations_total"), Some(19146.0));
        assert_eq!(
            m.get("nanokvmd_encode_seconds_sum{codec=\"h264\"}"),
            Some(1.5)
        );
        assert_eq!(
            m.get("nanokvmd_hid_input_to_report_us{quantile=\"0.99\"}"),
            Some(1250.5)
        );
        assert_eq!(m.get("nanokvmd_hid_input_to_report_us_count"), Some(600.0));
        assert_eq!(m.get("nanokvmd_heap_live_bytes"), None);
    }
}
