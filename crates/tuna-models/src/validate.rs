//! Checks of a model's configuration at load, before any weight is built: sizes above zero,
//! heads that divide the hidden size, key/value heads that divide the query heads, a vocabulary
//! that matches the embedding tensor and covers the tokenizer. A config that cannot work is
//! refused here, with the file and the field as the source spells it (`config.json`'s
//! `num_attention_heads`, DistilBERT's `n_heads`, GGUF's `llama.attention.head_count`), instead
//! of failing later inside a forward pass with a shape mismatch.

use crate::bert::{BertConfig, Flavor};
use crate::llama::LlamaConfig;
use std::path::Path;
use tuna_core::{Error, Result};

/// Where a config was read from, which decides how its fields are named in messages.
#[derive(Debug, Clone, Copy)]
pub enum ConfigSource<'a> {
    /// A Hugging Face `config.json` (BERT, Llama, Qwen2 field names).
    Json(&'a Path),
    /// DistilBERT's `config.json` (`dim`, `n_layers`, `n_heads`, `hidden_dim`).
    DistilBert(&'a Path),
    /// GGUF metadata of an architecture (`llama.embedding_length`, ...).
    Gguf { path: &'a Path, arch: &'a str },
}

impl ConfigSource<'_> {
    fn path(&self) -> &Path {
        match self {
            ConfigSource::Json(p) | ConfigSource::DistilBert(p) => p,
            ConfigSource::Gguf { path, .. } => path,
        }
    }

    /// The source's own name of a field given by its Hugging Face name.
    fn field(&self, hf: &str) -> String {
        match self {
            ConfigSource::Json(_) => hf.to_string(),
            ConfigSource::DistilBert(_) => match hf {
                "hidden_size" => "dim",
                "num_hidden_layers" => "n_layers",
                "num_attention_heads" => "n_heads",
                "intermediate_size" => "hidden_dim",
                other => other,
            }
            .to_string(),
            ConfigSource::Gguf { arch, .. } => {
                let key = match hf {
                    "vocab_size" => return "tokenizer.ggml.tokens (its length)".into(),
                    "bos_token_id" => return "tokenizer.ggml.bos_token_id".into(),
                    "eos_token_id" => return "tokenizer.ggml.eos_token_id".into(),
                    "hidden_size" => "embedding_length",
                    "intermediate_size" => "feed_forward_length",
                    "num_hidden_layers" => "block_count",
                    "num_attention_heads" => "attention.head_count",
                    "num_key_value_heads" => "attention.head_count_kv",
                    "head_dim" => "attention.key_length",
                    "max_position_embeddings" => "context_length",
                    "rms_norm_eps" => "attention.layer_norm_rms_epsilon",
                    "rope_theta" => "rope.freq_base",
                    other => other,
                };
                format!("{arch}.{key}")
            }
        }
    }
}

/// The problems found in one config; reported together.
struct Problems<'a> {
    src: ConfigSource<'a>,
    found: Vec<String>,
}

impl<'a> Problems<'a> {
    fn new(src: ConfigSource<'a>) -> Self {
        Self {
            src,
            found: Vec::new(),
        }
    }

    /// Every field (Hugging Face name and value) must be at least 1.
    fn all_positive(&mut self, fields: &[(&str, usize)]) {
        for &(hf, value) in fields {
            if value == 0 {
                let f = self.src.field(hf);
                self.found
                    .push(format!("`{f}` is 0; it must be at least 1"));
            }
        }
    }

    /// `field` must be a finite number above 0.
    fn positive_f64(&mut self, hf: &str, value: f64) {
        if !(value.is_finite() && value > 0.0) {
            let f = self.src.field(hf);
            self.found
                .push(format!("`{f}` is {value}; it must be a number above 0"));
        }
    }

    /// `part` must divide `whole` (both given by Hugging Face name and value).
    fn divides(&mut self, (part, p): (&str, usize), (whole, w): (&str, usize), why: &str) {
        if p > 0 && w % p != 0 {
            let (pf, wf) = (self.src.field(part), self.src.field(whole));
            self.found
                .push(format!("`{pf}` = {p} does not divide `{wf}` = {w} ({why})"));
        }
    }

