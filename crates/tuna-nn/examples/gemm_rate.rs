//! GFLOP/s of the products of a MiniLM training step (batch 16 x 128 tokens) through tuna's
//! product path (`product.rs` on `gemm`): `cargo run --release -p tuna-nn --example gemm_rate`.
//! `bench/reference/gemm_rate.py` times the same shapes in PyTorch.

use candle_core::{Device, Result, Tensor};
use std::time::Instant;
use tuna_nn::product::{product, with_mat};

fn main() -> Result<()> {
    let dev = Device::Cpu;
    let tokens = 2048;
    // (label, m, k, n, a transposed, b transposed): forward x W^T, input gradient dy W,
    // weight gradient dy^T x.
    let shapes = [
        ("fwd qkvo 384->384", tokens, 384, 384, false, true),
        ("fwd up 384->1536", tokens, 384, 1536, false, true),
        ("fwd down 1536->384", tokens, 1536, 384, false, true),
        ("dx up", tokens, 1536, 384, false, false),
        ("dx down", tokens, 384, 1536, false, false),
        ("dw up", 1536, tokens, 384, true, false),
        ("dw down", 384, tokens, 1536, true, false),
        ("dw qkvo", 384, tokens, 384, true, false),
    ];
    let mut total = (0.0, 0.0);
    for (label, m, k, n, ta, tb) in shapes {
        let a = if ta {
            Tensor::randn(0f32, 1., (k, m), &dev)?.t()?
        } else {
            Tensor::randn(0f32, 1., (m, k), &dev)?
        };
        let b = if tb {
            Tensor::randn(0f32, 1., (n, k), &dev)?.t()?
        } else {
            Tensor::randn(0f32, 1., (k, n), &dev)?
        };
        let run = || with_mat(&a, "a", |am| with_mat(&b, "b", |bm| product(am, bm, None)));
        run()?;
        let reps = 20;
        let t0 = Instant::now();
        for _ in 0..reps {
            run()?;
        }
        let s = t0.elapsed().as_secs_f64() / reps as f64;
        let flop = 2.0 * (m * k * n) as f64;
        total.0 += s;
        total.1 += flop;
        println!(
            "{label:<20} {:7.2} ms {:7.1} GFLOP/s",
            s * 1e3,
            flop / s / 1e9
        );
    }
    println!(
        "all {:7.2} ms {:7.1} GFLOP/s",
        total.0 * 1e3,
        total.1 / total.0 / 1e9
    );
    Ok(())
}
