//! Tiny random models with real Hugging Face key names, written to disk in-process so that tests
//! go through the real loaders without downloading anything. Hidden size 32, 2 layers.

use crate::gguf::permute;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};
use tuna_core::{Error, Result, Rng};

/// Words of the tiny BERT vocabulary (after the five special tokens).
pub const TINY_WORDS: &[&str] = &[
    "the", "a", "good", "bad", "movie", "film", "great", "awful", "free", "win", "prize", "call",
    "now", "hi", "how", "are", "you", "see", "later", "love", "it", "hate", "this", "was", "is",
    "not", "very", "boring", "fun", "cash", "text", "stop", "!", ".", ",", "?",
];

fn random(rng: &mut Rng, shape: &[usize], scale: f64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| (rng.normal() * scale) as f32).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

fn ones(n: usize) -> Result<Tensor> {
    Ok(Tensor::ones(n, DType::F32, &Device::Cpu)?)
}

fn write_safetensors(dir: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    candle_core::safetensors::save(tensors, dir.join("model.safetensors"))?;
    Ok(())
}

fn tk<T>(r: tokenizers::Result<T>) -> Result<T> {
    r.map_err(|e| Error::Invalid(format!("tiny tokenizer: {e}")))
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Writes a tiny BERT (`flavor`: "bert" or "distilbert") with a WordPiece tokenizer into `dir`.
pub fn write_tiny_bert(dir: &Path, flavor: &str, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let (h, inter, layers, heads, max_pos) = (32, 64, 2, 4, 64);
    let mut vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .map(String::from)
        .to_vec();
    vocab.extend(TINY_WORDS.iter().map(|w| w.to_string()));
    let v = vocab.len();
    let mut rng = Rng::new(seed);
    let mut t = HashMap::new();
    let distil = flavor == "distilbert";
    let root = if distil { "distilbert." } else { "" };
    let mut put = |name: String, x: Tensor| {
        t.insert(format!("{root}{name}"), x);
    };
    put(
        "embeddings.word_embeddings.weight".into(),
        random(&mut rng, &[v, h], 0.5)?,
    );
    put(
        "embeddings.position_embeddings.weight".into(),
        random(&mut rng, &[max_pos, h], 0.1)?,
    );
    if !distil {
        put(
            "embeddings.token_type_embeddings.weight".into(),
            random(&mut rng, &[2, h], 0.1)?,
        );
    }
    put("embeddings.LayerNorm.weight".into(), ones(h)?);
    put(
        "embeddings.LayerNorm.bias".into(),
        random(&mut rng, &[h], 0.05)?,
    );
    let names: [(&str, usize, usize); 6] = if distil {
        [
            ("attention.q_lin", h, h),
            ("attention.k_lin", h, h),
            ("attention.v_lin", h, h),
            ("attention.out_lin", h, h),
            ("ffn.lin1", h, inter),
            ("ffn.lin2", inter, h),
        ]
    } else {
        [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", h, inter),
            ("output.dense", inter, h),
        ]
    };
    let norms = if distil {
        ["sa_layer_norm", "output_layer_norm"]
    } else {
        ["attention.output.LayerNorm", "output.LayerNorm"]
    };
    let layer_root = if distil {
        "transformer.layer"
    } else {
        "encoder.layer"
    };
    for l in 0..layers {
        for (n, i, o) in names {
            put(
                format!("{layer_root}.{l}.{n}.weight"),
                random(&mut rng, &[o, i], 0.2)?,
            );
            put(
                format!("{layer_root}.{l}.{n}.bias"),
                random(&mut rng, &[o], 0.02)?,
            );
        }
        for n in norms {
            put(format!("{layer_root}.{l}.{n}.weight"), ones(h)?);
            put(
                format!("{layer_root}.{l}.{n}.bias"),
                random(&mut rng, &[h], 0.02)?,
            );
        }
    }
    write_safetensors(dir, &t)?;
    let config = if distil {
        serde_json::json!({"model_type": "distilbert", "vocab_size": v, "dim": h, "n_layers": layers,
            "n_heads": heads, "hidden_dim": inter, "activation": "gelu", "max_position_embeddings": max_pos})
    } else {
        serde_json::json!({"model_type": "bert", "vocab_size": v, "hidden_size": h, "num_hidden_layers": layers,
            "num_attention_heads": heads, "intermediate_size": inter, "hidden_act": "gelu",
            "max_position_embeddings": max_pos, "type_vocab_size": 2, "layer_norm_eps": 1e-12})
    };
    write_text(&dir.join("config.json"), &config.to_string())?;
    let wp_vocab: tokenizers::models::bpe::Vocab = vocab
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), i as u32))
        .collect();
    let wp = WordPiece::builder()
        .vocab(wp_vocab)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| Error::Invalid(format!("tiny tokenizer: {e}")))?;
    let mut tok = Tokenizer::new(wp);
    tk(tok.with_normalizer(Some(BertNormalizer::new(true, true, None, true))))?;
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    let post = TemplateProcessing::builder()
        .try_single("[CLS] $A [SEP]")
        .and_then(|b| b.try_pair("[CLS] $A [SEP] $B:1 [SEP]:1"))
        .map_err(|e| Error::Invalid(format!("tiny tokenizer: {e}")))?
        .special_tokens(vec![("[CLS]", 2), ("[SEP]", 3)])
        .build()
        .map_err(|e| Error::Invalid(format!("tiny tokenizer: {e}")))?;
    tok.with_post_processor(Some(post));
    tk(tok.add_special_tokens(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map(|s| AddedToken::from(s, true)),
    ))?;
    tok.save(dir.join("tokenizer.json"), false)
        .map_err(|e| Error::Invalid(format!("tiny tokenizer: {e}")))?;
    Ok(())
}