    /// A token id field must be inside the vocabulary.
    fn token_id(&mut self, hf: &str, id: Option<u32>, vocab: usize) {
        if let Some(id) = id.filter(|&i| i as usize >= vocab && vocab > 0) {
            let (f, v) = (self.src.field(hf), self.src.field("vocab_size"));
            self.found.push(format!(
                "`{f}` = {id} is outside the vocabulary (`{v}` = {vocab})"
            ));
        }
    }

    /// The embedding tensor `name` must be (vocab, hidden), when the weights have it.
    fn embedding(&mut self, name: &str, shape: Option<Vec<usize>>, vocab: usize, hidden: usize) {
        let Some(shape) = shape else { return };
        if shape != [vocab, hidden] {
            let (v, h) = (self.src.field("vocab_size"), self.src.field("hidden_size"));
            self.found.push(format!(
                "the weights' `{name}` has shape {shape:?}, but `{v}` = {vocab} and `{h}` = \
                 {hidden} say [{vocab}, {hidden}]"
            ));
        }
    }

    /// The tokenizer's ids must all have an embedding row.
    fn tokenizer(&mut self, tokenizer_vocab: usize, vocab: usize) {
        if tokenizer_vocab > vocab {
            let v = self.src.field("vocab_size");
            self.found.push(format!(
                "the tokenizer has {tokenizer_vocab} tokens but `{v}` = {vocab}: ids from \
                 {vocab} on would have no embedding (a tokenizer of another model?)"
            ));
        }
    }

    fn finish(self) -> Result<()> {
        if self.found.is_empty() {
            return Ok(());
        }
        Err(Error::bad_file(
            self.src.path(),
            format!("unusable model config: {}", self.found.join("; ")),
        ))
    }
}

/// Checks a BERT/DistilBERT config against the shapes of its weights (`shape` looks a tensor
/// up by name) and the tokenizer's size.
pub fn check_bert(
    cfg: &BertConfig,
    src: ConfigSource,
    shape: &dyn Fn(&str) -> Option<Vec<usize>>,
    tokenizer_vocab: usize,
) -> Result<()> {
    let mut p = Problems::new(src);
    p.all_positive(&[
        ("vocab_size", cfg.vocab_size),
        ("hidden_size", cfg.hidden_size),
        ("num_hidden_layers", cfg.num_hidden_layers),
        ("num_attention_heads", cfg.num_attention_heads),
        ("intermediate_size", cfg.intermediate_size),
        ("max_position_embeddings", cfg.max_position_embeddings),
    ]);
    p.positive_f64("layer_norm_eps", cfg.layer_norm_eps);
    p.divides(
        ("num_attention_heads", cfg.num_attention_heads),
        ("hidden_size", cfg.hidden_size),
        "every head gets hidden_size / heads values",
    );
    p.token_id("pad_token_id", Some(cfg.pad_token_id), cfg.vocab_size);
    let root = match cfg.flavor {
        Flavor::Bert => "bert.",
        Flavor::DistilBert => "distilbert.",
    };
    let name = "embeddings.word_embeddings.weight";
    let (key, found) = match shape(&format!("{root}{name}")) {
        Some(s) => (format!("{root}{name}"), Some(s)),
        None => (name.to_string(), shape(name)),
    };
    p.embedding(&key, found, cfg.vocab_size, cfg.hidden_size);
    p.tokenizer(tokenizer_vocab, cfg.vocab_size);
    p.finish()
}

