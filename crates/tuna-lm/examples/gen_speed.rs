//! Generation speed at batch 1: `NEW` greedy tokens after the first `PROMPT` tokens of a fixed
//! paragraph, end-of-sequence ignored. The tuna side of `bench/generate_speed.sh` and
//! `bench/scaling.sh`; reports the process's peak resident memory too.
//!
//! `cargo run --release -p tuna-lm --example gen_speed -- MODEL [PROMPT] [NEW] [RUNS]`

use candle_core::Device;
use std::time::Instant;
use tuna_lm::{GenerateConfig, Generator, Sampling};
use tuna_models::load_model;

/// The paragraph the prompt is cut from (the same text as bench/reference/generate_speed.py).
pub const TEXT: &str = "The history of the printing press begins in the fifteenth century, when Johannes \
Gutenberg combined movable metal type, oil-based inks and a wooden press adapted from those used to make \
wine. Within a few decades, printing shops had spread to more than two hundred cities across Europe, and \
the price of books fell so far that ordinary merchants could afford them. Scholars argue about how much \
the press changed the world, but few doubt that it made knowledge cheaper to copy and harder to suppress.";

/// The process's peak resident memory (`VmHWM`) in MiB; 0 where /proc is not there.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tuna_core::threads::one_pool(); // as the `tuna` binary does
                                    // The CLI's default keeps a GGUF's weights in their stored type; TUNA_DTYPE=f32 decodes
                                    // them at load (as transformers holds them).
    let f32 = std::env::var("TUNA_DTYPE").is_ok_and(|v| v == "f32");
    tuna_models::registry::set_stored_as_f32(f32);
    let args: Vec<String> = std::env::args().collect();
    let model_path = args
        .get(1)
        .ok_or("usage: gen_speed MODEL [PROMPT] [NEW] [RUNS]")?;
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (prompt_len, new, runs) = (num(2, 64), num(3, 128), num(4, 3));
    let model = load_model(std::path::Path::new(model_path), &Device::Cpu)?;
    let gen = Generator::new(&model)?;
    let ids = model.tokenizer.encode(TEXT, usize::MAX)?;
    if ids.len() < prompt_len {
        return Err(format!("the text has only {} tokens", ids.len()).into());
    }
    let prompt = &ids[..prompt_len];
    let cfg = GenerateConfig {
        max_new_tokens: new,
        sampling: Sampling::default(),
        stop_strings: vec![],
        stop_tokens: vec![],
    };
    gen.generate(prompt, &cfg, &mut |_| Ok(()))?; // warm-up
    let mut totals = Vec::new();
    let mut decode_rates = Vec::new();
    let mut first = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let g = gen.generate(prompt, &cfg, &mut |_| Ok(()))?;
        let total = t0.elapsed().as_secs_f64();
        assert_eq!(g.tokens.len(), new);
        totals.push(total);
        decode_rates.push((new - 1) as f64 / g.decode_seconds);
        first.push(g.tokens.clone());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let total = median(&mut totals);
    println!(
        "{}",
        serde_json::json!({
            "prompt_tokens": prompt_len, "new_tokens": new, "runs": runs,
            "median_total_s": total, "tokens_per_s": new as f64 / total,
            "decode_tokens_per_s": median(&mut decode_rates), "tokens": first[0],
            "weights": if f32 { "f32" } else { "stored" }, "peak_rss_mib": peak_rss_mib(),
        })
    );
    Ok(())
}