/// Tiny Llama shape: (hidden, intermediate, layers, heads, kv heads).
const LLAMA: (usize, usize, usize, usize, usize) = (32, 64, 2, 4, 2);
/// Special tokens of the tiny byte-level vocabulary, ids 0, 1, 2 (as SmolLM2).
pub const TINY_SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const TINY_MERGES: [(&str, &str); 4] = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n")];

/// The tiny byte-level BPE vocabulary: specials, the 256 byte symbols, then merge results.
fn tiny_bpe_vocab() -> Vec<String> {
    let mut bytes: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    bytes.sort();
    let mut v: Vec<String> = TINY_SPECIALS.iter().map(|s| s.to_string()).collect();
    v.extend(bytes.into_iter().map(String::from));
    v.extend(TINY_MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    v
}

/// Random weights of a tiny Llama, under Hugging Face names.
fn tiny_llama_tensors(vocab: usize, seed: u64) -> Result<HashMap<String, Tensor>> {
    let (h, inter, layers, heads, kv) = LLAMA;
    let d = h / heads;
    let mut rng = Rng::new(seed);
    let mut t = HashMap::new();
    t.insert(
        "model.embed_tokens.weight".into(),
        random(&mut rng, &[vocab, h], 0.5)?,
    );
    t.insert(
        "model.norm.weight".into(),
        (ones(h)? + random(&mut rng, &[h], 0.1)?)?,
    );
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for (n, o, i) in [
            ("self_attn.q_proj", heads * d, h),
            ("self_attn.k_proj", kv * d, h),
            ("self_attn.v_proj", kv * d, h),
            ("self_attn.o_proj", h, heads * d),
            ("mlp.gate_proj", inter, h),
            ("mlp.up_proj", inter, h),
            ("mlp.down_proj", h, inter),
        ] {
            t.insert(format!("{p}.{n}.weight"), random(&mut rng, &[o, i], 0.2)?);
        }
        for n in ["input_layernorm", "post_attention_layernorm"] {
            t.insert(
                format!("{p}.{n}.weight"),
                (ones(h)? + random(&mut rng, &[h], 0.1)?)?,
            );
        }
    }
    Ok(t)
}

/// Writes a tiny Llama as a Hugging Face directory (config, safetensors, byte-level BPE tokenizer).
pub fn write_tiny_llama(dir: &Path, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let vocab = tiny_bpe_vocab();
    write_safetensors(dir, &tiny_llama_tensors(vocab.len(), seed)?)?;
    let (h, inter, layers, heads, kv) = LLAMA;
    let config = serde_json::json!({"model_type": "llama", "vocab_size": vocab.len(), "hidden_size": h,
        "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": true, "hidden_act": "silu",
        "bos_token_id": 1, "eos_token_id": 2});
    write_text(&dir.join("config.json"), &config.to_string())?;
    let map: tokenizers::models::bpe::Vocab = vocab
        .iter()
        .enumerate()
        .map(|(i, w)| (w.clone(), i as u32))
        .collect();
    let merges = TINY_MERGES
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(map, merges)
        .build()
        .map_err(|e| Error::Invalid(format!("tiny tokenizer: {e}")))?;
    let mut tok = Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    tk(tok.add_special_tokens(TINY_SPECIALS.map(|s| AddedToken::from(s, true))))?;
    tok.save(dir.join("tokenizer.json"), false)
        .map_err(|e| Error::Invalid(format!("tiny tokenizer: {e}")))?;
    Ok(())
}