/// Checks a Llama/Qwen2 config (from `config.json` or GGUF metadata) against the shapes of its
/// weights under Hugging Face names and the tokenizer's size.
pub fn check_llama(
    cfg: &LlamaConfig,
    src: ConfigSource,
    shape: &dyn Fn(&str) -> Option<Vec<usize>>,
    tokenizer_vocab: usize,
) -> Result<()> {
    let mut p = Problems::new(src);
    p.all_positive(&[
        ("vocab_size", cfg.vocab_size),
        ("hidden_size", cfg.hidden_size),
        ("num_hidden_layers", cfg.num_hidden_layers),
        ("num_attention_heads", cfg.num_attention_heads),
        ("num_key_value_heads", cfg.kv_heads()),
        ("intermediate_size", cfg.intermediate_size),
        ("max_position_embeddings", cfg.max_position_embeddings),
    ]);
    p.positive_f64("rms_norm_eps", cfg.rms_norm_eps);
    p.positive_f64("rope_theta", cfg.rope_theta);
    p.divides(
        ("num_key_value_heads", cfg.kv_heads()),
        ("num_attention_heads", cfg.num_attention_heads),
        "each key/value head serves a whole group of query heads",
    );
    match cfg.head_dim {
        Some(d) => p.all_positive(&[("head_dim", d)]),
        None => p.divides(
            ("num_attention_heads", cfg.num_attention_heads),
            ("hidden_size", cfg.hidden_size),
            "every head gets hidden_size / heads values",
        ),
    }
    let d = cfg.head_dim.unwrap_or(match cfg.num_attention_heads {
        0 => 0,
        n => cfg.hidden_size / n,
    });
    if d % 2 == 1 {
        let f = p.src.field(if cfg.head_dim.is_some() {
            "head_dim"
        } else {
            "num_attention_heads"
        });
        p.found.push(format!(
            "the head size is {d} (from `{f}`), odd: rotary positions rotate pairs of values"
        ));
    }
    p.token_id("bos_token_id", cfg.bos_token_id, cfg.vocab_size);
    p.token_id("eos_token_id", cfg.eos_token_id, cfg.vocab_size);
    let embed = "model.embed_tokens.weight";
    p.embedding(embed, shape(embed), cfg.vocab_size, cfg.hidden_size);
    if !cfg.tie_word_embeddings {
        p.embedding(
            "lm_head.weight",
            shape("lm_head.weight"),
            cfg.vocab_size,
            cfg.hidden_size,
        );
    }
    p.tokenizer(tokenizer_vocab, cfg.vocab_size);
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama() -> LlamaConfig {
        serde_json::from_value(serde_json::json!({"vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2}))
        .unwrap()
    }

    #[test]
    fn every_problem_is_named_with_the_sources_field() {
        let mut c = llama();
        c.num_key_value_heads = Some(3);
        c.intermediate_size = 0;
        let none = |_: &str| None;
        let e = check_llama(
            &c,
            ConfigSource::Json(Path::new("m/config.json")),
            &none,
            10,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("m/config.json: unusable model config:"),
            "{e}"
        );
        assert!(
            e.contains("`num_key_value_heads` = 3 does not divide `num_attention_heads` = 2"),
            "{e}"
        );
        assert!(e.contains("`intermediate_size` is 0"), "{e}");
        let src = ConfigSource::Gguf {
            path: Path::new("m.gguf"),
            arch: "qwen2",
        };
        let e = check_llama(&c, src, &none, 10).unwrap_err().to_string();
        assert!(e.contains("`qwen2.attention.head_count_kv` = 3"), "{e}");
        assert!(e.contains("`qwen2.feed_forward_length` is 0"), "{e}");
    }

    #[test]
    fn a_good_config_passes_and_an_odd_head_size_does_not() {
        let none = |_: &str| None;
        let src = ConfigSource::Json(Path::new("config.json"));
        check_llama(&llama(), src, &none, 10).unwrap();
        let mut c = llama();
        c.head_dim = Some(3);
        let e = check_llama(&c, src, &none, 10).unwrap_err().to_string();
        assert!(e.contains("head size is 3 (from `head_dim`), odd"), "{e}");
        let e = check_llama(&llama(), src, &none, 11)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the tokenizer has 11 tokens but `vocab_size` = 10"),
            "{e}"
        );
    }
}
