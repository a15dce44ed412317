//! Which GPIO line is which button or LED on each NanoKVM board, and where sysfs puts them.

use std::path::{Path, PathBuf};

/// The board revision, as `/etc/kvm/hw` names it (written at boot by the stock `S15kvmhwd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The early board revision: the only one with an HDD LED input.
    Alpha,
    /// The NanoKVM Cube (Full and Lite).
    Beta,
    Pcie,
}

/// The GPIO numbers of the front-panel signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lines {
    /// Output: drives the power button while `1`.
    pub power: u16,
    /// Output: drives the reset button while `1`.
    pub reset: u16,
    /// Input, active-low: `0` means the LED is lit.
    pub power_led: u16,
    /// Input, active-low; only the alpha board has it.
    pub hdd_led: Option<u16>,
}

impl Variant {
    pub fn from_name(name: &str) -> Option<Variant> {
        match name.trim() {
            "alpha" => Some(Variant::Alpha),
            "beta" => Some(Variant::Beta),
            "pcie" => Some(Variant::Pcie),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Alpha => "alpha",
            Variant::Beta => "beta",
            Variant::Pcie => "pcie",
        }
    }

    /// The contents of `/etc/kvm/hw` as the stock firmware reads it: a missing file or an
    /// unknown name means alpha.
    pub fn from_hw_file(contents: Option<&str>) -> Variant {
        contents
            .and_then(Variant::from_name)
            .unwrap_or(Variant::Alpha)
    }

    pub fn lines(self) -> Lines {
        match self {
            Variant::Alpha => Lines {
                power: 503,
                reset: 507,
                power_led: 504,
                hdd_led: Some(505),
            },
            Variant::Beta | Variant::Pcie => Lines {
                power: 503,
                reset: 505,
                power_led: 504,
                hdd_led: None,
            },
        }
    }
}

/// `ROOT/sys/class/gpio/gpioN/value`: `root` is `/` on the device, a scratch directory for
/// the simulated target and in tests.
pub fn value_path(root: &Path, gpio: u16) -> PathBuf {
    root.join(format!("sys/class/gpio/gpio{gpio}/value"))
}

/// Where the board variant is recorded, under `root`.
pub fn hw_file(root: &Path) -> PathBuf {
    root.join("etc/kvm/hw")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_matches_the_stock_firmware() {
        let a = Variant::Alpha.lines();
        assert_eq!(
            (a.power, a.reset, a.power_led, a.hdd_led),
            (503, 507, 504, Some(505))
        );
        for v in [Variant::Beta, Variant::Pcie] {
            let l = v.lines();
            assert_eq!(
                (l.power, l.reset, l.power_led, l.hdd_led),
                (503, 505, 504, None)
            );
        }
    }

    #[test]
    fn a_missing_or_unknown_hw_file_means_alpha() {
        assert_eq!(Variant::from_hw_file(None), Variant::Alpha);
        assert_eq!(Variant::from_hw_file(Some("gamma\n")), Variant::Alpha);
        assert_eq!(Variant::from_hw_file(Some("beta\n")), Variant::Beta);
        assert_eq!(Variant::from_hw_file(Some("pcie")), Variant::Pcie);
        for v in [Variant::Alpha, Variant::Beta, Variant::Pcie] {
            assert_eq!(Variant::from_name(v.name()), Some(v));
        }
    }

    #[test]
    fn paths_are_laid_out_like_sysfs() {
        assert_eq!(
            value_path(Path::new("/"), 503),
            Path::new("/sys/class/gpio/gpio503/value")
        );
        assert_eq!(hw_file(Path::new("/tmp/x")), Path::new("/tmp/x/etc/kvm/hw"));
    }
}
