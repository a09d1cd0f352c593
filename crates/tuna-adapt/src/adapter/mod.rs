//! Houlsby bottleneck adapters: a residual bottleneck after every block's attention output and
//! feed-forward output, the identity at initialisation. PEFT has no such type; tuna writes the
//! same layout with `peft_type` `BOTTLENECK`.

pub mod layer;

use crate::peft::{self, NetShape};
use candle_core::Result;
use clap::Args;
use layer::{AdapterHook, Bottleneck};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use tuna_core::Rng;
use tuna_models::Model;
use tuna_nn::{Activation, Sublayer};

/// Peak learning rate when none is given.
pub const DEFAULT_LR: f64 = 1e-3;

/// Adapter settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    /// Bottleneck size.
    pub size: usize,
}

/// Command-line flags of the adapters.
#[derive(Args, Clone, Debug)]
pub struct AdapterArgs {
    /// Bottleneck size of the adapters.
    #[arg(long, default_value_t = 64)]
    pub adapter_size: usize,
}

/// Adds a fresh bottleneck (ReLU) after attention and feed-forward in every block.
pub fn attach(cfg: &AdapterConfig, model: &mut Model, rng: &mut Rng) -> Result<()> {
    let (h, dev) = (model.info.hidden_size, model.device.clone());
    for i in 0..model.network.num_blocks() {
        for at in [Sublayer::Attention, Sublayer::FeedForward] {
            let bottleneck = Bottleneck::init(h, cfg.size, Activation::Relu, rng, &dev)?;
            model
                .network
                .set_hook(i, at, Box::new(AdapterHook { at, bottleneck }));
        }
    }
    Ok(())
}

/// The adapters train whole.
pub fn trains(name: &str) -> bool {
    name.contains(".adapter_attn.") || name.contains(".adapter_ffn.")
}

/// The adapter file's config fields.
pub fn to_peft(cfg: &AdapterConfig, _saved: &[String], _shape: &NetShape) -> Value {
    json!({
        "peft_type": "BOTTLENECK", "adapter_size": cfg.size, "non_linearity": "relu",
        "placement": ["after attention output", "after feed-forward output"],
        "residual": true, "init": "up projection zero (identity)",
    })
}

/// The settings of a `BOTTLENECK` config.
pub fn from_peft(cfg: &Value, path: &Path) -> tuna_core::Result<AdapterConfig> {
    Ok(AdapterConfig {
        size: peft::usize_field(cfg, "adapter_size", path)?,
    })
}
