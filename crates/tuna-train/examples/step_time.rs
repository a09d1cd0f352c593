//! Seconds per training step (forward, backward, clipping, AdamW) of `full` or `lora` on a
//! model, at a fixed batch of random token ids: the tuna side of `bench/train_step.sh`.
//!
//! `cargo run --release -p tuna-train --example step_time -- MODEL full|lora [BATCH] [LEN] [STEPS]`

use candle_core::{Device, Tensor};
use std::time::Instant;
use tuna_adapt::{MethodArgs, MethodName};
use tuna_core::Rng;
use tuna_models::load_model;
use tuna_models::tokenizer::pad_batch;
use tuna_nn::dropout::TrainScope;
use tuna_train::finetune::adamw::AdamW;
use tuna_train::finetune::params::{trainable_names, Params};
use tuna_train::finetune::{HeadConfig, TaskModel};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tuna_train::alloc::keep_freed_memory(); // as the `tuna` binary does
    tuna_core::threads::one_pool(); // as the `tuna` binary does
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: step_time MODEL full|lora [BATCH] [LEN] [STEPS]";
    let model_path = args.get(1).ok_or(usage)?;
    let kind = match args.get(2).map(String::as_str) {
        Some("full") => MethodName::Full,
        Some("lora") => MethodName::Lora,
        _ => return Err(usage.into()),
    };
    let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (batch, len, steps, warmup) = (num(3, 16), num(4, 128), num(5, 20), 3);
    let model = load_model(std::path::Path::new(model_path), &Device::Cpu)?;
    let pooling = model.info.family.default_pooling();
    let method = MethodArgs::defaults().method(kind);
    let head = HeadConfig {
        pooling,
        hidden: 0,
        dropout: 0.1,
    };
    let mut tm = TaskModel::build(model, method, &head, 2, 42)?;
    let names = trainable_names(&mut tm)?;
    let params = Params::create(&mut tm, &names)?;
    let mut opt = AdamW::new(&params.list)?;
    let mut rng = Rng::new(7);
    let seqs: Vec<Vec<u32>> = (0..batch)
        .map(|_| (0..len).map(|_| 1000 + rng.below(29000) as u32).collect())
        .collect();
    let b = pad_batch(&seqs, tm.model.tokenizer.pad_id, &Device::Cpu)?;
    let gold: Vec<u32> = (0..batch).map(|i| (i % 2) as u32).collect();
    let gold = Tensor::new(gold.as_slice(), &Device::Cpu)?;
    let mut times = vec![];
    for step in 0..warmup + steps {
        let t0 = Instant::now();
        let _scope = TrainScope::new(step as u64);
        let loss = candle_nn::loss::cross_entropy(&tm.logits(&b)?, &gold)?;
        let g = loss.backward()?;
        let grads: Vec<Tensor> = params
            .list
            .iter()
            .map(|p| {
                g.get(&p.var)
                    .cloned()
                    .map_or_else(|| p.var.as_tensor().zeros_like(), Ok)
            })
            .collect::<candle_core::Result<_>>()?;
        opt.clipped_step(&params.list, &grads, 1.0, 1e-4, 0.01)?;
        if step >= warmup {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "method": kind.as_str(), "median_step_s": times[times.len() / 2], "steps": steps,
            "batch": batch, "len": len, "trainable_params": params.count(),
            "threads": std::env::var("RAYON_NUM_THREADS").ok(),
            "peak_rss_mib": tuna_train::finetune::peak_rss_bytes() / (1 << 20),
        })
    );
    Ok(())
}
