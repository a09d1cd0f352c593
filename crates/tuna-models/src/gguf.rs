//! GGUF files (llama.cpp's format) for Llama-family models: the one choke point where GGUF
//! tensor names become Hugging Face keys, quantised weights become f32 (or, on the CPU, the
//! blocks' linear weights, the token embedding and the output layer stay in their stored
//! type), the Q/K rows are un-permuted, and the embedded vocabulary becomes a `tokenizers`
//! tokenizer.

use crate::llama::LlamaConfig;
use crate::tokenizer::TextTokenizer;
use crate::validate::{check_llama, ConfigSource};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};
use tuna_core::{Error, Result};
use tuna_nn::quant::{QuantMatrix, QuantType};

/// A Llama-family model read from GGUF: config, weights under HF names, tokenizer.
pub struct GgufModel {
    pub config: LlamaConfig,
    /// Every tensor under its HF name; a weight kept in `quantised` has a placeholder here of
    /// its shape that holds no memory.
    pub tensors: HashMap<String, Tensor>,
    /// The weights kept in their stored type, by HF name: the blocks' linear weights, the
    /// token embedding and a separate output layer.
    pub quantised: HashMap<String, Arc<QuantMatrix>>,
    pub tokenizer: TextTokenizer,
}

/// The weights that may stay quantised: the block linear layers' (q, k, v, o, gate, up, down),
/// the token embedding and the output layer.
fn kept_weight(gguf: &str) -> bool {
    gguf == "token_embd.weight" || gguf == "output.weight" || block_linear(gguf)
}

/// The block linear layers' weights (q, k, v, o, gate, up, down).
fn block_linear(gguf: &str) -> bool {
    let kinds = [
        ".attn_q.",
        ".attn_k.",
        ".attn_v.",
        ".attn_output.",
        ".ffn_gate.",
        ".ffn_up.",
        ".ffn_down.",
    ];
    gguf.starts_with("blk.") && gguf.ends_with(".weight") && kinds.iter().any(|k| gguf.contains(k))
}

/// The weight `name` in its stored type, read straight from the file into the matrix's own
/// buffer (candle's reader would make two copies on the way), when the kernels cover its type
/// (f32 tensors stay tensors); Q/K rows are un-permuted for `llama`. `None` also when the
/// bytes cannot be read: candle's reader then reports the damage as it does for every tensor.
fn read_stored(
    file: &mut std::fs::File,
    content: &Content,
    name: &str,
    arch: &str,
    config: &LlamaConfig,
) -> Result<Option<QuantMatrix>> {
    use std::io::{Read, Seek, SeekFrom};
    let Some(info) = content.tensor_infos.get(name) else {
        return Ok(None);
    };
    let (dtype, dims) = (info.ggml_dtype, info.shape.dims());
    let (Ok(ty), &[rows, cols]) = (QuantType::from_ggml(dtype), dims) else {
        return Ok(None);
    };
    if dtype == GgmlDType::F32 || cols % ty.block() != 0 {
        return Ok(None);
    }
    let bytes = (rows as u64) * (cols / ty.block()) as u64 * ty.block_bytes() as u64;
    let start = content.tensor_data_offset.saturating_add(info.offset);
    let size = file.seek(SeekFrom::End(0)).unwrap_or(0);
    if bytes > size.saturating_sub(start) || file.seek(SeekFrom::Start(start)).is_err() {
        return Ok(None);
    }
    let mut data = vec![0u8; bytes as usize];
    if file.read_exact(&mut data).is_err() {
        return Ok(None);
    }
    let Ok(m) = QuantMatrix::from_bytes(data, dtype, (rows, cols)) else {
        return Ok(None);
    };
    Ok(Some(if arch == "llama" && name.contains(".attn_q.") {
        m.unpermute_heads(config.num_attention_heads)?
    } else if arch == "llama" && name.contains(".attn_k.") {
        m.unpermute_heads(config.kv_heads())?
    } else {
        m
    }))
}

/// Refuses a tensor whose element count overflows: candle multiplies the dimensions with
/// wrapping, so a damaged shape could claim few elements and index far past them later.
fn check_tensor_sizes(content: &Content, path: &Path) -> Result<()> {
    for (name, info) in &content.tensor_infos {
        let dims = info.shape.dims();
        if dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .is_none()
        {
            return Err(Error::bad_file(
                path,
                format!("tensor `{name}` has an impossible shape {dims:?}"),
            ));
        }
    }
    Ok(())
}

