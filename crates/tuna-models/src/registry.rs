//! Loading any supported model from a path: a Hugging Face directory (BERT, DistilBERT, Llama,
//! Qwen2) or a GGUF file (Llama, Qwen2), with its tokenizer.

use crate::bert::{Bert, BertConfig, DistilBertConfig};
use crate::ctx::Ctx;
use crate::gguf::load_gguf;
use crate::half_weights::read_half_weights;
use crate::llama::{Llama, LlamaConfig};
use crate::network::Network;
use crate::tokenizer::{pad_batch, Batch, TextTokenizer};
use crate::validate::{check_bert, check_llama, ConfigSource};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tuna_core::{fsutil, Error, Result};
use tuna_nn::Pooling;

/// The architecture family of a loaded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Bidirectional encoders (BERT, MiniLM, DistilBERT).
    Bert,
    /// Causal decoders (Llama, SmolLM2, Qwen2).
    Llama,
}

impl Family {
    /// The pooling that suits the family when the user names none.
    pub fn default_pooling(self) -> Pooling {
        match self {
            Family::Bert => Pooling::Mean,
            Family::Llama => Pooling::Last,
        }
    }
}

/// Facts about a loaded model, for logs and run records.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Where it was loaded from.
    pub source: PathBuf,
    pub family: Family,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub vocab_size: usize,
    /// Longest input in tokens.
    pub max_positions: usize,
    /// Number of weights (all frozen unless a method makes some trainable).
    pub parameters: usize,
}

/// A model ready to run: network, tokenizer, facts.
pub struct Model {
    pub network: Network,
    pub tokenizer: TextTokenizer,
    pub info: ModelInfo,
    pub device: Device,
}

impl Model {
    /// Last hidden states (B, T, H) for a padded batch.
    pub fn hidden_states(&self, batch: &Batch) -> Result<Tensor> {
        let mut ctx = Ctx::with_mask(&batch.mask);
        Ok(match &self.network {
            Network::Bert(m) => m.forward(&batch.ids, Some(&batch.type_ids), &mut ctx)?,
            Network::Llama(m) => m.forward(&batch.ids, &mut ctx)?,
        })
    }

    /// The causal language model; an error naming the model for encoders.
    pub fn causal_lm(&self) -> Result<&Llama> {
        match &self.network {
            Network::Llama(l) => Ok(l),
            Network::Bert(_) => Err(Error::Invalid(format!(
                "{} is an encoder: it has no language-model head (this needs a causal LM, Llama family)",
                self.info.source.display()
            ))),
        }
    }

    /// Next-token logits (T, V) at every position of one id sequence (causal LMs only).
    pub fn logits(&self, ids: &[u32]) -> Result<Tensor> {
        let l = self.causal_lm()?;
        let ids = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let h = l.forward(&ids, &mut Ctx::default())?;
        Ok(l.logits(&h)?.squeeze(0)?)
    }

    /// Token ids of `text` with the model's special tokens, truncated to `max_len` and to the
    /// model's positions; a cut is recorded in [`crate::truncation`].
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<u32>> {
        let limit = max_len.min(self.info.max_positions);
        let (ids, cut) = self.tokenizer.encode_cut(text, limit)?;
        if cut {
            crate::truncation::record(limit);
        }
        Ok(ids)
    }

    /// Pooled embeddings (B, H) of id sequences, padded into one batch.
    pub fn embed_ids<S: AsRef<[u32]>>(&self, seqs: &[S], pooling: Pooling) -> Result<Tensor> {
        let batch = pad_batch(seqs, self.tokenizer.pad_id, &self.device)?;
        let hidden = self.hidden_states(&batch)?;
        Ok(pooling.pool(&hidden, &batch.mask)?)
    }

    /// Pooled embeddings (B, H) of `texts`, each truncated to `max_len` tokens.
    pub fn embed_texts(&self, texts: &[&str], pooling: Pooling, max_len: usize) -> Result<Tensor> {
        let seqs = texts
            .iter()
            .map(|t| self.encode(t, max_len))
            .collect::<Result<Vec<_>>>()?;
        self.embed_ids(&seqs, pooling)
    }
}

