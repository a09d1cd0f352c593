//! Soft prompt tuning (Lester et al.): P trainable virtual-token embeddings before the input,
//! initialised from a text's tokens or from random vocabulary tokens (PEFT's `PROMPT_TUNING`).

use crate::input::{Input, InputHook};
use crate::peft::{self, NetShape};
use candle_core::{Result, Tensor};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use tuna_core::Rng;
use tuna_models::{Ctx, Model, VirtualTokens};
use tuna_nn::Visitor;

/// Peak learning rate when none is given.
pub const DEFAULT_LR: f64 = 3e-2;

/// Prompt settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptConfig {
    /// Virtual tokens.
    pub virtual_tokens: usize,
    /// Text whose tokens initialise the prompt (else random vocabulary tokens).
    pub init_text: Option<String>,
}

/// Command-line flags of prompt tuning (the number of tokens is `--virtual-tokens`).
#[derive(Args, Clone, Debug)]
pub struct PromptArgs {
    /// Initialise the soft prompt from this text's tokens (default: random vocabulary tokens).
    #[arg(long)]
    pub prompt_init: Option<String>,
}

/// The virtual-token embeddings (P, H).
pub struct SoftPrompt {
    pub table: Tensor,
}

impl InputHook for SoftPrompt {
    fn apply(&self, input: &mut Input, _ctx: &mut Ctx) -> Result<()> {
        let b = input.embeds.dim(0)?;
        let (n, h) = self.table.dims2()?;
        let dev = input.embeds.device().clone();
        let prompt = self.table.unsqueeze(0)?.broadcast_as((b, n, h))?;
        input.embeds = Tensor::cat(&[&prompt, &input.embeds], 1)?;
        let ones = Tensor::ones((b, n), input.mask.dtype(), &dev)?;
        input.mask = Tensor::cat(&[&ones, &input.mask], 1)?;
        let zeros = Tensor::zeros((b, n), input.type_ids.dtype(), &dev)?;
        input.type_ids = Tensor::cat(&[&zeros, &input.type_ids], 1)?;
        input.skip += n;
        Ok(())
    }

    fn virtual_tokens(&self) -> Result<VirtualTokens> {
        Ok(VirtualTokens::Embeds(self.table.detach()))
    }

    fn visit(&mut self, f: &mut Visitor) -> Result<()> {
        f("prompt_embeddings", &mut self.table)
    }
}

/// A fresh prompt for `model`: the embeddings of the init text's tokens (repeated to length),
/// or of random ordinary vocabulary tokens.
pub fn attach(cfg: &PromptConfig, model: &mut Model, rng: &mut Rng) -> Result<SoftPrompt> {
    let p = cfg.virtual_tokens;
    let ids: Vec<u32> = match &cfg.init_text {
        Some(text) => {
            let toks = model
                .tokenizer
                .encode_raw(text)
                .map_err(candle_core::Error::wrap)?;
            if toks.is_empty() {
                candle_core::bail!("the prompt initialisation text has no tokens");
            }
            (0..p).map(|i| toks[i % toks.len()]).collect()
        }
        // Ordinary vocabulary: skip the special tokens at the start of the vocabulary.
        None => {
            let v = model.info.vocab_size;
            let skip = (v / 10).min(1000);
            (0..p)
                .map(|_| (skip + rng.below(v - skip)) as u32)
                .collect()
        }
    };
    let ids = Tensor::new(ids.as_slice(), &model.device)?;
    let table = model.network.embed(&ids.unsqueeze(0)?)?.squeeze(0)?;
    Ok(SoftPrompt { table })
}

/// The prompt trains.
pub fn trains(name: &str) -> bool {
    name == "prompt_embeddings"
}

/// The adapter file's config fields.
pub fn to_peft(cfg: &PromptConfig, _saved: &[String], shape: &NetShape) -> Value {
    json!({
        "peft_type": "PROMPT_TUNING",
        "num_virtual_tokens": cfg.virtual_tokens,
        "token_dim": shape.hidden,
        "num_transformer_submodules": 1,
        "num_attention_heads": shape.kv_heads,
        "num_layers": shape.layers,
        "prompt_tuning_init": if cfg.init_text.is_some() { "TEXT" } else { "RANDOM" },
        "prompt_tuning_init_text": cfg.init_text,
    })
}

/// The settings of a `PROMPT_TUNING` config.
pub fn from_peft(cfg: &Value, path: &Path) -> tuna_core::Result<PromptConfig> {
    Ok(PromptConfig {
        virtual_tokens: peft::usize_field(cfg, "num_virtual_tokens", path)?,
        init_text: None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn peft_adapter_gives_peft_outputs() {
        let d = crate::peft_fixture::difference(
            "prompt",
            "prompt_last_hidden_state",
            crate::MethodName::Prompt,
        );
        assert!(d < 1e-4, "max difference {d} from PEFT");
    }
}
