//! The same work on the CPU and on another device, compared, then timed on that device:
//! MiniLM embeddings (cosine per text), SmolLM2 logits (largest absolute difference), the loss
//! of a LoRA and of a full training step on MiniLM before and after one AdamW update (relative
//! difference), then training-step time and greedy generation speed. Run by
//! `scripts/gpu_check.sh`; with DEVICE `cpu` it compares the CPU with itself.
//!
//! `cargo run --release --features cuda -p tuna --example device_parity -- cuda MINILM SMOLLM2`
//! (`-` in place of a model skips its checks).
//!
//! Prints one JSON line per check with `pass` where a bound applies; exits 1 if any fails.

use candle_core::{DType, Device, Tensor, D};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;
use tuna_adapt::{MethodArgs, MethodName};
use tuna_core::Rng;
use tuna_lm::{GenerateConfig, Generator, Sampling};
use tuna_models::tokenizer::pad_batch;
use tuna_models::{load_model, Model};
use tuna_nn::dropout::TrainScope;
use tuna_nn::Pooling;
use tuna_train::finetune::adamw::AdamW;
use tuna_train::finetune::params::{trainable_names, Params};
use tuna_train::finetune::{HeadConfig, TaskModel};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Texts of different lengths and topics for the embedding comparison.
const TEXTS: &[&str] = &[
    "A man is eating food.",
    "The new movie is awesome, I loved every minute of it.",
    "Free entry in 2 a wkly comp to win FA Cup final tkts 21st May 2005.",
    "The cat sits outside on the warm stone wall and watches the birds.",
    "Gutenberg combined movable metal type, oil-based inks and a wooden press.",
    "ok",
    "Scholars argue about how much the press changed the world, but few doubt that it made \
     knowledge cheaper to copy and harder to suppress, and printing shops spread to more than \
     two hundred cities across Europe within a few decades.",
    "Is it going to rain tomorrow in the north of the country?",
];

/// The paragraph generation starts from (as `gen_speed` and bench/reference).
const PARAGRAPH: &str = "The history of the printing press begins in the fifteenth century, when \
Johannes Gutenberg combined movable metal type, oil-based inks and a wooden press adapted from those \
used to make wine. Within a few decades, printing shops had spread to more than two hundred cities \
across Europe, and the price of books fell so far that ordinary merchants could afford them. Scholars \
argue about how much the press changed the world, but few doubt that it made knowledge cheaper to \
copy and harder to suppress.";

fn main() -> Res<()> {
    tuna_train::alloc::keep_freed_memory();
    tuna_core::threads::one_pool(); // as the `tuna` binary does
                                    // Warnings (an op that took the generic path, once each) go to stderr, as in `tuna`.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: device_parity DEVICE MINILM|- SMOLLM2|-   (- skips that model)";
    let (device, minilm, smol) = match &args[1..] {
        [a, b, c] => (a.as_str(), given(b), given(c)),
        _ => return Err(usage.into()),
    };
    let dev = tuna_core::pick_device(device)?;
    let mut ok = true;
    let mut report = |v: Value| {
        ok &= v["pass"].as_bool().unwrap_or(true);
        println!("{v}");
    };
    if let Some(minilm) = minilm {
        let cpu = load_model(minilm, &Device::Cpu)?;
        report(embeddings(&cpu, &load_model(minilm, &dev)?)?);
        for kind in [MethodName::Lora, MethodName::Full] {
            report(train_steps(minilm, &dev, kind)?);
        }
        for kind in [MethodName::Lora, MethodName::Full] {
            report(step_time(minilm, &dev, kind, (16, 128))?);
        }
    }
    if let Some(smol) = smol {
        let lm = load_model(smol, &dev)?;
        report(logits(&load_model(smol, &Device::Cpu)?, &lm)?);
        report(generation(&lm, 64, 128, 3)?);
    }
    if !ok {
        return Err("a check is outside its bound".into());
    }
    Ok(())
}

/// A model path, or none for `-`.
fn given(arg: &str) -> Option<&Path> {
    (arg != "-").then(|| Path::new(arg))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (n(a) * n(b))
}

/// Mean-pooled MiniLM embeddings on both devices: the smallest cosine over the texts.
fn embeddings(cpu: &Model, dev: &Model) -> Res<Value> {
    let a: Vec<Vec<f32>> = cpu.embed_texts(TEXTS, Pooling::Mean, 256)?.to_vec2()?;
    let b: Vec<Vec<f32>> = dev.embed_texts(TEXTS, Pooling::Mean, 256)?.to_vec2()?;
    let min = a
        .iter()
        .zip(&b)
        .map(|(x, y)| cosine(x, y))
        .fold(f64::INFINITY, f64::min);
    Ok(
        json!({"check": "minilm_embeddings", "texts": TEXTS.len(), "min_cosine": min,
              "bound": ">= 0.9999", "pass": min >= 0.9999}),
    )
}