/// Loads a model from a local path: a directory with `config.json` (+ safetensors and
/// `tokenizer.json`) or a `.gguf` file.
pub fn load_model(path: &Path, device: &Device) -> Result<Model> {
    if !path.exists() {
        return Err(Error::Invalid(format!(
            "model `{}` not found: give a Hugging Face model directory or a .gguf file",
            path.display()
        )));
    }
    if path.is_file() {
        return load_gguf_model(path, device);
    }
    let config_path = path.join("config.json");
    let raw: serde_json::Value = fsutil::read_json(&config_path)?;
    let model_type = raw
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let model_type = model_type.as_str();
    let parse = |what: &str, e: serde_json::Error| {
        Error::bad_file(&config_path, format!("not a valid {what} config: {e}"))
    };
    const SUPPORTED: [&str; 5] = ["bert", "distilbert", "llama", "qwen2", "mistral"];
    if !SUPPORTED.contains(&model_type) {
        return Err(Error::bad_file(
            &config_path,
            format!(
                "model_type `{model_type}` is not supported (supported: {})",
                SUPPORTED.join(", ")
            ),
        ));
    }
    let weights = safetensors_files(path)?;
    let shapes = safetensors_shapes(&weights)?;
    let shape = |name: &str| shapes.get(name).cloned();
    // SAFETY: the files are memory-mapped read-only; tuna never writes to model files.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&weights, DType::F32, device)? };
    let mut tokenizer = TextTokenizer::from_file(&path.join("tokenizer.json"))?;
    tokenizer.apply_config(&path.join("tokenizer_config.json"))?;
    let (network, info) = match model_type {
        "bert" | "distilbert" => {
            let (cfg, src) = if model_type == "bert" {
                let c: BertConfig =
                    serde_json::from_value(raw.clone()).map_err(|e| parse("BERT", e))?;
                (c, ConfigSource::Json(&config_path))
            } else {
                let d: DistilBertConfig =
                    serde_json::from_value(raw.clone()).map_err(|e| parse("DistilBERT", e))?;
                (d.into(), ConfigSource::DistilBert(&config_path))
            };
            check_bert(&cfg, src, &shape, tokenizer.vocab_size())?;
            let info = info_of(
                path,
                Family::Bert,
                cfg.hidden_size,
                cfg.num_hidden_layers,
                cfg.vocab_size,
                cfg.max_position_embeddings,
            );
            (Network::Bert(Bert::load(&cfg, vb)?), info)
        }
        "llama" | "qwen2" | "mistral" => {
            let mut cfg: LlamaConfig =
                serde_json::from_value(raw.clone()).map_err(|e| parse("Llama", e))?;
            cfg.attention_bias |= model_type == "qwen2";
            if let Some(scaling) = raw.get("rope_scaling").filter(|v| !v.is_null()) {
                // Plain RoPE would load and run, but give wrong outputs: refuse instead.
                return Err(Error::bad_file(
                    &config_path,
                    format!("rope_scaling {scaling} is not supported yet (plain RoPE only)"),
                ));
            }
            let src = ConfigSource::Json(&config_path);
            check_llama(&cfg, src, &shape, tokenizer.vocab_size())?;
            let info = info_of(
                path,
                Family::Llama,
                cfg.hidden_size,
                cfg.num_hidden_layers,
                cfg.vocab_size,
                cfg.max_position_embeddings,
            );
            let half = match STORED_AS_F32.load(Ordering::Relaxed) {
                false => read_half_weights(&weights, device)?,
                true => None,
            };
            let network = match half {
                Some(h) => {
                    let vb = VarBuilder::from_tensors(h.tensors, DType::F32, device);
                    let mut network = Network::Llama(Llama::load(&cfg, vb)?);
                    place_quantised(&mut network, h.kept)?;
                    network
                }
                None => Network::Llama(Llama::load(&cfg, vb)?),
            };
            (network, info)
        }
        _ => unreachable!("model_type checked against SUPPORTED above"),
    };
    finish(network, tokenizer, info, path, &weights, device)
}

/// Set when stored weights are decoded to f32 at load instead of kept in their stored type.
static STORED_AS_F32: AtomicBool = AtomicBool::new(false);

