//! Command-line flags; each overrides the config file's value.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nanokvm_protocol::Resolution;

use crate::config::{BackendChoice, Config, ConfigError, IdrPolicyMode, SourceSpec, TlsChoice};

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
    #[arg(long, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
    /// Frames per second, 5..=60 [default: 30]
    #[arg(long, value_parser = clap::value_parser!(u8).range(5..=60))]
    pub fps: Option<u8>,
    /// Output resolution: 720p, 1080p or native [default: 720p]
    #[arg(long, value_parser = parse_resolution)]
    pub resolution: Option<Resolution>,
    /// Accounts, API tokens and the TLS certificate [default: /etc/nanokvm on the device,
    /// else $XDG_STATE_HOME/nanokvmd or ~/.local/state/nanokvmd]
    #[arg(long, value_name = "PATH", global = true)]
    pub data_dir: Option<PathBuf>,
    /// HTTPS: on, off, or auto (on with the device backend) [default: auto]
    #[arg(long, value_enum, value_name = "on|off|auto")]
    pub tls: Option<TlsChoice>,
    /// PEM certificate chain to serve instead of the generated self-signed one
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Plain-HTTP listener that redirects to HTTPS [default: 0.0.0.0:80 on the device]
    #[arg(long, value_name = "HOST:PORT")]
    pub http_redirect: Option<SocketAddr>,
    /// Serve plain HTTP on an address other than loopback (anyone on the path sees the
    /// session cookie and the screen)
    #[arg(long)]
    pub insecure_http: bool,
    /// Device backend: the directory holding the vendor's libkvm.so and libvenc.so
    /// [default: /kvmapp/server/dl_lib]
    #[arg(long, value_name = "PATH", global = true)]
    pub vendor_lib_dir: Option<PathBuf>,
    /// Device backend: prefix of /kvmapp/kvm/* and of the watchdog's files [default: /]
    #[arg(long, value_name = "PATH", global = true)]
    pub device_root: Option<PathBuf>,
    /// Measurements only: `off` never forces an IDR (viewers wait for the GOP, as with the
    /// stock server)
    #[arg(long, value_enum, hide = true)]
    pub idr_policy: Option<IdrPolicyMode>,
    /// Measurements only: stamp the simulated target's pictures with their capture time
    #[arg(long, hide = true)]
    pub sim_stamp: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage accounts (the daemon picks changes up within a second)
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens for tools (`Authorization: Bearer TOKEN`)
    #[command(subcommand)]
    Token(TokenCommand),
    /// List every HTTP route and who may use it
    #[command(hide = true)]
    Routes,
    /// Check what the daemon needs on this NanoKVM, without starting it: the vendor library,
    /// the HDMI signal, the USB gadget, the ATX lines, the stock server (exit 1: something is
    /// missing)
    Doctor,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account; the password is read from the first line of standard input
    Add {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Set an account's password (ends its sessions); read from standard input
    Passwd {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create (or replace) the token NAME and print it once
    New { name: String },
    /// Revoke the token NAME (its open streams end)
    Revoke { name: String },
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
            cfg.listen = Some(v);
        }
        if let Some(v) = &self.data_dir {
            cfg.data_dir = Some(v.clone());
        }
        if let Some(v) = self.tls {
            cfg.web.tls = v;
        }
        if let (Some(c), Some(k)) = (&self.tls_cert, &self.tls_key) {
            cfg.web.tls_cert = Some(c.clone());
            cfg.web.tls_key = Some(k.clone());
        }
        if let Some(v) = self.http_redirect {
            cfg.web.http_redirect = Some(Some(v));
        }
        if self.insecure_http {
            cfg.web.insecure_http = true;
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
        if let Some(v) = &self.vendor_lib_dir {
            cfg.device.library_dir = v.clone();
        }
        if let Some(v) = &self.device_root {
            cfg.device.root = v.clone();
        }
        if let Some(v) = self.idr_policy {
            cfg.idr_policy = v;
        }
        cfg.sim_stamp |= self.sim_stamp;
        Ok(cfg)
    }
}

/// The data directory the daemon and the account commands use.
pub fn data_dir(cfg: &Config) -> PathBuf {
    cfg.data_dir
        .clone()
        .unwrap_or_else(|| crate::auth::store::default_data_dir(crate::board::nanokvm_detected()))
}

/// Runs a subcommand; the exit code (0 done, 1 failed, 2 bad input).
pub fn run_command(
    cmd: &Command,
    cfg: &Config,
    config_file: Option<&std::path::Path>,
) -> std::process::ExitCode {
    use crate::auth::admin;
    use std::process::ExitCode;
    let dir = data_dir(cfg);
    let password = || admin::read_password(&mut std::io::stdin().lock());
    let result = match cmd {
        Command::Routes => {
            print!("{}", crate::web::describe_routes());
            Ok(())
        }
        Command::Doctor => return crate::doctor::run(cfg, config_file, &dir),
        Command::User(UserCommand::Add { name, .. }) => match password() {
            Ok(pw) => admin::user_add(&dir, name, &pw)
                .map(|()| eprintln!("user {name:?} added in {}", dir.display())),
            Err(e) => {
                eprintln!("nanokvmd: {e}");
                return ExitCode::from(2);
            }
        },
        Command::User(UserCommand::Passwd { name, .. }) => match password() {
            Ok(pw) => admin::user_passwd(&dir, name, &pw)
                .map(|()| eprintln!("password of {name:?} changed; their sessions end")),
            Err(e) => {
                eprintln!("nanokvmd: {e}");
                return ExitCode::from(2);
            }
        },
        Command::Token(TokenCommand::New { name }) => {
            admin::token_new(&dir, name).map(|token| admin::print_token(name, &token))
        }
        Command::Token(TokenCommand::Revoke { name }) => {
            admin::token_revoke(&dir, name).map(|()| eprintln!("token {name:?} revoked"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nanokvmd: {e}");
            ExitCode::FAILURE
        }
    }
}
