//! Seconds per training step of a causal LM with LoRA (r 8, alpha 16, dropout 0.1 on q_proj and
//! v_proj), the tuna side of `bench/lm_step.sh`:
//! - `sft`: BATCH sequences of LEN random token ids, the first quarter the prompt, the loss the
//!   mean negative log-likelihood of the other tokens;
//! - `dpo`: BATCH pairs of such sequences (a shared prompt, two responses), the DPO loss (beta 0.1)
//!   against reference log-probabilities scored once before timing.
//!
//! A step is forward and backward (in pieces of MICRO sequences or pairs, as the CLI's
//! `--micro-batch`; 0: the whole batch), clipping and AdamW, through the optimiser the stages
//! use. Prints one JSON line with the median of STEPS timed steps (after WARMUP, default 2)
//! and the peak resident memory.
//!
//! The GGUF's weights are decoded to f32 at load, as the PyTorch side holds them; with
//! `TUNA_DTYPE=stored` they stay in the file's type (the CLI's default).
//!
//! `cargo run --release -p tuna-rlhf --example lm_step_time -- MODEL sft|dpo [BATCH] [LEN] [STEPS] [MICRO] [WARMUP]`

use candle_core::{Device, Tensor};
use std::time::Instant;
use tuna_adapt::{MethodArgs, MethodName};
use tuna_core::Rng;
use tuna_models::load_model;
use tuna_nn::dropout::TrainScope;
use tuna_rlhf::logprobs::{neg_log_sigmoid, response_logprobs};
use tuna_rlhf::optim::trainable;
use tuna_rlhf::sft::language_model;
use tuna_rlhf::Seq;
use tuna_train::finetune::{TaskModel, TrainConfig};
use tuna_train::optimize::Optimizer;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A random sequence of `len` ids starting with `prompt`.
fn seq(rng: &mut Rng, prompt: &[u32], len: usize) -> Seq {
    let mut ids = prompt.to_vec();
    ids.extend((prompt.len()..len).map(|_| 100 + rng.below(40_000) as u32));
    Seq {
        ids,
        prompt_len: prompt.len(),
    }
}

/// Summed response log-probability of each of `seqs`.
fn sums(tm: &TaskModel, seqs: &[&Seq]) -> Res<Tensor> {
    Ok(response_logprobs(tm, seqs, false)?.sequence_logp()?)
}

/// Forward and backward of one piece; returns its loss.
fn piece_loss(tm: &TaskModel, dpo: bool, piece: &[(Seq, Seq, f32, f32)]) -> Res<Tensor> {
    if !dpo {
        let seqs: Vec<&Seq> = piece.iter().map(|p| &p.0).collect();
        let s = response_logprobs(tm, &seqs, false)?;
        let n: usize = s.counts.iter().sum();
        return Ok((s.logp.sum_all()?.neg()? / n as f64)?);
    }
    let mut seqs: Vec<&Seq> = piece.iter().map(|p| &p.0).collect();
    seqs.extend(piece.iter().map(|p| &p.1));
    let s = sums(tm, &seqs)?;
    let b = piece.len();
    let refs: Vec<f32> = piece.iter().map(|p| p.2 - p.3).collect();
    let refs = Tensor::new(refs.as_slice(), &Device::Cpu)?;
    let margin = ((s.narrow(0, 0, b)? - s.narrow(0, b, b)?)? - refs)?;
    Ok(neg_log_sigmoid(&(margin * 0.1)?)?.mean_all()?)
}

fn main() -> Res<()> {
    tuna_train::alloc::keep_freed_memory(); // as the `tuna` binary does
    tuna_core::threads::one_pool(); // as the `tuna` binary does
                                    // f32 weights, as the PyTorch side has, unless TUNA_DTYPE=stored (the CLI's default).
    let stored = std::env::var("TUNA_DTYPE").is_ok_and(|v| v == "stored");
    tuna_models::registry::set_stored_as_f32(!stored);
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: lm_step_time MODEL sft|dpo [BATCH] [LEN] [STEPS] [MICRO] [WARMUP]";
    let dpo = match args.get(2).map(String::as_str) {
        Some("sft") => false,
        Some("dpo") => true,
        _ => return Err(usage.into()),
    };
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (batch, len, steps, micro, warmup) =
        (num(3, 8), num(4, 256), num(5, 5), num(6, 0), num(7, 2));
    let model = load_model(
        std::path::Path::new(args.get(1).ok_or(usage)?),
        &Device::Cpu,
    )?;
    let method = MethodArgs::defaults().method(MethodName::Lora);
    let mut tm = language_model(model, &method, 42)?;
    let names = trainable(&mut tm, false)?;
    let cfg = TrainConfig {
        lr: 1e-4,
        warmup: 0.0,
        ..TrainConfig::default()
    };
    let mut opt = Optimizer::for_names(&mut tm, &names, cfg, warmup + steps)?;
    let mut rng = Rng::new(7);
    let mut items = vec![];
    for _ in 0..batch {
        let prompt: Vec<u32> = (0..len / 4)
            .map(|_| 100 + rng.below(40_000) as u32)
            .collect();
        let (c, r) = (seq(&mut rng, &prompt, len), seq(&mut rng, &prompt, len));
        items.push((c, r, 0.0, 0.0));
    }
    if dpo {
        opt.install(&mut tm, false)?;
        for it in items.iter_mut() {
            let s = sums(&tm, &[&it.0, &it.1])?.to_vec1::<f32>()?;
            (it.2, it.3) = (s[0], s[1]);
        }
    }
    let size = if micro == 0 { batch } else { micro };
    let mut times = vec![];
    for step in 0..warmup + steps {
        let t0 = Instant::now();
        opt.install(&mut tm, true)?;
        let _scope = TrainScope::new(step as u64);
        for piece in items.chunks(size) {
            let loss = piece_loss(&tm, dpo, piece)?;
            opt.backward(&loss, piece.len() as f64 / batch as f64)?;
        }
        opt.step()?;
        if step >= warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "stage": if dpo { "dpo" } else { "sft" }, "median_step_s": times[times.len() / 2],
            "steps": steps, "batch": batch, "len": len, "micro_batch": micro,
            "trainable_params": opt.count(),
            "threads": std::env::var("RAYON_NUM_THREADS").ok(),
            "peak_rss_mib": tuna_train::finetune::peak_rss_bytes() / (1 << 20),
        })
    );
    Ok(())
}