/// Reads `path` with every tensor in f32 on `device`, or with `keep` (on the CPU) the blocks'
/// linear weights, the token embedding and the output layer in their stored type.
pub fn load_gguf(path: &Path, device: &Device, keep: bool) -> Result<GgufModel> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = Content::read(&mut file)
        .map_err(|e| Error::bad_file(path, format!("not a readable GGUF file: {e}")))?;
    check_tensor_sizes(&content, path)?;
    let meta = Meta {
        map: &content.metadata,
        path,
    };
    let arch = meta.string("general.architecture")?;
    if arch != "llama" && arch != "qwen2" {
        return Err(Error::bad_file(
            path,
            format!("GGUF architecture `{arch}` is not supported (llama, qwen2 are)"),
        ));
    }
    let tokenizer = build_tokenizer(&meta)?;
    let config = build_config(&meta, &arch, tokenizer.vocab_size(), &content)?;
    let shape = |hf: &str| {
        let name = gguf_name(hf)?;
        let info = content.tensor_infos.get(name)?;
        Some(info.shape.dims().to_vec())
    };
    let src = ConfigSource::Gguf { path, arch: &arch };
    check_llama(&config, src, &shape, tokenizer.vocab_size())?;
    let (mut tensors, mut quantised) = (HashMap::new(), HashMap::new());
    let keep = keep && device.is_cpu();
    // In name order, so a damaged file fails the same way every time.
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let hf = hf_name(name).ok_or_else(|| {
            Error::bad_file(path, format!("unexpected tensor `{name}` in a {arch} GGUF"))
        })?;
        if keep && kept_weight(name) {
            if let Some(m) = read_stored(&mut file, &content, name, &arch, &config)? {
                let shape = (m.row_count(), m.col_count());
                let none = Tensor::zeros((), candle_core::DType::F32, device)?;
                tensors.insert(hf.clone(), none.broadcast_as(shape)?);
                quantised.insert(hf, Arc::new(m));
                continue;
            }
        }
        let q = content.tensor(&mut file, name, device)?;
        let mut t = q.dequantize(device)?;
        // llama.cpp permutes Q/K rows for its interleaved rotary only for `llama` (Qwen2 is
        // stored with the half-split layout already).
        if arch == "llama" && name.contains(".attn_q.") {
            t = unpermute(&t, config.num_attention_heads)?;
        } else if arch == "llama" && name.contains(".attn_k.") {
            t = unpermute(&t, config.kv_heads())?;
        }
        tensors.insert(hf, t);
    }
    Ok(GgufModel {
        config,
        tensors,
        quantised,
        tokenizer,
    })
}

/// Hugging Face key -> GGUF tensor name, the inverse of [`hf_name`]
/// (`model.layers.3.self_attn.q_proj.weight` -> `blk.3.attn_q.weight`); `None` for keys
/// llama.cpp has no name for.
pub fn gguf_key(hf: &str) -> Option<String> {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(k, _)| *k == hf) {
        return Some(g.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    layer.parse::<usize>().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let g = match module {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        _ => return None,
    };
    Some(format!("blk.{layer}.{g}.{kind}"))
}

/// How llama.cpp lays out a Llama-family model: its architecture (which decides whether Q/K
/// rows are stored permuted) and head counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlamaCppLayout {
    /// `llama` or `qwen2`.
    pub arch: String,
    pub heads: usize,
    pub kv_heads: usize,
}

/// The layout of the model at `path` (a GGUF file's metadata, or a directory's `config.json`),
/// read without loading its weights.
pub fn llama_cpp_layout(path: &Path) -> Result<LlamaCppLayout> {
    if path.is_file() {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let content = Content::read(&mut f)
            .map_err(|e| Error::bad_file(path, format!("not a readable GGUF file: {e}")))?;
        let meta = Meta {
            map: &content.metadata,
            path,
        };
        let arch = meta.string("general.architecture")?;
        let heads = meta.usize(&format!("{arch}.attention.head_count"))?;
        let kv_key = format!("{arch}.attention.head_count_kv");
        let kv_heads = match meta.map.contains_key(&kv_key) {
            true => meta.usize(&kv_key)?,
            false => heads,
        };
        return Ok(LlamaCppLayout {
            arch,
            heads,
            kv_heads,
        });
    }
    let config = path.join("config.json");
    let raw: serde_json::Value = tuna_core::fsutil::read_json(&config)?;
    let arch = match raw.get("model_type").and_then(|v| v.as_str()) {
        Some("llama" | "mistral") => "llama",
        Some("qwen2") => "qwen2",
        other => {
            return Err(Error::bad_file(
                &config,
                format!("model_type {other:?} has no llama.cpp layout (llama, mistral, qwen2 do)"),
            ))
        }
    };
    let count = |key: &str| raw.get(key).and_then(|v| v.as_u64()).map(|v| v as usize);
    let heads = count("num_attention_heads")
        .ok_or_else(|| Error::bad_file(&config, "num_attention_heads missing"))?;
    Ok(LlamaCppLayout {
        arch: arch.into(),
        heads,
        kv_heads: count("num_key_value_heads").unwrap_or(heads),
    })
}

