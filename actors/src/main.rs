//! nanokvmd: one process, one executor thread, actors talking over bounded channels, and one
//! media thread for the work that blocks. See ARCHITECTURE.md.

#[cfg(any(feature = "alloc-count", test))]
mod alloc_count;
mod atx;
mod auth;
mod board;
mod capture;
mod cli;
mod clock;
mod config;
mod daemon;
mod device;
mod doctor;
mod encoder;
mod hid;
mod hub;
mod idr_policy;
mod media;
mod metrics;
mod server_path;
mod session;
#[cfg(feature = "sim")]
mod sim;
mod sys;
mod video_msgs;
// Timing helpers for the pixel code's tests, which exist with the simulated target only.
#[cfg(all(test, feature = "sim"))]
mod timing;
mod watch;
mod web;

use std::process::ExitCode;

use clap::Parser;

#[cfg(any(feature = "alloc-count", test))]
#[global_allocator]
static ALLOCATOR: alloc_count::CountingAlloc = alloc_count::CountingAlloc;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = cli::Cli::parse();
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nanokvmd: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(command) = &cli.command {
        return cli::run_command(command, &config, cli.config.as_deref());
    }
    match daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nanokvmd: {e}");
            ExitCode::FAILURE
        }
    }
}
