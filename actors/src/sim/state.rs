//! `GET /api/sim/state`: what the simulated target is doing, for tests and for curious
//! people — the state the daemon cannot know from its side of the cable.

use serde::Serialize;

use super::power::PowerState;
use crate::watch::WatchReceiver;

#[derive(Debug, Clone, Serialize)]
pub struct SimState {
    pub power: PowerState,
}

impl SimState {
    pub fn to_json(&self) -> String {
        // Plain enums and structs: serialising them cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Where the web actor reads the sim's state from.
pub struct SimStateFeed {
    power: WatchReceiver<PowerState>,
}

impl SimStateFeed {
    pub fn new(power: WatchReceiver<PowerState>) -> Self {
        Self { power }
    }

    pub fn snapshot(&self) -> SimState {
        SimState {
            power: self.power.clone().current(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_states_are_snake_case() {
        let (tx, rx) = crate::watch::watch(PowerState::On);
        let feed = SimStateFeed::new(rx);
        assert_eq!(feed.snapshot().to_json(), r#"{"power":"on"}"#);
        tx.set(PowerState::ShuttingDown);
        assert_eq!(feed.snapshot().to_json(), r#"{"power":"shutting_down"}"#);
    }
}