/// GGUF tensor name -> Hugging Face key (`blk.3.attn_q.weight` -> `model.layers.3.self_attn.q_proj.weight`).
pub fn hf_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (part, kind) = rest.rsplit_once('.')?;
    let module = match part {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{module}.{kind}"))
}

/// The GGUF names of the embedding and output tensors that config checks look at.
fn gguf_name(hf: &str) -> Option<&'static str> {
    match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    }
}

/// Undoes llama.cpp's Q/K row permutation (interleaved rotary layout -> half-split layout):
/// `w.reshape(n_head, rows/n_head/2, 2, cols).swapaxes(1, 2).reshape(rows, cols)`.
/// Biases (1-D) are permuted the same way.
pub fn unpermute(w: &Tensor, n_head: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let rows = dims[0];
    let cols = dims.get(1).copied().unwrap_or(1);
    let half = rows / n_head / 2;
    Ok(w.reshape((n_head, half, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

/// llama.cpp's permutation, the inverse of [`unpermute`] (used to write GGUF test files):
/// `w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)`.
pub fn permute(w: &Tensor, n_head: usize) -> Result<Tensor> {
    let dims = w.dims().to_vec();
    let rows = dims[0];
    let cols = dims.get(1).copied().unwrap_or(1);
    let half = rows / n_head / 2;
    Ok(w.reshape((n_head, 2, half, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

/// Typed access to GGUF metadata with errors that name the file and key.
struct Meta<'a> {
    map: &'a HashMap<String, Value>,
    path: &'a Path,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Result<&Value> {
        self.map
            .get(key)
            .ok_or_else(|| Error::bad_file(self.path, format!("GGUF metadata has no `{key}`")))
    }
    fn bad(&self, key: &str, e: candle_core::Error) -> Error {
        Error::bad_file(self.path, format!("GGUF metadata `{key}`: {e}"))
    }
    fn string(&self, key: &str) -> Result<String> {
        Ok(self
            .get(key)?
            .to_string()
            .map_err(|e| self.bad(key, e))?
            .clone())
    }
    fn usize(&self, key: &str) -> Result<usize> {
        let v = self.get(key)?;
        let n = v
            .to_u32()
            .map(u64::from)
            .or_else(|_| v.to_u64())
            .or_else(|_| v.to_i32().map(|x| x.max(0) as u64))
            .map_err(|e| self.bad(key, e))?;
        Ok(n as usize)
    }
    fn f64(&self, key: &str) -> Result<f64> {
        let v = self.get(key)?;
        v.to_f32()
            .map(f64::from)
            .or_else(|_| v.to_f64())
            .map_err(|e| self.bad(key, e))
    }
    fn opt_usize(&self, key: &str) -> Option<usize> {
        self.map
            .contains_key(key)
            .then(|| self.usize(key).ok())
            .flatten()
    }
    fn strings(&self, key: &str) -> Result<Vec<String>> {
        self.get(key)?
            .to_vec()
            .map_err(|e| self.bad(key, e))?
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| self.bad(key, e)))
            .collect()
    }
}

fn build_config(meta: &Meta, arch: &str, vocab: usize, content: &Content) -> Result<LlamaConfig> {
    let k = |s: &str| format!("{arch}.{s}");
    if let Ok(scaling) = meta.string(&k("rope.scaling.type")) {
        if scaling != "none" {
            return Err(Error::bad_file(
                meta.path,
                format!("rope scaling `{scaling}` is not supported yet (plain RoPE only)"),
            ));
        }
    }
    let n_heads = meta.usize(&k("attention.head_count"))?;
    Ok(LlamaConfig {
        vocab_size: vocab,
        hidden_size: meta.usize(&k("embedding_length"))?,
        intermediate_size: meta.usize(&k("feed_forward_length"))?,
        num_hidden_layers: meta.usize(&k("block_count"))?,
        num_attention_heads: n_heads,
        num_key_value_heads: Some(
            meta.opt_usize(&k("attention.head_count_kv"))
                .unwrap_or(n_heads),
        ),
        head_dim: meta.opt_usize(&k("attention.key_length")),
        hidden_act: tuna_nn::Activation::Silu,
        max_position_embeddings: meta.usize(&k("context_length"))?,
        rms_norm_eps: meta.f64(&k("attention.layer_norm_rms_epsilon"))?,
        rope_theta: meta.f64(&k("rope.freq_base")).unwrap_or(10000.0),
        tie_word_embeddings: !content.tensor_infos.contains_key("output.weight"),
        attention_bias: content.tensor_infos.contains_key("blk.0.attn_q.bias"),
        bos_token_id: meta
            .opt_usize("tokenizer.ggml.bos_token_id")
            .map(|x| x as u32),
        eos_token_id: meta
            .opt_usize("tokenizer.ggml.eos_token_id")
            .map(|x| x as u32),
    })
}

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

/// Builds the byte-level BPE tokenizer of a `gpt2`-type GGUF vocabulary.
fn build_tokenizer(meta: &Meta) -> Result<TextTokenizer> {
    let model = meta.string("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(Error::bad_file(
            meta.path,
            format!(
                "GGUF tokenizer model `{model}` is not supported yet (byte-level BPE `gpt2` is)"
            ),
        ));
    }
    let tokens = meta.strings("tokenizer.ggml.tokens")?;
    let merges = meta
        .strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| Error::bad_file(meta.path, format!("bad BPE merge `{m}`")))
        })
        .collect::<Result<Vec<_>>>()?;
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| Error::bad_file(meta.path, format!("cannot build BPE: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    let pre = meta.string("tokenizer.ggml.pre").unwrap_or_default();
    let pre_tok: PreTokenizerWrapper = if pre == "smollm" {
        // llama.cpp's "smollm" splits every digit before the GPT-2 pattern.
        Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
    } else {
        byte_level.into()
    };
    tok.with_pre_tokenizer(Some(pre_tok));
    tok.with_decoder(Some(ByteLevel::default()));
    let types: Vec<i32> = match meta.map.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .map_err(|e| meta.bad("tokenizer.ggml.token_type", e))?
            .iter()
            .map(|x| x.to_i32().unwrap_or(1))
            .collect(),
        None => vec![],
    };
    let specials: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, &ty)| ty == TOKEN_CONTROL || ty == TOKEN_USER_DEFINED)
        .map(|(t, _)| AddedToken::from(t.clone(), true))
        .collect();
    tok.add_special_tokens(specials)
        .map_err(|e| Error::bad_file(meta.path, format!("cannot add special tokens: {e}")))?;
    let id = |k: &str| meta.opt_usize(k).map(|x| x as u32);
    let mut out = TextTokenizer::new(
        tok,
        id("tokenizer.ggml.bos_token_id"),
        id("tokenizer.ggml.eos_token_id"),
    );
    if let Some(p) = id("tokenizer.ggml.padding_token_id") {
        out.pad_id = p;
    }
    out.add_bos = meta
        .map
        .get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    out.chat_template = meta.string("tokenizer.chat_template").ok();
    if out.chat_template.is_some() {
        out.chat_template_origin = Some(format!(
            "{} (GGUF metadata `tokenizer.chat_template`)",
            meta.path.display()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hf_keys() {
        assert_eq!(
            hf_name("blk.12.attn_q.weight").unwrap(),
            "model.layers.12.self_attn.q_proj.weight"
        );
        assert_eq!(
            hf_name("blk.0.ffn_norm.weight").unwrap(),
            "model.layers.0.post_attention_layernorm.weight"
        );
        assert_eq!(
            hf_name("token_embd.weight").unwrap(),
            "model.embed_tokens.weight"
        );
        assert!(hf_name("blk.0.weird.weight").is_none());
    }

    #[test]
    fn permute_round_trips_and_matches_llama_cpp() -> Result<()> {
        let dev = Device::Cpu;
        // 2 heads of size 4 -> 8 rows, 1 column: rows 0..8.
        let w = Tensor::arange(0f32, 8., &dev)?.reshape((8, 1))?;
        let p: Vec<f32> = permute(&w, 2)?.flatten_all()?.to_vec1()?;
        // numpy: w.reshape(2, 2, 2, 1).swapaxes(1, 2).reshape(8, 1) -> [0, 2, 1, 3, 4, 6, 5, 7]
        assert_eq!(p, vec![0., 2., 1., 3., 4., 6., 5., 7.]);
        let back: Vec<f32> = unpermute(&permute(&w, 2)?, 2)?.flatten_all()?.to_vec1()?;
        assert_eq!(back, (0..8).map(|x| x as f32).collect::<Vec<_>>());
        Ok(())
    }
}
