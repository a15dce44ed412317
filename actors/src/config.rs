//! Start-up configuration: the TOML file, then command-line flags over it. A bad file stops
//! start-up with the file, line and what is wrong.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use nanokvm_protocol::{Resolution, StreamSettings};
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// The NanoKVM hardware where it is found, else the simulated target.
    Auto,
    /// The simulated target computer (a text console with a clock)
    Sim,
    /// The NanoKVM hardware: vendor video library, USB HID gadget, ATX GPIO
    Device,
}

/// Whether the daemon forces IDRs (new viewer, resync, scene change, resume). `Off` exists to
/// measure what the policy buys: viewers then wait for the encoder's GOP, as with the stock
/// server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdrPolicyMode {
    On,
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// Stream this pre-encoded Annex-B H.264 file instead of encoding.
    Replay(PathBuf),
}

impl std::str::FromStr for SourceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("replay", path)) if !path.is_empty() => {
                Ok(SourceSpec::Replay(PathBuf::from(path)))
            }
            _ => Err(format!("unknown source {s:?}; expected replay:PATH")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    pub backend: BackendChoice,
    pub source: Option<SourceSpec>,
    pub stream: StreamSettings,
    pub idr_policy: IdrPolicyMode,
    /// Simulated target only: stamp each picture with its capture time (glass-to-glass
    /// measurements; see `sim/stamp.rs`).
    pub sim_stamp: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            backend: BackendChoice::Auto,
            source: None,
            stream: StreamSettings::default(),
            idr_policy: IdrPolicyMode::On,
            sim_stamp: false,
        }
    }
}

#[derive(Debug, PartialEq)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line and column, when the problem has a place in the file.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.path.display(), self.message)
            }
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Spanned<String>>,
    backend: Option<Spanned<String>>,
    source: Option<Spanned<String>>,
    video: Option<VideoSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VideoSection {
    resolution: Option<Spanned<String>>,
    fps: Option<Spanned<i64>>,
    h264_bitrate_kbps: Option<Spanned<i64>>,
    gop: Option<Spanned<i64>>,
    jpeg_quality: Option<Spanned<i64>>,
    idr_policy: Option<Spanned<String>>,
}

/// Parses a config file's text over the defaults.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let err = |span: Option<Range<usize>>, message: String| ConfigError {
        path: path.to_path_buf(),
        at: span.map(|s| line_col(text, s.start)),
        message,
    };
    let file: FileConfig =
        toml::from_str(text).map_err(|e| err(e.span(), e.message().trim().to_string()))?;
    let mut cfg = Config::default();
    if let Some(v) = file.listen {
        cfg.listen = v.get_ref().parse().map_err(|e| {
            err(
                Some(v.span()),
                format!("listen = {:?}: {e} (expected HOST:PORT)", v.get_ref()),
            )
        })?;
    }
    if let Some(v) = file.backend {
        cfg.backend = match v.get_ref().as_str() {
            "auto" => BackendChoice::Auto,
            "sim" => BackendChoice::Sim,
            "device" => BackendChoice::Device,
            other => {
                return Err(err(
                    Some(v.span()),
                    format!("backend = {other:?}: expected auto, sim or device"),
                ))
            }
        };
    }
    if let Some(v) = file.source {
        cfg.source = Some(v.get_ref().parse().map_err(|e| err(Some(v.span()), e))?);
    }
    if let Some(video) = file.video {
        let s = &mut cfg.stream;
        if let Some(v) = video.resolution {
            s.resolution = Resolution::from_name(v.get_ref()).ok_or_else(|| {
                err(
                    Some(v.span()),
                    format!(
                        "resolution = {:?}: expected 720p, 1080p or native",
                        v.get_ref()
                    ),
                )
            })?;
        }
        let range_err = |name: &str, v: &Spanned<i64>, r: (u32, u32)| {
            err(
                Some(v.span()),
                format!(
                    "{name} = {} is out of range (allowed {}..={})",
                    v.get_ref(),
                    r.0,
                    r.1
                ),
            )
        };
        macro_rules! number {
            ($field:ident, $range:expr) => {
                if let Some(v) = &video.$field {
                    let r = $range;
                    let bounds = (*r.start() as u32, *r.end() as u32);
                    s.$field = (*v.get_ref())
                        .try_into()
                        .ok()
                        .filter(|x| r.contains(x))
                        .ok_or_else(|| range_err(stringify!($field), v, bounds))?;
                }
            };
        }
        number!(fps, StreamSettings::FPS);
        number!(h264_bitrate_kbps, StreamSettings::BITRATE_KBPS);
        number!(gop, StreamSettings::GOP);
        number!(jpeg_quality, StreamSettings::JPEG_QUALITY);
        if let Some(v) = video.idr_policy {
            cfg.idr_policy = match v.get_ref().as_str() {
                "on" => IdrPolicyMode::On,
                "off" => IdrPolicyMode::Off,
                other => {
                    return Err(err(
                        Some(v.span()),
                        format!("idr_policy = {other:?}: expected on or off"),
                    ))
                }
            };
        }
    }
    Ok(cfg)
}

pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        at: None,
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("test.toml"), text)
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let cfg = parse_str("").unwrap();
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.stream.resolution, Resolution::P720);
        assert_eq!(cfg.stream.gop, 60);
    }

    #[test]
    fn every_key_is_read() {
        let cfg = parse_str(
            "listen = \"0.0.0.0:80\"\nbackend = \"sim\"\nsource = \"replay:/tmp/a.h264\"\n[video]\nresolution = \"native\"\nfps = 60\nh264_bitrate_kbps = 4000\ngop = 30\njpeg_quality = 50\n",
        )
        .unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:80".parse().unwrap());
        assert_eq!(cfg.backend, BackendChoice::Sim);
        assert_eq!(cfg.source, Some(SourceSpec::Replay("/tmp/a.h264".into())));
        assert_eq!(
            cfg.stream,
            StreamSettings {
                resolution: Resolution::Native,
                fps: 60,
                h264_bitrate_kbps: 4000,
                gop: 30,
                jpeg_quality: 50
            }
        );
    }

    #[test]
    fn idr_policy_can_be_turned_off() {
        let cfg = parse_str("[video]\nidr_policy = \"off\"\n").unwrap();
        assert_eq!(cfg.idr_policy, IdrPolicyMode::Off);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = parse_str("[video]\nfps = 30\nframerate = 5\n").unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(3));
        let text = e.to_string();
        assert!(text.starts_with("test.toml:3:"), "{text}");
        assert!(text.contains("framerate"), "{text}");
    }

    #[test]
    fn out_of_range_value_names_line_and_range() {
        let e = parse_str("\n[video]\nfps = 99\n").unwrap_err().to_string();
        assert!(e.starts_with("test.toml:3:"), "{e}");
        assert!(e.contains("fps = 99") && e.contains("5..=60"), "{e}");
        assert!(parse_str("[video]\ngop = -1\n")
            .unwrap_err()
            .to_string()
            .contains("gop"));
    }

    #[test]
    fn wrong_types_and_bad_values_are_refused() {
        assert!(parse_str("[video]\nfps = \"fast\"\n")
            .unwrap_err()
            .to_string()
            .starts_with("test.toml:2:"));
        assert!(parse_str("listen = \"nowhere\"\n")
            .unwrap_err()
            .to_string()
            .contains("HOST:PORT"));
        assert!(parse_str("backend = \"cloud\"\n")
            .unwrap_err()
            .to_string()
            .contains("auto, sim or device"));
        assert!(parse_str("source = \"camera\"\n")
            .unwrap_err()
            .to_string()
            .contains("replay:PATH"));
        assert!(parse_str("[video]\nresolution = \"4k\"\n").is_err());
        assert!(parse_str("[video]\nidr_policy = \"sometimes\"\n")
            .unwrap_err()
            .to_string()
            .contains("on or off"));
    }

    #[test]
    fn the_shipped_default_config_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../rootfs/etc/nanokvmd/nanokvmd.toml"
        );
        let cfg = load(Path::new(path)).unwrap();
        assert_eq!(cfg.stream.resolution, Resolution::P720);
    }
}
