//! The simulated target computer: what stands on the other end of the cable when no NanoKVM
//! hardware is there. Its screen is captured like an HDMI input.

pub mod root;
pub mod screen;
pub mod stamp;
