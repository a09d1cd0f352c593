//! Times the pieces of one MiniLM-shaped encoder block on a batch of short sentences, to see
//! where inference time goes: `cargo run --release -p tuna-nn --example op_timing`.

use candle_core::{DType, Device, Module, Result, Tensor};
use std::time::Instant;
use tuna_nn::attention::{attention, merge_heads, split_heads};
use tuna_nn::{Activation, Linear};

fn time<T>(label: &str, reps: usize, mut f: impl FnMut() -> Result<T>) -> Result<()> {
    f()?;
    let t0 = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    println!(
        "{label:<28} {:8.3} ms",
        t0.elapsed().as_secs_f64() * 1e3 / reps as f64
    );
    Ok(())
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    let (b, t, h, heads, inter) = (32, 25, 384, 12, 1536);
    let x = Tensor::randn(0f32, 1., (b, t, h), &dev)?;
    let w = Tensor::randn(0f32, 0.05, (h, h), &dev)?;
    let w_up = Tensor::randn(0f32, 0.05, (inter, h), &dev)?;
    let bias = Tensor::zeros(h, DType::F32, &dev)?;
    let lin = Linear::new(w.clone(), Some(bias.clone()));
    let up = Linear::new(w_up, None);
    time("linear 384->384", 50, || lin.forward(&x))?;
    time("linear 384->1536", 50, || up.forward(&x))?;
    let u = up.forward(&x)?;
    time("gelu (B,T,1536)", 50, || Activation::Gelu.forward(&u))?;
    let q = split_heads(&x, heads)?;
    time("split_heads", 50, || split_heads(&x, heads))?;
    time("attention (B,12,T,32)", 50, || attention(&q, &q, &q, None))?;
    time("merge_heads", 50, || merge_heads(&q))?;
    let wn = Tensor::ones(h, DType::F32, &dev)?;
    time("layer_norm", 50, || {
        tuna_nn::ops::layer_norm(&x, &wn, &bias, 1e-12)
    })?;
    time("residual add", 50, || &x + &x)?;
    Ok(())
}
