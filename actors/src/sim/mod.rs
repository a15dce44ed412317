//! The simulated target computer: what stands on the other end of the cable when no NanoKVM
//! hardware is there. Its screen is captured like an HDMI input; its power supply and front
//! panel answer the GPIO lines like a PC's.

pub mod boot_screen;
mod cursor;
pub mod keyboard;
pub mod pointer;
pub mod power;
pub mod root;
pub mod screen;
pub mod stamp;
pub mod state;
pub mod target;
