//! The simulated target's power state as `GET /api/sim/state` reports it (see `web/sim.rs`):
//! the state the daemon cannot know from its side of the cable.

use super::power::PowerState;
use crate::watch::WatchReceiver;

/// Where the web actor reads the sim's power state from.
pub struct SimStateFeed {
    power: WatchReceiver<PowerState>,
}

impl SimStateFeed {
    pub fn new(power: WatchReceiver<PowerState>) -> Self {
        Self { power }
    }

    pub fn power(&self) -> PowerState {
        self.power.clone().current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_states_are_snake_case() {
        let (tx, rx) = crate::watch::watch(PowerState::On);
        let feed = SimStateFeed::new(rx);
        let json = |f: &SimStateFeed| serde_json::to_string(&f.power()).unwrap();
        assert_eq!(json(&feed), r#""on""#);
        tx.set(PowerState::ShuttingDown);
        assert_eq!(json(&feed), r#""shutting_down""#);
    }
}