/// How the decoder blocks' linear weights of models loaded from now on are held, for GGUF
/// files and for Hugging Face checkpoints stored in F16 or BF16: in their stored type
/// (`false`, the default: less memory, faster decoding; products decode the blocks on the
/// fly), or decoded to f32 at load (`true`). Methods that train the base weights decode the
/// ones they train either way.
pub fn set_stored_as_f32(f32: bool) {
    STORED_AS_F32.store(f32, Ordering::Relaxed);
}

/// Puts each quantised weight into its linear layer (or the embedding table) in place of the
/// loader's placeholder.
fn place_quantised(
    network: &mut Network,
    mut quantised: HashMap<String, Arc<tuna_nn::quant::QuantMatrix>>,
) -> Result<()> {
    network.linears(
        &mut |name, l| match quantised.remove(&format!("{name}.weight")) {
            Some(q) => l.set_quantised(q),
            None => Ok(()),
        },
    )?;
    network.vocab_weights(&mut |name, w| {
        if let Some(q) = quantised.remove(name) {
            *w = tuna_nn::Weight::Quant(q);
        }
        Ok(())
    })?;
    match quantised.keys().next() {
        Some(k) => Err(Error::Invalid(format!(
            "weight `{k}` kept in its stored type has no linear layer to hold it"
        ))),
        None => Ok(()),
    }
}

fn load_gguf_model(path: &Path, device: &Device) -> Result<Model> {
    let g = load_gguf(path, device, !STORED_AS_F32.load(Ordering::Relaxed))?;
    let c = &g.config;
    let info = info_of(
        path,
        Family::Llama,
        c.hidden_size,
        c.num_hidden_layers,
        c.vocab_size,
        c.max_position_embeddings,
    );
    let vb = VarBuilder::from_tensors(g.tensors, DType::F32, device);
    let mut network = Network::Llama(Llama::load(&g.config, vb)?);
    place_quantised(&mut network, g.quantised)?;
    finish(
        network,
        g.tokenizer,
        info,
        path,
        &[path.to_path_buf()],
        device,
    )
}

fn finish(
    network: Network,
    tokenizer: TextTokenizer,
    mut info: ModelInfo,
    path: &Path,
    files: &[PathBuf],
    device: &Device,
) -> Result<Model> {
    info.parameters = count_parameters(files)?;
    tracing::info!(path = %path.display(), family = ?info.family, params = info.parameters, "model loaded");
    Ok(Model {
        network,
        tokenizer,
        info,
        device: device.clone(),
    })
}

fn info_of(
    path: &Path,
    family: Family,
    hidden: usize,
    layers: usize,
    vocab: usize,
    max_pos: usize,
) -> ModelInfo {
    ModelInfo {
        source: path.to_path_buf(),
        family,
        hidden_size: hidden,
        num_layers: layers,
        vocab_size: vocab,
        max_positions: max_pos,
        parameters: 0,
    }
}

/// The safetensors files of a model directory (one file or shards).
fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::bad_file(
            dir,
            "no .safetensors weights in this model directory (PyTorch .bin files are not read; convert them with safetensors)",
        ));
    }
    Ok(files)
}

/// Tensor name -> shape, from the headers of safetensors files (nothing is loaded).
fn safetensors_shapes(files: &[PathBuf]) -> Result<HashMap<String, Vec<usize>>> {
    let mut shapes = HashMap::new();
    for f in files {
        // SAFETY: read-only memory map of a file tuna never writes.
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(f)? };
        for (name, view) in st.tensors() {
            shapes.insert(name, view.shape().to_vec());
        }
    }
    Ok(shapes)
}

/// Counts weights from file headers (safetensors) or tensor infos (GGUF), without loading.
fn count_parameters(files: &[PathBuf]) -> Result<usize> {
    let mut total = 0;
    for f in files {
        if f.extension().is_some_and(|x| x == "gguf") {
            let mut r = std::fs::File::open(f).map_err(|e| Error::io(f, e))?;
            let c = candle_core::quantized::gguf_file::Content::read(&mut r)?;
            total += c
                .tensor_infos
                .values()
                .map(|t| t.shape.elem_count())
                .fold(0usize, usize::saturating_add);
        } else {
            let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(f)? };
            total += st
                .tensors()
                .iter()
                .filter(|(name, _)| !name.ends_with("position_ids"))
                .map(|(_, v)| v.shape().iter().product::<usize>())
                .sum::<usize>();
        }
    }
    Ok(total)
}
