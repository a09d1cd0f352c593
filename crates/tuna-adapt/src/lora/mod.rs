//! LoRA (Hu et al.): a trainable low-rank update `B A * alpha / r` beside chosen frozen linear
//! layers; PEFT's `LORA` adapter type.

pub mod gguf_export;
pub mod layer;

use crate::peft::{self, NetShape};
use crate::targets::{self, Targets};
use candle_core::Result;
use clap::Args;
use layer::LoraDelta;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use tuna_core::Rng;
use tuna_models::{Family, Model};

/// Peak learning rate when none is given.
pub const DEFAULT_LR: f64 = 5e-4;

/// LoRA settings (DoRA uses the same).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f32,
    /// Module names (a module matches a name equal to it or ending in `.name`), as PEFT's list
    /// form; empty means the family's defaults.
    pub targets: Vec<String>,
    /// A regular expression matched against whole module names, as PEFT's string form; used
    /// instead of `targets` when given.
    pub target_regex: Option<String>,
}

/// Command-line flags of LoRA and DoRA.
#[derive(Args, Clone, Debug)]
pub struct LoraArgs {
    /// LoRA / DoRA rank.
    #[arg(long, default_value_t = 8)]
    pub lora_r: usize,
    /// LoRA / DoRA alpha (the update is scaled by alpha / r).
    #[arg(long, default_value_t = 16.0)]
    pub lora_alpha: f64,
    /// Dropout on the update's input.
    #[arg(long, default_value_t = 0.1)]
    pub lora_dropout: f32,
    /// Target modules by name, comma-separated (default: query,value / q_proj,v_proj).
    #[arg(long, value_delimiter = ',')]
    pub lora_targets: Vec<String>,
    /// Target modules as a regular expression over full module names (instead of names).
    #[arg(long)]
    pub lora_target_regex: Option<String>,
}

impl LoraArgs {
    pub fn config(&self) -> LoraConfig {
        LoraConfig {
            r: self.lora_r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            targets: self.lora_targets.clone(),
            target_regex: self.lora_target_regex.clone(),
        }
    }
}

/// The modules LoRA adapts by default: attention's query and value projections.
pub fn default_targets(family: Family) -> Vec<String> {
    let t: &[&str] = match family {
        Family::Bert => &["query", "value"],
        Family::Llama => &["q_proj", "v_proj"],
    };
    t.iter().map(|s| s.to_string()).collect()
}

impl LoraConfig {
    /// The compiled target rule on `family`.
    pub fn targets(&self, family: Family) -> Result<Targets> {
        let names = if self.targets.is_empty() {
            default_targets(family)
        } else {
            self.targets.clone()
        };
        Targets::new(&names, self.target_regex.as_deref())
    }

    /// A fresh update on every target layer (`B` zero: the network is unchanged).
    pub fn init(
        &self,
        lin_in: usize,
        lin_out: usize,
        rng: &mut Rng,
        dev: &candle_core::Device,
    ) -> Result<LoraDelta> {
        LoraDelta::init(lin_in, lin_out, self.r, self.alpha, self.dropout, rng, dev)
    }

    /// PEFT's LoRA config fields.
    pub fn peft_fields(&self, saved: &[String]) -> Value {
        json!({
            "peft_type": "LORA", "r": self.r, "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": targets::to_peft(self.target_regex.as_deref(), saved, ".lora_A.weight"),
            "bias": "none", "fan_in_fan_out": false, "init_lora_weights": true,
            "modules_to_save": null, "use_dora": false, "use_rslora": false,
            "layers_to_transform": null, "layers_pattern": null,
        })
    }

    /// The settings of a PEFT `LORA` config.
    pub fn from_peft(cfg: &Value, path: &Path) -> tuna_core::Result<Self> {
        if cfg.get("use_rslora").and_then(Value::as_bool) == Some(true) {
            return Err(tuna_core::Error::bad_file(
                path,
                "rsLoRA adapters are not supported",
            ));
        }
        let (targets, target_regex) = targets::from_peft(cfg.get("target_modules"));
        Ok(Self {
            r: peft::usize_field(cfg, "r", path)?,
            alpha: cfg.get("lora_alpha").and_then(Value::as_f64).unwrap_or(8.0),
            dropout: cfg
                .get("lora_dropout")
                .and_then(Value::as_f64)
                .unwrap_or(0.0) as f32,
            targets,
            target_regex,
        })
    }
}

/// Attaches a fresh LoRA update to every target layer of `model`.
pub fn attach(cfg: &LoraConfig, model: &mut Model, rng: &mut Rng) -> Result<()> {
    let dev = model.device.clone();
    let targets = cfg.targets(model.info.family)?;
    targets.each(&mut model.network, &mut |_, lin| {
        let (i, o) = lin.dims()?;
        lin.delta = Some(Box::new(cfg.init(i, o, rng, &dev)?));
        Ok(())
    })
}

/// LoRA trains its `A` and `B` matrices.
pub fn trains(name: &str) -> bool {
    name.contains(".lora_A.") || name.contains(".lora_B.")
}

/// The adapter file's config fields.
pub fn to_peft(cfg: &LoraConfig, saved: &[String], _shape: &NetShape) -> Value {
    cfg.peft_fields(saved)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peft_adapter_gives_peft_outputs() {
        let d =
            crate::peft_fixture::difference("lora", "last_hidden_state", crate::MethodName::Lora);
        assert!(d < 1e-4, "max difference {d} from PEFT");
    }
}
