//! Command-line flags; each overrides the config file's value.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use nanokvm_protocol::Resolution;

use crate::config::{BackendChoice, Config, ConfigError, IdrPolicyMode, SourceSpec};

#[derive(Debug, Parser)]
#[command(
    name = "nanokvmd",
    version,
    about = "KVM over IP for the Sipeed NanoKVM: the target's screen, keyboard and mouse in a browser"
)]
pub struct Cli {
    /// Address for the web console, HOST:PORT [default: 127.0.0.1:8080]
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<SocketAddr>,
    /// Hardware backend [default: auto]
    #[arg(long, value_enum)]
    pub backend: Option<BackendChoice>,
    /// Video source instead of the backend's capture: replay:PATH streams a pre-encoded
    /// Annex-B H.264 file in a loop
    #[arg(long, value_name = "replay:PATH")]
    pub source: Option<SourceSpec>,
    /// TOML configuration file (every key optional)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Frames per second, 5..=60 [default: 30]
    #[arg(long, value_parser = clap::value_parser!(u8).range(5..=60))]
    pub fps: Option<u8>,
    /// Output resolution: 720p, 1080p or native [default: 720p]
    #[arg(long, value_parser = parse_resolution)]
    pub resolution: Option<Resolution>,
    /// Measurements only: `off` never forces an IDR (viewers wait for the GOP, as with the
    /// stock server)
    #[arg(long, value_enum, hide = true)]
    pub idr_policy: Option<IdrPolicyMode>,
    /// Measurements only: stamp the simulated target's pictures with their capture time
    #[arg(long, hide = true)]
    pub sim_stamp: bool,
}

fn parse_resolution(s: &str) -> Result<Resolution, String> {
    Resolution::from_name(s).ok_or_else(|| "expected 720p, 1080p or native".into())
}

impl Cli {
    /// The config file (if any) with the flags applied over it.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut cfg = match &self.config {
            Some(path) => crate::config::load(path)?,
            None => Config::default(),
        };
        if let Some(v) = self.listen {
            cfg.listen = v;
        }
        if let Some(v) = self.backend {
            cfg.backend = v;
        }
        if let Some(v) = &self.source {
            cfg.source = Some(v.clone());
        }
        if let Some(v) = self.fps {
            cfg.stream.fps = v;
        }
        if let Some(v) = self.resolution {
            cfg.stream.resolution = v;
        }
        if let Some(v) = self.idr_policy {
            cfg.idr_policy = v;
        }
        cfg.sim_stamp |= self.sim_stamp;
        Ok(cfg)
    }
}
