//! The pure parts of `cargo xtask bench` (the measurement program is
//! `tests/examples/bench/`): percentiles, the daemon's `/proc` figures, and the report with
//! its table, Markdown and JSON forms.

pub mod procfs;
pub mod report;
pub mod summary;
