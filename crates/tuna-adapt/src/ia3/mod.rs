//! IA3 (infused adapter by inhibiting and amplifying inner activations): learned vectors that
//! rescale keys, values and the feed-forward input; PEFT's `IA3` adapter type, per-family
//! default targets as PEFT's, `feedforward_modules` scaled on their input.

pub mod layer;

use crate::peft::NetShape;
use crate::targets::{self, Targets};
use candle_core::Result;
use clap::Args;
use layer::Ia3Delta;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use tuna_core::Rng;
use tuna_models::{Family, Model};

/// Peak learning rate when none is given.
/// 1e-2 was best of 3e-3 / 1e-2 / 3e-2 on 2,000 SST-2 sentences with MiniLM (PEFT, 1 epoch).
pub const DEFAULT_LR: f64 = 1e-2;

/// IA3 settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ia3Config {
    /// Module names to rescale (PEFT's list rule); empty means the family's defaults.
    pub targets: Vec<String>,
    /// Those of the targets scaled on their input; empty means the family's defaults.
    pub feedforward: Vec<String>,
}

/// Command-line flags of IA3.
#[derive(Args, Clone, Debug)]
pub struct Ia3Args {
    /// IA3 target modules by name, comma-separated (default: key,value,output.dense /
    /// k_proj,v_proj,down_proj).
    #[arg(long, value_delimiter = ',')]
    pub ia3_targets: Vec<String>,
    /// The IA3 targets scaled on their input, comma-separated (default: output.dense /
    /// down_proj).
    #[arg(long, value_delimiter = ',')]
    pub ia3_feedforward: Vec<String>,
}

impl Ia3Args {
    pub fn config(&self) -> Ia3Config {
        Ia3Config {
            targets: self.ia3_targets.clone(),
            feedforward: self.ia3_feedforward.clone(),
        }
    }
}

/// PEFT's defaults: keys, values and the feed-forward output layer, the latter scaled on its
/// input. On BERT `output.dense` also matches the attention output (PEFT's suffix rule).
pub fn default_targets(family: Family) -> (Vec<String>, Vec<String>) {
    let (t, ff): (&[&str], &[&str]) = match family {
        Family::Bert => (&["key", "value", "output.dense"], &["output.dense"]),
        Family::Llama => (&["k_proj", "v_proj", "down_proj"], &["down_proj"]),
    };
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    (own(t), own(ff))
}

impl Ia3Config {
    /// Targets and feed-forward modules, the family's defaults where empty.
    fn resolved(&self, family: Family) -> (Vec<String>, Vec<String>) {
        let (t, ff) = default_targets(family);
        let pick = |v: &Vec<String>, d: Vec<String>| if v.is_empty() { d } else { v.clone() };
        (pick(&self.targets, t), pick(&self.feedforward, ff))
    }

    /// The settings of a PEFT `IA3` config.
    pub fn from_peft(cfg: &Value, path: &Path) -> tuna_core::Result<Self> {
        let (targets, regex) = targets::from_peft(cfg.get("target_modules"));
        let (feedforward, ff_regex) = targets::from_peft(cfg.get("feedforward_modules"));
        if regex.is_some() || ff_regex.is_some() {
            return Err(tuna_core::Error::bad_file(
                path,
                "IA3 modules as a regular expression are not supported: list them",
            ));
        }
        Ok(Self {
            targets,
            feedforward,
        })
    }
}

/// Attaches ones-initialised vectors to every target layer of `model`.
pub fn attach(cfg: &Ia3Config, model: &mut Model, _rng: &mut Rng) -> Result<()> {
    let dev = model.device.clone();
    let (t, ff) = cfg.resolved(model.info.family);
    Targets::new(&t, None)?.each(&mut model.network, &mut |name, lin| {
        let (i, o) = lin.dims()?;
        let feedforward = targets::matches_any(&ff, name);
        lin.delta = Some(Box::new(Ia3Delta::init(i, o, feedforward, &dev)?));
        Ok(())
    })
}

/// IA3 trains its vectors.
pub fn trains(name: &str) -> bool {
    name.ends_with(".ia3_l")
}

/// The vectors are scales: no weight decay.
pub fn no_decay(name: &str) -> bool {
    trains(name)
}

/// The adapter file's config fields.
pub fn to_peft(cfg: &Ia3Config, _saved: &[String], shape: &NetShape) -> Value {
    let (t, ff) = cfg.resolved(shape.family);
    json!({
        "peft_type": "IA3", "target_modules": t, "feedforward_modules": ff,
        "fan_in_fan_out": false, "init_ia3_weights": true, "modules_to_save": null,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn peft_adapter_gives_peft_outputs() {
        // The key vectors move this tiny model's output by about 1.5e-5 only: hold IA3 to a
        // bound below that (PEFT's values are rounded to 6 decimals).
        let d =
            crate::peft_fixture::difference("ia3", "ia3_last_hidden_state", crate::MethodName::Ia3);
        assert!(d < 3e-6, "max difference {d} from PEFT");
    }
}
