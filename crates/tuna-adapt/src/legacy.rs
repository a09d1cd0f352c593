//! Method settings as run directories written before the methods had one home store them: one
//! flat object with every method's fields (`kind`, `unfreeze_last`, `lora`, `adapter_size`,
//! `virtual_tokens`, `prefix_hidden`, `prompt_init`, and the head's `pooling`, `head_hidden`,
//! `head_dropout`).

use crate::registry::Method;
use crate::{adapter, head, lora, prefix, prompt};
use serde::Deserialize;

/// The flat settings object.
#[derive(Debug, Clone, Deserialize)]
pub struct LegacyMethod {
    pub kind: String,
    #[serde(default)]
    pub unfreeze_last: usize,
    pub lora: lora::LoraConfig,
    pub adapter_size: usize,
    pub virtual_tokens: usize,
    pub prefix_hidden: usize,
    #[serde(default)]
    pub prompt_init: Option<String>,
    /// The head's settings, kept as JSON for the task to read.
    pub pooling: serde_json::Value,
    pub head_hidden: usize,
    pub head_dropout: f32,
}

impl LegacyMethod {
    /// The method it describes.
    pub fn method(&self) -> Result<Method, String> {
        Ok(match self.kind.as_str() {
            "head" => Method::Head(head::HeadConfig {
                unfreeze_last: self.unfreeze_last,
            }),
            "full" => Method::Full,
            "lora" => Method::Lora(self.lora.clone()),
            "adapter" => Method::Adapter(adapter::AdapterConfig {
                size: self.adapter_size,
            }),
            "prefix" => Method::Prefix(prefix::PrefixConfig {
                virtual_tokens: self.virtual_tokens,
                hidden: self.prefix_hidden,
            }),
            "prompt" => Method::Prompt(prompt::PromptConfig {
                virtual_tokens: self.virtual_tokens,
                init_text: self.prompt_init.clone(),
            }),
            other => return Err(format!("unknown method kind `{other}`")),
        })
    }
}