/// SmolLM2 logits at every position of the paragraph's first 64 tokens on both devices.
fn logits(cpu: &Model, dev: &Model) -> Res<Value> {
    let ids = cpu.tokenizer.encode(PARAGRAPH, 64)?;
    let a = cpu.logits(&ids)?;
    let b = dev.logits(&ids)?.to_device(&Device::Cpu)?;
    let diff = (&a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let scale = a.abs()?.max_all()?.to_scalar::<f32>()?;
    let same_argmax = a.argmax(D::Minus1)?.eq(&b.argmax(D::Minus1)?)?;
    let agree = same_argmax
        .to_dtype(DType::F32)?
        .mean_all()?
        .to_scalar::<f32>()?;
    Ok(
        json!({"check": "smollm2_logits", "positions": ids.len(), "max_abs_diff": diff,
              "max_abs_logit": scale, "argmax_agreement": agree, "bound": "<= 1e-3",
              "pass": diff <= 1e-3}),
    )
}

/// The model at `path` as a classifier with `kind`, a fixed batch and its labels, on `device`.
fn setup(path: &Path, device: &Device, kind: MethodName, batch: usize, len: usize) -> Res<Step> {
    let model = load_model(path, device)?;
    let method = MethodArgs::defaults().method(kind);
    let head = HeadConfig {
        pooling: model.info.family.default_pooling(),
        hidden: 0,
        dropout: 0.1,
    };
    let mut tm = TaskModel::build(model, method, &head, 2, 42)?;
    let names = trainable_names(&mut tm)?;
    let params = Params::create(&mut tm, &names)?;
    let opt = AdamW::new(&params.list)?;
    let mut rng = Rng::new(7);
    let seqs: Vec<Vec<u32>> = (0..batch)
        .map(|_| (0..len).map(|_| 1000 + rng.below(29000) as u32).collect())
        .collect();
    let ids = pad_batch(&seqs, tm.model.tokenizer.pad_id, device)?;
    let gold: Vec<u32> = (0..batch).map(|i| (i % 2) as u32).collect();
    let gold = Tensor::new(gold.as_slice(), device)?;
    Ok(Step {
        tm,
        params,
        opt,
        ids,
        gold,
    })
}

struct Step {
    tm: TaskModel,
    params: Params,
    opt: AdamW,
    ids: tuna_models::tokenizer::Batch,
    gold: Tensor,
}

impl Step {
    /// One forward, backward, clipping and AdamW update; returns the loss before the update.
    fn run(&mut self, step: u64) -> Res<f32> {
        let _scope = TrainScope::new(step);
        let loss = candle_nn::loss::cross_entropy(&self.tm.logits(&self.ids)?, &self.gold)?;
        let g = loss.backward()?;
        let grads: Vec<Tensor> = self
            .params
            .list
            .iter()
            .map(|p| {
                g.get(&p.var)
                    .cloned()
                    .map_or_else(|| p.var.as_tensor().zeros_like(), Ok)
            })
            .collect::<candle_core::Result<_>>()?;
        self.opt
            .clipped_step(&self.params.list, &grads, 1.0, 1e-4, 0.01)?;
        let loss = loss.to_scalar::<f32>()?;
        Ok(loss)
    }
}

/// Two training steps of `kind` (dropout on) on both devices: the losses before and after the
/// first update, and their largest relative difference.
fn train_steps(path: &Path, dev: &Device, kind: MethodName) -> Res<Value> {
    let mut losses = Vec::new();
    for device in [&Device::Cpu, dev] {
        let mut s = setup(path, device, kind, 8, 64)?;
        losses.push([s.run(0)?, s.run(1)?]);
    }
    let rel = (0..2)
        .map(|i| ((losses[0][i] - losses[1][i]).abs() / losses[0][i].abs()) as f64)
        .fold(0.0, f64::max);
    Ok(
        json!({"check": format!("{}_step_loss", kind.as_str()), "cpu": losses[0],
              "device": losses[1], "max_rel_diff": rel, "bound": "<= 1e-4", "pass": rel <= 1e-4}),
    )
}

/// Median seconds per training step of `kind` at `batch` x `len` on `device`.
fn step_time(path: &Path, device: &Device, kind: MethodName, shape: (usize, usize)) -> Res<Value> {
    let ((batch, len), n) = (shape, 10);
    let mut s = setup(path, device, kind, batch, len)?;
    let mut times = Vec::new();
    for step in 0..n + 3 {
        let t0 = Instant::now();
        s.run(step as u64)?; // reading the loss waits for the device
        if step >= 3 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(
        json!({"bench": format!("{}_step", kind.as_str()), "batch": batch, "len": len,
              "steps": n, "median_step_s": times[n / 2]}),
    )
}

/// Greedy generation at batch 1: `new` tokens after `prompt` tokens of the paragraph.
fn generation(model: &Model, prompt: usize, new: usize, runs: usize) -> Res<Value> {
    let gen = Generator::new(model)?;
    let ids = model.tokenizer.encode(PARAGRAPH, usize::MAX)?;
    let prompt = &ids[..prompt.min(ids.len())];
    let cfg = GenerateConfig {
        max_new_tokens: new,
        sampling: Sampling::default(),
        stop_strings: vec![],
        stop_tokens: vec![],
    };
    gen.generate(prompt, &cfg, &mut |_| Ok(()))?; // warm-up
    let (mut totals, mut decode) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t0 = Instant::now();
        let g = gen.generate(prompt, &cfg, &mut |_| Ok(()))?;
        totals.push(t0.elapsed().as_secs_f64());
        decode.push((g.tokens.len().saturating_sub(1)) as f64 / g.decode_seconds);
    }
    totals.sort_by(f64::total_cmp);
    decode.sort_by(f64::total_cmp);
    let total = totals[runs / 2];
    Ok(
        json!({"bench": "generation", "prompt_tokens": prompt.len(), "new_tokens": new,
              "runs": runs, "median_total_s": total, "tokens_per_s": new as f64 / total,
              "decode_tokens_per_s": decode[runs / 2]}),
    )
}
