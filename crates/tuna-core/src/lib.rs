//! Errors, devices, seeded randomness and small file utilities shared by every tuna crate.

pub mod contain;
#[cfg(feature = "candle")]
pub mod device;
pub mod error;
pub mod float_json;
pub mod fsutil;
pub mod memory_cap;
pub mod rng;
pub mod threads;

pub use contain::contain;
#[cfg(feature = "candle")]
pub use device::{pick_device, CudaUnavailable};
pub use error::{Error, Result};
pub use rng::Rng;
