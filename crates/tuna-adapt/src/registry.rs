//! The one list of methods: their settings as one serde-tagged enum, their names and flags on
//! the command line, and one `match` per operation that hands each method to its folder.
//! Adding a method is a folder plus one arm in each `match` here.

use crate::input::InputHook;
use crate::peft::NetShape;
use crate::{adapter, dora, full, head, ia3, lora, prefix, prompt, Selector};
use candle_core::Result;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use tuna_core::Rng;
use tuna_models::{Model, Network};

/// A method and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Method {
    /// New output layer(s) on a frozen backbone, plus the last N blocks.
    Head(head::HeadConfig),
    /// Every weight.
    Full,
    /// Low-rank updates of chosen linear layers.
    Lora(lora::LoraConfig),
    /// LoRA with a trained magnitude per output row.
    Dora(lora::LoraConfig),
    /// Learned rescaling of keys, values and the feed-forward input.
    Ia3(ia3::Ia3Config),
    /// Houlsby bottleneck adapters after attention and feed-forward.
    Adapter(adapter::AdapterConfig),
    /// Trainable key/value prefixes in every layer, reparameterised by an MLP in training.
    Prefix(prefix::PrefixConfig),
    /// Trainable virtual-token embeddings before the input.
    Prompt(prompt::PromptConfig),
}

/// A method's name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodName {
    Head,
    Full,
    Lora,
    Dora,
    Ia3,
    Adapter,
    Prefix,
    Prompt,
}

/// Every method's flags.
#[derive(Args, Clone, Debug)]
pub struct MethodArgs {
    #[command(flatten)]
    pub head: head::HeadArgs,
    #[command(flatten)]
    pub lora: lora::LoraArgs,
    #[command(flatten)]
    pub ia3: ia3::Ia3Args,
    #[command(flatten)]
    pub adapter: adapter::AdapterArgs,
    /// Virtual tokens of prefix and prompt tuning.
    #[arg(long, default_value_t = 20)]
    pub virtual_tokens: usize,
    #[command(flatten)]
    pub prefix: prefix::PrefixArgs,
    #[command(flatten)]
    pub prompt: prompt::PromptArgs,
}

/// Parses no flags at all, for [`MethodArgs::defaults`].
#[derive(clap::Parser)]
struct NoFlags {
    #[command(flatten)]
    args: MethodArgs,
}

impl MethodArgs {
    /// Every flag at its default.
    pub fn defaults() -> Self {
        use clap::Parser;
        NoFlags::parse_from(["tuna"]).args
    }

    /// The settings of `name` from the flags.
    pub fn method(&self, name: MethodName) -> Method {
        match name {
            MethodName::Head => Method::Head(head::HeadConfig {
                unfreeze_last: self.head.unfreeze_last,
            }),
            MethodName::Full => Method::Full,
            MethodName::Lora => Method::Lora(self.lora.config()),
            MethodName::Dora => Method::Dora(self.lora.config()),
            MethodName::Ia3 => Method::Ia3(self.ia3.config()),
            MethodName::Adapter => Method::Adapter(adapter::AdapterConfig {
                size: self.adapter.adapter_size,
            }),
            MethodName::Prefix => Method::Prefix(prefix::PrefixConfig {
                virtual_tokens: self.virtual_tokens,
                hidden: self.prefix.prefix_hidden,
            }),
            MethodName::Prompt => Method::Prompt(prompt::PromptConfig {
                virtual_tokens: self.virtual_tokens,
                init_text: self.prompt.prompt_init.clone(),
            }),
        }
    }
}

impl MethodName {
    /// Every method, in the order help texts list them.
    pub const ALL: [MethodName; 8] = [
        MethodName::Head,
        MethodName::Full,
        MethodName::Lora,
        MethodName::Dora,
        MethodName::Ia3,
        MethodName::Adapter,
        MethodName::Prefix,
        MethodName::Prompt,
    ];

    /// The name used on the command line and in run records.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodName::Head => "head",
            MethodName::Full => "full",
            MethodName::Lora => "lora",
            MethodName::Dora => "dora",
            MethodName::Ia3 => "ia3",
            MethodName::Adapter => "adapter",
            MethodName::Prefix => "prefix",
            MethodName::Prompt => "prompt",
        }
    }

    /// The method called `s`, if any.
    pub fn parse(s: &str) -> Option<MethodName> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The names of the methods whose runs fold into the base weights, as "`a`, `b` and `c`".
    pub fn mergeable_list() -> String {
        let defaults = MethodArgs::defaults();
        let names: Vec<String> = Self::ALL
            .into_iter()
            .filter(|&n| defaults.method(n).mergeable())
            .map(|n| format!("`{}`", n.as_str()))
            .collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => names.concat(),
        }
    }
}

impl Method {
    /// Which method this is.
    pub fn name(&self) -> MethodName {
        match self {
            Method::Head(_) => MethodName::Head,
            Method::Full => MethodName::Full,
            Method::Lora(_) => MethodName::Lora,
            Method::Dora(_) => MethodName::Dora,
            Method::Ia3(_) => MethodName::Ia3,
            Method::Adapter(_) => MethodName::Adapter,
            Method::Prefix(_) => MethodName::Prefix,
            Method::Prompt(_) => MethodName::Prompt,
        }
    }

