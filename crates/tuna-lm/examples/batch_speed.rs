//! Decoding speed of a continuous batch: `ROWS` greedy sequences (16-token prompts cut from a
//! fixed paragraph at different places, end-of-sequence ignored) join a [`DecodeBatch`] and
//! decode `NEW` tokens together; the same is timed with one row. Reports the median step time
//! at each size, the prefill time per row and the throughput ratio of the two steps (what
//! batching gains before any server overhead).
//!
//! `cargo run --release -p tuna-lm --example batch_speed -- MODEL [ROWS] [NEW]`

use candle_core::Device;
use std::time::Instant;
use tuna_lm::{DecodeBatch, GenerateConfig, Generator, Sampling};
use tuna_models::load_model;

const TEXT: &str = "The history of the printing press begins in the fifteenth century, when Johannes \
Gutenberg combined movable metal type, oil-based inks and a wooden press adapted from those used to make \
wine. Within a few decades, printing shops had spread to more than two hundred cities across Europe, and \
the price of books fell so far that ordinary merchants could afford them.";

/// Seconds per step (median) and prefill seconds per row of `rows` sequences of `new` tokens.
fn run(gen: &Generator, ids: &[u32], rows: usize, new: usize) -> tuna_core::Result<(f64, f64)> {
    let cfg = GenerateConfig {
        max_new_tokens: new,
        sampling: Sampling::default(),
        stop_strings: vec![],
        stop_tokens: vec![],
    };
    let mut batch = DecodeBatch::default();
    let t0 = Instant::now();
    for r in 0..rows {
        let start = (r * 5) % (ids.len() - 16);
        batch.join(gen, r, &ids[start..start + 16], &cfg)?;
    }
    let prefill = t0.elapsed().as_secs_f64() / rows as f64;
    let mut steps = Vec::new();
    while !batch.is_empty() {
        let t = Instant::now();
        batch.step(gen)?;
        steps.push(t.elapsed().as_secs_f64());
    }
    steps.sort_by(f64::total_cmp);
    Ok((steps[steps.len() / 2], prefill))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tuna_core::threads::one_pool(); // as the `tuna` binary does
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).ok_or("usage: batch_speed MODEL [ROWS] [NEW]")?;
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (rows, new) = (num(2, 8), num(3, 32));
    let model = load_model(std::path::Path::new(path), &Device::Cpu)?;
    let gen = Generator::new(&model)?;
    let ids = model.tokenizer.encode(TEXT, usize::MAX)?;
    run(&gen, &ids, rows, 4)?; // warm-up
    let (one, one_prefill) = run(&gen, &ids, 1, new)?;
    let (many, prefill) = run(&gen, &ids, rows, new)?;
    println!(
        "{}",
        serde_json::json!({
            "rows": rows, "new_tokens": new,
            "step_ms_1": one * 1e3, "step_ms_n": many * 1e3,
            "prefill_ms_1": one_prefill * 1e3, "prefill_ms_per_row_n": prefill * 1e3,
            "decode_speedup": rows as f64 * one / many,
        })
    );
    Ok(())
}
