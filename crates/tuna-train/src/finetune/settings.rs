//! Everything that defines a finetuning run: the method (from `tuna-adapt`), the head and the
//! optimisation. Run directories written before the methods had one home stored the method and
//! the head as one flat object; those still load.

use super::config::TrainConfig;
use super::head::HeadConfig;
use serde::{Deserialize, Serialize};
use tuna_adapt::legacy::LegacyMethod;
use tuna_adapt::Method;

/// The settings of a finetuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SettingsFile")]
pub struct FinetuneConfig {
    pub method: Method,
    pub head: HeadConfig,
    pub train: TrainConfig,
}

/// What a `finetune` object in a run's config holds, now or in the earlier layout.
#[derive(Deserialize)]
#[serde(untagged)]
enum SettingsFile {
    Current {
        method: Method,
        head: HeadConfig,
        train: TrainConfig,
    },
    Flat {
        method: LegacyMethod,
        train: TrainConfig,
    },
}

impl TryFrom<SettingsFile> for FinetuneConfig {
    type Error = String;

    fn try_from(f: SettingsFile) -> Result<Self, String> {
        Ok(match f {
            SettingsFile::Current {
                method,
                head,
                train,
            } => FinetuneConfig {
                method,
                head,
                train,
            },
            SettingsFile::Flat { method: m, train } => FinetuneConfig {
                method: m.method()?,
                head: HeadConfig {
                    pooling: serde_json::from_value(m.pooling.clone())
                        .map_err(|e| e.to_string())?,
                    hidden: m.head_hidden,
                    dropout: m.head_dropout,
                },
                train,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_flat_layout_and_round_trips_the_current_one() {
        let flat = r#"{"method":{"kind":"lora","unfreeze_last":0,
            "lora":{"r":8,"alpha":16.0,"dropout":0.1,"targets":[],"target_regex":null},
            "adapter_size":64,"virtual_tokens":20,"prefix_hidden":512,"prompt_init":null,
            "pooling":"mean","head_hidden":0,"head_dropout":0.1},
            "train":{"epochs":2,"batch_size":8,"grad_accum":1,"lr":0.01,"weight_decay":0.01,
            "warmup":0.1,"schedule":"linear","clip":1.0,"max_len":128,"seed":42,"patience":0,
            "checkpoint_every":200,"max_steps":0}}"#;
        let cfg: FinetuneConfig = serde_json::from_str(flat).unwrap();
        assert!(matches!(&cfg.method, Method::Lora(l) if l.r == 8 && l.alpha == 16.0));
        assert_eq!(cfg.head.pooling, tuna_nn::Pooling::Mean);
        let again: FinetuneConfig =
            serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(again, cfg);
        let bad = flat.replace("\"kind\":\"lora\"", "\"kind\":\"nope\"");
        assert!(serde_json::from_str::<FinetuneConfig>(&bad).is_err());
    }
}
