//! Adaptation methods for tuna, one folder each, in the shape of PEFT's `tuners/<method>/`:
//! a folder owns its settings, how it attaches to a network, which tensors it trains, its PEFT
//! file config both ways, its merge where one exists, its default learning rate and its
//! command-line flags. [`registry`] is the one place that lists them.
//!
//! Three mechanisms, each a seam of the model code (which never names a method):
//! - choose what trains ([`head`] with its last-N blocks, [`full`]);
//! - change a frozen weight's output through [`tuna_nn::WeightDelta`] ([`lora`], [`dora`],
//!   [`ia3`]) or a block's sublayer output through [`tuna_nn::SublayerHook`] ([`adapter`]);
//! - change the input and the attention context through [`input::InputHook`] ([`prefix`],
//!   [`prompt`]).

pub mod adapter;
pub mod dora;
pub mod full;
pub mod head;
pub mod ia3;
pub mod input;
pub mod legacy;
pub mod lora;
pub mod peft;
#[cfg(test)]
mod peft_fixture;
pub mod prefix;
pub mod prompt;
pub mod registry;
pub mod targets;

pub use input::{Input, InputHook};
pub use registry::{Method, MethodArgs, MethodName};

/// Whether a tensor of the network trains, by key name.
pub type Selector = Box<dyn Fn(&str) -> bool + Send + Sync>;
