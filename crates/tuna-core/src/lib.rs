//! Errors, devices, seeded randomness and small file utilities shared by every tuna crate.

#[cfg(feature = "candle")]
pub mod device;
pub mod error;
pub mod float_json;
pub mod fsutil;
pub mod rng;

#[cfg(feature = "candle")]
pub use device::{pick_device, CudaUnavailable};
pub use error::{Error, Result};
pub use rng::Rng;