    /// The name in reports: the method's, or `last-N` for a head with N unfrozen blocks.
    pub fn label(&self) -> String {
        match self {
            Method::Head(c) => head::label(c),
            m => m.name().as_str().into(),
        }
    }

    /// The peak learning rate when none is given.
    pub fn default_lr(&self) -> f64 {
        match self {
            Method::Head(c) if c.unfreeze_last > 0 => head::DEFAULT_LR_UNFROZEN,
            Method::Head(_) => head::DEFAULT_LR,
            Method::Full => full::DEFAULT_LR,
            Method::Lora(_) => lora::DEFAULT_LR,
            Method::Dora(_) => dora::DEFAULT_LR,
            Method::Ia3(_) => ia3::DEFAULT_LR,
            Method::Adapter(_) => adapter::DEFAULT_LR,
            Method::Prefix(_) => prefix::DEFAULT_LR,
            Method::Prompt(_) => prompt::DEFAULT_LR,
        }
    }

    /// Builds the method's fresh parts on `model` (seeded); returns its input-side part.
    pub fn attach(&self, model: &mut Model, rng: &mut Rng) -> Result<Option<Box<dyn InputHook>>> {
        Ok(match self {
            Method::Head(_) | Method::Full => None,
            Method::Lora(c) => lora::attach(c, model, rng).map(|_| None)?,
            Method::Dora(c) => dora::attach(c, model, rng).map(|_| None)?,
            Method::Ia3(c) => ia3::attach(c, model, rng).map(|_| None)?,
            Method::Adapter(c) => adapter::attach(c, model, rng).map(|_| None)?,
            Method::Prefix(c) => Some(Box::new(prefix::attach(c, model, rng)?)),
            Method::Prompt(c) => Some(Box::new(prompt::attach(c, model, rng)?)),
        })
    }

    /// Which tensors of `net` (and of the input part) the method trains, by key name.
    pub fn selector(&self, net: &Network) -> Selector {
        match self {
            Method::Head(c) => head::selector(c, net),
            Method::Full => Box::new(full::trains),
            Method::Lora(_) => Box::new(lora::trains),
            Method::Dora(_) => Box::new(dora::trains),
            Method::Ia3(_) => Box::new(ia3::trains),
            Method::Adapter(_) => Box::new(adapter::trains),
            Method::Prefix(_) => Box::new(prefix::trains),
            Method::Prompt(_) => Box::new(prompt::trains),
        }
    }

    /// Trained tensors that take no weight decay beyond the common rule (biases, norms,
    /// embeddings): scales a method owns.
    pub fn no_decay(&self, name: &str) -> bool {
        match self {
            Method::Dora(_) => dora::no_decay(name),
            Method::Ia3(_) => ia3::no_decay(name),
            _ => false,
        }
    }

    /// Blocks at the input that stay frozen and whose output can be cached, when the method
    /// trains nothing before them.
    pub fn frozen_blocks(&self, net: &Network) -> Option<usize> {
        match self {
            Method::Head(c) => Some(head::frozen_blocks(c, net)),
            _ => None,
        }
    }

    /// Whether the method's trained tensors are an adapter file (else backbone tensors).
    pub fn has_adapter(&self) -> bool {
        !matches!(self, Method::Head(_) | Method::Full)
    }

    /// Whether the method folds into the base weights for a plain checkpoint.
    pub fn mergeable(&self) -> bool {
        matches!(self, Method::Lora(_) | Method::Dora(_) | Method::Ia3(_))
    }

    /// The adapter file's config fields; `saved`: the names of the saved tensors.
    pub fn peft_config(&self, saved: &[String], shape: &NetShape) -> Option<Value> {
        Some(match self {
            Method::Head(_) | Method::Full => return None,
            Method::Lora(c) => lora::to_peft(c, saved, shape),
            Method::Dora(c) => dora::to_peft(c, saved, shape),
            Method::Ia3(c) => ia3::to_peft(c, saved, shape),
            Method::Adapter(c) => adapter::to_peft(c, saved, shape),
            Method::Prefix(c) => prefix::to_peft(c, saved, shape),
            Method::Prompt(c) => prompt::to_peft(c, saved, shape),
        })
    }

    /// The method of an adapter config (read from `path`).
    pub fn from_peft(cfg: &Value, path: &Path) -> tuna_core::Result<Method> {
        let kind = cfg.get("peft_type").and_then(Value::as_str).unwrap_or("");
        let dora = cfg.get("use_dora").and_then(Value::as_bool) == Some(true);
        Ok(match kind {
            "LORA" if dora => Method::Dora(lora::LoraConfig::from_peft(cfg, path)?),
            "LORA" => Method::Lora(lora::LoraConfig::from_peft(cfg, path)?),
            "IA3" => Method::Ia3(ia3::Ia3Config::from_peft(cfg, path)?),
            "BOTTLENECK" => Method::Adapter(adapter::from_peft(cfg, path)?),
            "PREFIX_TUNING" => Method::Prefix(prefix::from_peft(cfg, path)?),
            "PROMPT_TUNING" => Method::Prompt(prompt::from_peft(cfg, path)?),
            other => {
                return Err(tuna_core::Error::bad_file(
                    path,
                    format!("adapter type {other} is not supported"),
                ))
            }
        })
    }
}
