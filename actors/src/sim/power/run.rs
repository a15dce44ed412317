//! The simulated target's power side as a task: polls the button files the atx actor drives,
//! feeds [`SimPower`], writes the LED files the atx actor reads and tells the media thread
//! what the screen shows.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_channel::{Receiver, Sender};
use futures_lite::StreamExt;

use super::{Display, PowerState, SimPower};
use crate::atx::{value_path, Variant};
use crate::clock::Clock;
use crate::media::MediaCmd;
use crate::watch::WatchSender;

/// The target looks at its buttons this often.
const POLL_PERIOD: Duration = Duration::from_millis(10);

/// A handle that makes the sim's HDD LED blink, for whatever makes the simulated OS write to
/// its disk (typing). Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct DiskLight(Sender<()>);

impl DiskLight {
    pub fn blink(&self) {
        // A full queue already means "busy": nothing is lost.
        let _ = self.0.try_send(());
    }
}

/// The value files of the front panel in the sim's root.
pub struct PanelFiles {
    power: PathBuf,
    reset: PathBuf,
    power_led: PathBuf,
    hdd_led: Option<PathBuf>,
}

impl PanelFiles {
    /// Lays out `ROOT/sys/class/gpio/gpioN/{value,direction}` for `variant`'s lines (buttons
    /// released, power LED lit: the sim starts on) and `ROOT/etc/kvm/hw`.
    pub fn create(root: &Path, variant: Variant) -> std::io::Result<PanelFiles> {
        let lines = variant.lines();
        let line = |n: u16, direction: &str, value: &str| -> std::io::Result<PathBuf> {
            let path = value_path(root, n);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
                std::fs::write(dir.join("direction"), direction)?;
            }
            std::fs::write(&path, value)?;
            Ok(path)
        };
        let files = PanelFiles {
            power: line(lines.power, "out\n", "0")?,
            reset: line(lines.reset, "out\n", "0")?,
            // Active-low: "0" is lit.
            power_led: line(lines.power_led, "in\n", "0")?,
            hdd_led: lines.hdd_led.map(|n| line(n, "in\n", "1")).transpose()?,
        };
        let hw = crate::atx::hw_file(root);
        if let Some(dir) = hw.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(hw, format!("{}\n", variant.name()))?;
        Ok(files)
    }
}

/// What the sim task needs from the daemon.
pub struct SimPowerLinks {
    pub media: Sender<MediaCmd>,
    pub state: WatchSender<PowerState>,
    pub clock: Clock,
}

/// A channel for [`DiskLight`]s; the receiver goes to [`run`].
pub fn disk_light() -> (DiskLight, Receiver<()>) {
    let (tx, rx) = async_channel::bounded(1);
    (DiskLight(tx), rx)
}

struct Pin {
    path: PathBuf,
    file: Option<File>,
}

impl Pin {
    fn open(path: PathBuf, write: bool) -> Pin {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(&path);
        if let Err(e) = &file {
            log::warn!("simulated target: {}: {e}", path.display());
        }
        Pin {
            path,
            file: file.ok(),
        }
    }

    /// `1` in a button file is pressed; anything else (or no file) is not.
    fn pressed(&self) -> bool {
        let mut b = [0u8; 1];
        self.file
            .as_ref()
            .is_some_and(|f| matches!(f.read_at(&mut b, 0), Ok(1)) && b[0] == b'1')
    }

    /// Lights (`0`, active-low) or darkens (`1`) an LED.
    fn light(&self, lit: bool) {
        let value: &[u8] = if lit { b"0" } else { b"1" };
        if let Some(Err(e)) = self.file.as_ref().map(|f| f.write_at(value, 0)) {
            log::warn!("simulated target: {}: {e}", self.path.display());
        }
    }
}

/// The simulated target's power side, polling its buttons until the daemon stops.
pub async fn run(files: PanelFiles, disk: Receiver<()>, links: SimPowerLinks) {
    let SimPowerLinks {
        media,
        state,
        clock,
    } = links;
    let power = Pin::open(files.power, false);
    let reset = Pin::open(files.reset, false);
    let power_led = Pin::open(files.power_led, true);
    let hdd_led = files.hdd_led.map(|p| Pin::open(p, true));
    let mut sim = SimPower::new();
    let mut shown_leds = None;
    let mut shown_display = Some(Display::Console);
    let mut ticks = smol::Timer::interval(POLL_PERIOD);
    loop {
        ticks.next().await;
        let now = clock.now_us();
        while disk.try_recv().is_ok() {
            sim.disk_activity(now);
        }
        let before = sim.power_state();
        sim.poll(now, power.pressed(), reset.pressed());
        let after = sim.power_state();
        if after != before {
            log::info!("simulated target: {before:?} -> {after:?}");
        }
        state.set(after);
        let leds = sim.leds(now);
        if shown_leds != Some(leds) {
            power_led.light(leds.0);
            if let Some(hdd) = &hdd_led {
                hdd.light(leds.1);
            }
            shown_leds = Some(leds);
        }
        let display = sim.display(now);
        if shown_display != Some(display) {
            // A full queue: the media thread hears of it on the next tick.
            shown_display = media
                .try_send(MediaCmd::SimPower(display))
                .ok()
                .map(|()| display);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_light_reaches_the_sim() {
        let (light, rx) = disk_light();
        light.clone().blink();
        light.blink();
        assert_eq!(rx.try_recv(), Ok(()));
    }

    #[test]
    fn the_panel_files_are_laid_out_for_the_variant() {
        let dir = std::env::temp_dir().join(format!("simpower-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = PanelFiles::create(&dir, Variant::Alpha).unwrap();
        assert_eq!(files.reset, value_path(&dir, 507));
        assert_eq!(std::fs::read_to_string(&files.power_led).unwrap(), "0");
        assert_eq!(
            std::fs::read_to_string(files.hdd_led.as_ref().unwrap()).unwrap(),
            "1"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("etc/kvm/hw")).unwrap(),
            "alpha\n"
        );
        let beta = PanelFiles::create(&dir.join("b"), Variant::Beta).unwrap();
        assert!(beta.hdd_led.is_none());
        assert_eq!(beta.reset, value_path(&dir.join("b"), 505));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
