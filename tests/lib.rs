//! Harness for the end-to-end tests: runs the real `nanokvmd` binary and talks to it the way a
//! browser or a tool would, over HTTP/1.1 and the `/api/ws` WebSocket, authenticated with the
//! daemon's API token unless told otherwise (`credentials.rs`), over TLS when
//! `NANOKVM_E2E_TLS=1` (`transport.rs`).
//!
//! Every wait here is bounded (`bounded.rs`), so a daemon that hangs makes a test fail with a
//! message that says what was awaited, instead of making the suite hang. The daemon's output is
//! kept and printed when a test panics while the daemon is alive.
//!
//! The e2e tests (`tests/tests/*.rs`) are `[[test]]` targets of the `nanokvmd` package, so
//! `cargo test -p nanokvmd` builds the binary before it runs them (`binary.rs`).
//!
//! - `binary.rs`: which binary runs; `scratch.rs`: temporary directories.
//! - `daemon.rs`: a running daemon (start, address, output, signals, stop); `daemon_output.rs`:
//!   its stdout and stderr; `one_shot.rs`: runs that end by themselves (CLI, start-up errors).
//! - `http.rs` (+ `http/body_stream.rs`): the HTTP client; `ws.rs` (+ `ws/message.rs`): the
//!   WebSocket client; `metrics.rs`: `/metrics`.
//! - `h264.rs` (+ `h264/replay_file.rs`), `mjpeg.rs`: checks of what the streams carry, and
//!   recordings for the replay source.
//! - `target.rs`: the simulated target's state and a keyboard table.
//! - `bench/`: the pure parts of the measurement program (`cargo xtask bench`).

pub use nanokvm_protocol as proto;

mod binary;
mod bounded;
mod credentials;
mod daemon;
mod daemon_output;
mod metrics;
mod mjpeg;
mod one_shot;
mod scratch;
mod transport;

pub mod bench;
pub mod h264;
pub mod http;
pub mod target;
pub mod ws;

pub use binary::{daemon_bin, use_daemon_bin, workspace_dir};
pub use bounded::{block_on, timeout, within};
pub use credentials::{e2e_tls, Auth, Credentials, E2E_PASSWORD, E2E_TOKEN_NAME, E2E_USER};
pub use daemon::{kill_daemons_on_panic, parse_listen_line, Daemon, START_TIMEOUT};
pub use metrics::Metrics;
pub use mjpeg::{jpeg_size, take_parts, Part};
pub use one_shot::{run_cli, run_daemon, RunOutput};
pub use scratch::TempDir;
pub use transport::{connect_async, AsyncConn, SyncConn};
