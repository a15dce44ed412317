//! bindgen's output (`cargo xtask bindgen`), committed: each struct is one library's symbol
//! table, filled by dlsym when the library is opened: the required symbols in one (loading
//! fails without any of them), the optional ones in another (each field a `Result`).

// The names are the C ones.
#![allow(non_snake_case, non_camel_case_types, dead_code, clippy::all)]

mod cvi_venc;
mod kvm_vision;

pub use cvi_venc::CviVencSymbols;
pub use kvm_vision::{KvmVisionOptionalSymbols, KvmVisionSymbols};
