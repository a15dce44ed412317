//! Start-up configuration: the TOML file, then command-line flags over it. A bad file stops
//! start-up with the file, line and what is wrong.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use nanokvm_protocol::{Resolution, StreamSettings};

use crate::auth::SessionLimits;
use crate::hid::HidPaths;
use serde::Deserialize;
use toml::Spanned;

use crate::atx::Variant;

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
    /// `None`: the backend's default (see `web::exposure`).
    pub listen: Option<SocketAddr>,
    pub backend: BackendChoice,
    pub source: Option<SourceSpec>,
    pub stream: StreamSettings,
    pub atx: AtxSettings,
    /// The USB HID gadget's device files (in sim mode the daemon points them at its FIFOs).
    pub hid: HidPaths,
    /// Accounts, tokens, the TLS certificate; `None`: `auth::store::default_data_dir`.
    pub data_dir: Option<PathBuf>,
    pub web: WebConfig,
    pub sessions: SessionLimits,
    pub idr_policy: IdrPolicyMode,
    pub device: DeviceSettings,
    /// Simulated target only: stamp each picture with its capture time (glass-to-glass
    /// measurements; see `sim/stamp.rs`).
    pub sim_stamp: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: None,
            backend: BackendChoice::Auto,
            source: None,
            stream: StreamSettings::default(),
            atx: AtxSettings::default(),
            hid: HidPaths::default(),
            data_dir: None,
            web: WebConfig::default(),
            sessions: SessionLimits::default(),
            idr_policy: IdrPolicyMode::On,
            device: DeviceSettings::default(),
            sim_stamp: false,
        }
    }
}

/// The `[device]` section: where the device backend finds the vendor library and the
/// firmware's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSettings {
    /// The directory holding `libkvm.so` and `libvenc.so`.
    pub library_dir: PathBuf,
    /// Prefix of `/kvmapp/kvm/*` (the OLED's state files) and of the watchdog's files
    /// (`/etc/kvm/watchdog`, `/tmp/watchdog`, `/tmp/nanokvm_wd`); `/` on the device.
    pub root: PathBuf,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        Self {
            library_dir: PathBuf::from(nanokvm_ffi::VideoLibrary::DEFAULT_DIR),
            root: PathBuf::from("/"),
        }
    }
}

/// The `[atx]` section: the front panel's GPIO lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtxSettings {
    /// `None`: from `GPIO_ROOT/etc/kvm/hw`.
    pub variant: Option<Variant>,
    /// `None`: `/` on the device, the simulated target's directory with the sim.
    pub gpio_root: Option<PathBuf>,
    pub power_long_ms: u32,
}

