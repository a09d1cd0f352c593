//! Writes a Llama-shaped GGUF model with seeded random weights, for benchmarks at sizes no
//! checkpoint on this machine has: the vocabulary and tokenizer metadata (and every other key)
//! are copied from a real GGUF (`VOCAB_FROM`), the hyperparameters replaced by a named shape's,
//! the blocks' linear weights stored as Q4_1 (SmolLM2's own Q4 type; every width below is a
//! whole number of its 32-value blocks, not of Q4_K's 256), norms F32, and the embedding (tied,
//! as in all four) Q8_0. Weights are uniform with standard deviation 0.02, norms 1.
//!
//! `cargo run --release -p tuna-models --example random_llama_gguf -- VOCAB_FROM.gguf SHAPE OUT.gguf [SEED]`
//!
//! SHAPE: `135m` (SmolLM2-135M: hidden 576, 30 layers, FFN 1536, 9 heads / 3 KV), `360m`
//! (SmolLM2-360M: 960, 32, 2560, 15/5), `1b` (Llama-3.2-1B-like: 2048, 16, 8192, 32/8) or
//! `1.7b` (SmolLM2-1.7B: 2048, 24, 8192, 32/32).

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::Path;
use tuna_models::gguf_write::{read_metadata, write_gguf_file};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// (hidden, layers, FFN, heads, KV heads) of a named shape.
fn shape(name: &str) -> Res<(usize, usize, usize, usize, usize)> {
    Ok(match name {
        "135m" => (576, 30, 1536, 9, 3),
        "360m" => (960, 32, 2560, 15, 5),
        "1b" => (2048, 16, 8192, 32, 8),
        "1.7b" => (2048, 24, 8192, 32, 32),
        other => return Err(format!("unknown shape `{other}` (135m, 360m, 1b, 1.7b)").into()),
    })
}

/// A (rows, cols) tensor of uniform values with standard deviation `std` (xorshift64*, seeded),
/// or all ones when `std` is 0, stored as `ty`.
fn random(seed: u64, dims: &[usize], std: f32, ty: GgmlDType) -> Res<QTensor> {
    let n: usize = dims.iter().product();
    let half = std * 3f32.sqrt();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            if std == 0.0 {
                return 1.0;
            }
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let u = (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32;
            (2.0 * u - 1.0) * half
        })
        .collect();
    let t = Tensor::from_vec(v, dims, &Device::Cpu)?;
    Ok(QTensor::quantize(&t, ty)?)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: random_llama_gguf VOCAB_FROM.gguf SHAPE OUT.gguf [SEED]";
    let (from, name, out) = match &args[1..] {
        [a, b, c, ..] => (Path::new(a), b.as_str(), Path::new(c)),
        _ => return Err(usage.into()),
    };
    let seed: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
    let (h, layers, ffn, heads, kv) = shape(name)?;
    let mut meta = read_metadata(from)?;
    let vocab = meta["tokenizer.ggml.tokens"].to_vec()?.len();
    for (k, v) in [
        ("llama.embedding_length", h),
        ("llama.block_count", layers),
        ("llama.feed_forward_length", ffn),
        ("llama.attention.head_count", heads),
        ("llama.attention.head_count_kv", kv),
        ("llama.rope.dimension_count", h / heads),
        ("llama.vocab_size", vocab),
    ] {
        meta.insert(k.into(), Value::U32(v as u32));
    }
    meta.insert(
        "general.name".into(),
        Value::String(format!("random {name}")),
    );
    meta.insert("general.file_type".into(), Value::U32(3)); // mostly Q4_1
    meta.remove("general.size_label");
    let mut meta: Vec<(String, Value)> = meta.into_iter().collect();
    meta.sort_by(|a, b| a.0.cmp(&b.0));
    let d = h / heads;
    let mut tensors = vec![
        (
            "token_embd.weight".to_string(),
            random(seed, &[vocab, h], 0.02, GgmlDType::Q8_0)?,
        ),
        (
            "output_norm.weight".to_string(),
            random(0, &[h], 0.0, GgmlDType::F32)?,
        ),
    ];
    for l in 0..layers {
        for (i, (part, rows, cols)) in [
            ("attn_q", heads * d, h),
            ("attn_k", kv * d, h),
            ("attn_v", kv * d, h),
            ("attn_output", h, heads * d),
            ("ffn_gate", ffn, h),
            ("ffn_up", ffn, h),
            ("ffn_down", h, ffn),
        ]
        .into_iter()
        .enumerate()
        {
            let s = seed ^ (((l as u64) << 8) | (i as u64 + 1));
            let q = random(s, &[rows, cols], 0.02, GgmlDType::Q4_1)?;
            tensors.push((format!("blk.{l}.{part}.weight"), q));
        }
        for part in ["attn_norm", "ffn_norm"] {
            let q = random(0, &[h], 0.0, GgmlDType::F32)?;
            tensors.push((format!("blk.{l}.{part}.weight"), q));
        }
    }
    write_gguf_file(out, &meta, &tensors)?;
    let params: usize = tensors.iter().map(|(_, t)| t.shape().elem_count()).sum();
    println!(
        "{}",
        serde_json::json!({"shape": name, "out": out, "parameters": params, "hidden": h,
            "layers": layers, "ffn": ffn, "heads": heads, "kv_heads": kv, "vocab": vocab})
    );
    Ok(())
}
