//! The pure HID logic: which key a browser key code is, what bytes each report holds, how
//! text is typed on the target's layout, and the report descriptors those bytes follow.

pub mod descriptor;
pub mod keymap;
pub mod layout;
pub mod report;