impl Default for AtxSettings {
    fn default() -> Self {
        Self {
            variant: None,
            gpio_root: None,
            power_long_ms: crate::atx::DEFAULT_LONG_PRESS_MS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TlsChoice {
    /// On with the device backend, off with the simulated target.
    #[default]
    Auto,
    On,
    Off,
}

/// How the console is served: TLS, the HTTP redirect, and whether plain HTTP may leave the
/// machine.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebConfig {
    pub tls: TlsChoice,
    /// A certificate chain and key (PEM) to use instead of the generated self-signed one.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A plain-HTTP listener that redirects to HTTPS. `None`: port 80 on the device with TLS,
    /// none otherwise; `Some(None)`: none.
    pub http_redirect: Option<Option<SocketAddr>>,
    /// Allows plain HTTP on an address other than loopback.
    pub insecure_http: bool,
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
    data_dir: Option<String>,
    video: Option<VideoSection>,
    atx: Option<AtxSection>,
    hid: Option<HidSection>,
    web: Option<WebSection>,
    auth: Option<AuthSection>,
    device: Option<DeviceSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceSection {
    library_dir: Option<Spanned<String>>,
    root: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AtxSection {
    variant: Option<Spanned<String>>,
    gpio_root: Option<Spanned<String>>,
    power_long_ms: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebSection {
    tls: Option<Spanned<String>>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    http_redirect: Option<Spanned<String>>,
    insecure_http: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HidSection {
    keyboard: Option<Spanned<String>>,
    mouse: Option<Spanned<String>>,
    absolute: Option<Spanned<String>>,
    leds: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    session_idle_secs: Option<Spanned<i64>>,
    session_max_secs: Option<Spanned<i64>>,
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
        cfg.listen = Some(v.get_ref().parse().map_err(|e| {
            err(
                Some(v.span()),
                format!("listen = {:?}: {e} (expected HOST:PORT)", v.get_ref()),
            )
        })?);
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
    cfg.data_dir = file.data_dir.map(PathBuf::from);
    if let Some(web) = file.web {
        if let Some(v) = web.tls {
            cfg.web.tls = match v.get_ref().as_str() {
                "auto" => TlsChoice::Auto,
                "on" => TlsChoice::On,
                "off" => TlsChoice::Off,
                other => {
                    return Err(err(
                        Some(v.span()),
                        format!("tls = {other:?}: expected auto, on or off"),
                    ))
                }
            };
        }
        cfg.web.tls_cert = web.tls_cert.map(PathBuf::from);
        cfg.web.tls_key = web.tls_key.map(PathBuf::from);
        if let Some(v) = web.http_redirect {
            cfg.web.http_redirect = Some(match v.get_ref().as_str() {
                "off" => None,
                a => Some(a.parse().map_err(|e| {
                    err(
                        Some(v.span()),
                        format!("http_redirect = {a:?}: {e} (expected HOST:PORT or \"off\")"),
                    )
                })?),
            });
        }
        cfg.web.insecure_http = web.insecure_http.unwrap_or(false);
    }
    if let Some(auth) = file.auth {
        let secs = |v: &Spanned<i64>, name: &str| {
            u64::try_from(*v.get_ref())
                .ok()
                .filter(|s| (1..=30 * 86_400).contains(s))
                .map(|s| s * 1_000_000)
                .ok_or_else(|| {
                    err(
                        Some(v.span()),
                        format!(
                            "{name} = {} is out of range (allowed 1..=2592000)",
                            v.get_ref()
                        ),
                    )
                })
        };
        if let Some(v) = &auth.session_idle_secs {
            cfg.sessions.idle_us = secs(v, "session_idle_secs")?;
        }
        if let Some(v) = &auth.session_max_secs {
            cfg.sessions.absolute_us = secs(v, "session_max_secs")?;
        }
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
    if let Some(atx) = file.atx {
        if let Some(v) = atx.variant {
            cfg.atx.variant = Some(Variant::from_name(v.get_ref()).ok_or_else(|| {
                err(
                    Some(v.span()),
                    format!("variant = {:?}: expected alpha, beta or pcie", v.get_ref()),
                )
            })?);
        }
        if let Some(v) = atx.gpio_root {
            if v.get_ref().is_empty() {
                return Err(err(
                    Some(v.span()),
                    "gpio_root is empty (\"/\" on the device)".into(),
                ));
            }
            cfg.atx.gpio_root = Some(PathBuf::from(v.get_ref()));
        }
        if let Some(v) = atx.power_long_ms {
            let r = crate::atx::LONG_PRESS_MS;
            cfg.atx.power_long_ms = u32::try_from(*v.get_ref())
                .ok()
                .filter(|ms| r.contains(ms))
                .ok_or_else(|| {
                    err(
                        Some(v.span()),
                        format!(
                            "power_long_ms = {} is out of range (allowed {}..={})",
                            v.get_ref(),
                            r.start(),
                            r.end()
                        ),
                    )
                })?;
        }
    }
    if let Some(device) = file.device {
        for (name, value, slot) in [
            (
                "library_dir",
                device.library_dir,
                &mut cfg.device.library_dir,
            ),
            ("root", device.root, &mut cfg.device.root),
        ] {
            let Some(v) = value else { continue };
            if !Path::new(v.get_ref()).is_absolute() {
                return Err(err(
                    Some(v.span()),
                    format!(
                        "[device] {name} = {:?}: expected an absolute path",
                        v.get_ref()
                    ),
                ));
            }
            *slot = PathBuf::from(v.get_ref());
        }
    }
    if let Some(hid) = file.hid {
        let paths = &mut cfg.hid;
        for (name, value, slot) in [
            ("keyboard", hid.keyboard, &mut paths.keyboard),
            ("mouse", hid.mouse, &mut paths.mouse),
            ("absolute", hid.absolute, &mut paths.absolute),
            ("leds", hid.leds, &mut paths.leds),
        ] {
            let Some(v) = value else { continue };
            let p = PathBuf::from(v.get_ref());
            if !p.is_absolute() {
                return Err(err(
                    Some(v.span()),
                    format!(
                        "[hid] {name} = {:?}: expected an absolute path such as /dev/hidg0",
                        v.get_ref()
                    ),
                ));
            }
            *slot = p;
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
        assert_eq!(cfg.listen, Some("0.0.0.0:80".parse().unwrap()));
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
    fn hid_paths_are_read_and_must_be_absolute() {
        let cfg = parse_str("[hid]\nkeyboard = \"/dev/hidg5\"\nleds = \"/dev/hidg6\"\n").unwrap();
        assert_eq!(cfg.hid.keyboard, PathBuf::from("/dev/hidg5"));
        assert_eq!(cfg.hid.mouse, PathBuf::from("/dev/hidg1"));
        assert_eq!(cfg.hid.leds, PathBuf::from("/dev/hidg6"));
        let e = parse_str("[hid]\n\nmouse = \"hidg1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("test.toml:3:"), "{e}");
        assert!(e.contains("absolute path"), "{e}");
        assert!(parse_str("[hid]\njoystick = \"/dev/x\"\n").is_err());
    }

    #[test]
    fn web_and_auth_keys_are_read() {
        let cfg = parse_str(
            "data_dir = \"/var/lib/kvm\"\n[web]\ntls = \"on\"\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\nhttp_redirect = \"off\"\ninsecure_http = true\n[auth]\nsession_idle_secs = 600\nsession_max_secs = 7200\n",
        )
        .unwrap();
        assert_eq!(cfg.data_dir, Some(PathBuf::from("/var/lib/kvm")));
        assert_eq!(cfg.web.tls, TlsChoice::On);
        assert_eq!(cfg.web.tls_cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(cfg.web.http_redirect, Some(None));
        assert!(cfg.web.insecure_http);
        assert_eq!(cfg.sessions.idle_us, 600_000_000);
        assert_eq!(cfg.sessions.absolute_us, 7_200_000_000);
        let e = parse_str("[auth]\nsession_idle_secs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("test.toml:2:") && e.contains("session_idle_secs"),
            "{e}"
        );
        assert!(parse_str("[web]\ntls = \"maybe\"\n").is_err());
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
    fn the_atx_section_is_read_and_checked() {
        let cfg = parse_str(
            "[atx]\nvariant = \"beta\"\ngpio_root = \"/tmp/gpio\"\npower_long_ms = 5000\n",
        )
        .unwrap();
        assert_eq!(
            cfg.atx,
            AtxSettings {
                variant: Some(Variant::Beta),
                gpio_root: Some("/tmp/gpio".into()),
                power_long_ms: 5000
            }
        );
        let e = parse_str("[atx]\nvariant = \"gamma\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("test.toml:2:") && e.contains("alpha, beta or pcie"),
            "{e}"
        );
        let e = parse_str("\n[atx]\npower_long_ms = 999\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("test.toml:3:") && e.contains("1000..=30000"),
            "{e}"
        );
        assert!(parse_str("[atx]\npower_long_ms = 30001\n").is_err());
        assert!(parse_str("[atx]\ngpio_root = \"\"\n").is_err());
        let e = parse_str("[atx]\npin = 3\n").unwrap_err().to_string();
        assert!(e.starts_with("test.toml:2:") && e.contains("pin"), "{e}");
    }

    #[test]
    fn the_device_section_is_read_and_checked() {
        let cfg =
            parse_str("[device]\nlibrary_dir = \"/opt/dl_lib\"\nroot = \"/tmp/kvm\"\n").unwrap();
        assert_eq!(cfg.device.library_dir, PathBuf::from("/opt/dl_lib"));
        assert_eq!(cfg.device.root, PathBuf::from("/tmp/kvm"));
        assert_eq!(
            Config::default().device.library_dir,
            PathBuf::from("/kvmapp/server/dl_lib")
        );
        let e = parse_str("[device]\n\nlibrary_dir = \"dl_lib\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("test.toml:3:") && e.contains("absolute"),
            "{e}"
        );
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
