//! Prefix tuning (Li & Liang): P trainable key/value vectors that every position of every layer
//! attends to, reparameterised by an MLP in training and saved as the MLP's output table
//! (PEFT's `PREFIX_TUNING`). Real tokens take positions after the prefix, as after a cache.

pub mod encoder;

use crate::input::{Input, InputHook};
use crate::peft::{self, NetShape};
use candle_core::Result;
use clap::Args;
use encoder::{PrefixEncoder, PrefixShape};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use tuna_core::Rng;
use tuna_models::{Ctx, Model, VirtualTokens};
use tuna_nn::Visitor;

/// Peak learning rate when none is given.
pub const DEFAULT_LR: f64 = 2e-4;

/// Prefix settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixConfig {
    /// Prefix positions.
    pub virtual_tokens: usize,
    /// Hidden size of the reparameterisation MLP.
    pub hidden: usize,
}

/// Command-line flags of prefix tuning (the number of positions is `--virtual-tokens`).
#[derive(Args, Clone, Debug)]
pub struct PrefixArgs {
    /// Hidden size of prefix tuning's reparameterisation MLP.
    #[arg(long, default_value_t = 512)]
    pub prefix_hidden: usize,
}

/// The prefix of a network: encoder and table layout.
pub struct Prefix {
    pub encoder: PrefixEncoder,
    pub shape: PrefixShape,
}

impl InputHook for Prefix {
    fn apply(&self, input: &mut Input, ctx: &mut Ctx) -> Result<()> {
        let b = input.embeds.dim(0)?;
        ctx.prefix = Some(self.encoder.key_values(self.shape, b)?);
        ctx.position_offset = self.shape.tokens;
        Ok(())
    }

    fn virtual_tokens(&self) -> Result<VirtualTokens> {
        Ok(VirtualTokens::Past(self.encoder.key_values(self.shape, 1)?))
    }

    fn visit(&mut self, f: &mut Visitor) -> Result<()> {
        self.encoder.visit(f)
    }

    fn to_saved_form(&mut self) -> Result<()> {
        self.encoder.freeze_table()
    }
}

/// A fresh prefix MLP for `model`.
pub fn attach(cfg: &PrefixConfig, model: &mut Model, rng: &mut Rng) -> Result<Prefix> {
    let (kv_heads, head_dim) = model.network.kv_shape();
    let shape = PrefixShape {
        tokens: cfg.virtual_tokens,
        layers: model.network.num_blocks(),
        kv_heads,
        head_dim,
    };
    let h = model.info.hidden_size;
    let encoder = PrefixEncoder::init(shape, h, cfg.hidden, rng, &model.device)?;
    Ok(Prefix { encoder, shape })
}

/// The MLP trains (its table, once folded, is what is saved).
pub fn trains(name: &str) -> bool {
    name.starts_with("prefix_encoder.") || name == "prompt_embeddings"
}

/// The adapter file's config fields.
pub fn to_peft(cfg: &PrefixConfig, _saved: &[String], shape: &NetShape) -> Value {
    json!({
        "peft_type": "PREFIX_TUNING",
        "num_virtual_tokens": cfg.virtual_tokens,
        "token_dim": shape.kv_heads * shape.head_dim,
        "num_transformer_submodules": 1,
        "num_attention_heads": shape.kv_heads,
        "num_layers": shape.layers,
        // The reparameterisation MLP is dropped at save: the table is the adapter.
        "prefix_projection": false,
        "encoder_hidden_size": cfg.hidden,
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": null,
    })
}

/// The settings of a `PREFIX_TUNING` config.
pub fn from_peft(cfg: &Value, path: &Path) -> tuna_core::Result<PrefixConfig> {
    Ok(PrefixConfig {
        virtual_tokens: peft::usize_field(cfg, "num_virtual_tokens", path)?,
        hidden: cfg
            .get("encoder_hidden_size")
            .and_then(Value::as_u64)
            .map_or(512, |v| v as usize),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn peft_adapter_gives_peft_outputs() {
        let d = crate::peft_fixture::difference(
            "prefix",
            "prefix_last_hidden_state",
            crate::MethodName::Prefix,
        );
        assert!(d < 1e-4, "max difference {d} from PEFT");
    }
}