/// Writes the same tiny Llama as [`write_tiny_llama`] with `seed` as a GGUF file, the way
/// llama.cpp's converter does: GGUF names, permuted Q/K rows, vocabulary in the metadata.
/// `dtype` is the storage type of the 2-D weights (F32, Q8_0, Q4_1, ...).
pub fn write_tiny_llama_gguf(path: &Path, seed: u64, dtype: GgmlDType) -> Result<()> {
    write_tiny_llama_gguf_with(path, seed, dtype, &[])
}

/// [`write_tiny_llama_gguf`] with some metadata values replaced or added (`overrides`), e.g. a
/// head count that does not fit the weights, for tests of the loader's checks.
pub fn write_tiny_llama_gguf_with(
    path: &Path,
    seed: u64,
    dtype: GgmlDType,
    overrides: &[(&str, Value)],
) -> Result<()> {
    let vocab = tiny_bpe_vocab();
    let tensors = tiny_llama_tensors(vocab.len(), seed)?;
    let (h, inter, layers, heads, kv) = LLAMA;
    let mut q: Vec<(String, QTensor)> = Vec::new();
    for (name, t) in &tensors {
        let gguf_name = gguf_name_of(name);
        let mut t = t.clone();
        if name.contains("q_proj") {
            t = permute(&t, heads)?;
        } else if name.contains("k_proj") {
            t = permute(&t, kv)?;
        }
        let ty = if t.rank() == 2 { dtype } else { GgmlDType::F32 };
        q.push((gguf_name, QTensor::quantize(&t, ty)?));
    }
    q.sort_by(|a, b| a.0.cmp(&b.0));
    let s = |x: &str| Value::String(x.to_string());
    let u = |x: usize| Value::U32(x as u32);
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", s("llama")),
        ("llama.embedding_length", u(h)),
        ("llama.feed_forward_length", u(inter)),
        ("llama.block_count", u(layers)),
        ("llama.attention.head_count", u(heads)),
        ("llama.attention.head_count_kv", u(kv)),
        ("llama.context_length", u(128)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("tokenizer.ggml.model", s("gpt2")),
        ("tokenizer.ggml.pre", s("gpt2")),
        ("tokenizer.ggml.tokens", Value::Array(vocab.iter().map(|t| s(t)).collect())),
        ("tokenizer.ggml.token_type", Value::Array((0..vocab.len()).map(|i| Value::I32(if i < 3 { 3 } else { 1 })).collect())),
        ("tokenizer.ggml.merges", Value::Array(TINY_MERGES.iter().map(|(a, b)| s(&format!("{a} {b}"))).collect())),
        ("tokenizer.ggml.bos_token_id", u(1)),
        ("tokenizer.ggml.eos_token_id", u(2)),
        ("tokenizer.chat_template", s("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")),
    ];
    let mut meta: Vec<(&str, Value)> = meta
        .into_iter()
        .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
        .collect();
    meta.extend(overrides.iter().map(|(k, v)| (*k, v.clone())));
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = q.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    gguf_file::write(&mut f, &meta_refs, &tensor_refs)?;
    Ok(())
}

/// Hugging Face key -> GGUF name, for the tiny model's keys (all of which have one).
fn gguf_name_of(hf: &str) -> String {
    crate::gguf::gguf_key(hf).expect("every tiny Llama key has a GGUF name")
}

/// How many of `m`'s linear layers hold their weight in a stored type (kept quantised or in
/// half precision), and how many linear layers it has.
pub fn stored_linears(m: &mut crate::Model) -> Result<(usize, usize)> {
    let mut n = (0, 0);
    m.network.linears(&mut |_, l| {
        n.0 += l.weight().is_quantised() as usize;
        n.1 += 1;
        Ok(())
    })?;
    Ok(n)
}

/// The largest difference between `a` and `b`, over the largest magnitude in `a`.
pub fn relative_max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    let scale: f32 = a.abs()?.max_all()?.to_scalar()?;
    let d: f32 = (a - b)?.abs()?.max_all()?.to_scalar()?;
    Ok(d / scale)
}
