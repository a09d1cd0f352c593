//! Speed of products on quantised weights (`tuna_nn::quant`) against the f32 paths, on
//! SmolLM2-135M's shapes: `cargo run --release -p tuna-nn --example quant_speed`.
//!
//! One input row (decoding a token): `QuantMatrix::matmul_t` against the f32 weight through
//! `row_split` (tuna's one-row f32 path), at 1 and 2 threads, as GB/s of weight read and the
//! ratio of times. 512 rows (a training batch): `matmul_t` and `matmul` (the input gradient)
//! against candle's f32 matmul. `QUANT_SPEED_TYPES=Q4_0,Q8_0` picks types,
//! `QUANT_SPEED_ISA=avx2` (or `portable`) the kernels' instruction set;
//! `QUANT_SPEED_ONE_ROW=1` times only the one-row products at 1 thread.
//! `QUANT_SPEED_FEW_ROWS=N` times only the N-row product (sequences decoded in one batch)
//! against N one-row products on the same weight, at 1 thread, and prints the speed-up.

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Result, Tensor};
use std::time::Instant;
use tuna_nn::quant::{Isa, QuantMatrix, QuantType};
use tuna_nn::row_split::row_split_matmul;

/// Seconds per call of `f`: the best of 5 rounds, each of at least 0.1 s.
fn time(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let (t0, mut reps) = (Instant::now(), 0);
        while reps == 0 || t0.elapsed().as_secs_f64() < 0.1 {
            f()?;
            reps += 1;
        }
        best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
    }
    Ok(best)
}

/// The instruction set `QUANT_SPEED_ISA` names, else the best one.
fn isa() -> Isa {
    let want = std::env::var("QUANT_SPEED_ISA").unwrap_or_default();
    Isa::available()
        .into_iter()
        .find(|i| i.name() == want)
        .unwrap_or(Isa::best())
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool")
}

/// True when `QUANT_SPEED_ONE_ROW` is set: one-row products at 1 thread only.
fn one_row_only() -> bool {
    std::env::var_os("QUANT_SPEED_ONE_ROW").is_some()
}

fn thread_counts() -> Vec<usize> {
    if one_row_only() {
        vec![1]
    } else {
        vec![1, 2]
    }
}

fn types() -> Vec<GgmlDType> {
    let Ok(pick) = std::env::var("QUANT_SPEED_TYPES") else {
        return QuantType::ALL.map(QuantType::ggml).to_vec();
    };
    let names: Vec<String> = pick.split(',').map(|s| s.replace('_', "")).collect();
    QuantType::ALL
        .map(QuantType::ggml)
        .into_iter()
        .filter(|t| {
            names
                .iter()
                .any(|n| format!("{t:?}").replace('_', "") == *n)
        })
        .collect()
}

/// One-row products of a (rows, cols) weight, every type against f32 `row_split`.
fn one_row(rows: usize, cols: usize) -> Result<()> {
    let dev = Device::Cpu;
    let wf = (Tensor::randn(0f32, 1.0, (rows, cols), &dev)? * 0.02)?;
    let x = Tensor::randn(0f32, 1.0, (1, cols), &dev)?;
    let xv: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let f32_bytes = (rows * cols * 4) as f64;
    for threads in thread_counts() {
        let p = pool(threads);
        let base = p.install(|| time(|| row_split_matmul(&x, &wf).map(|_| ())))?;
        println!(
            "  ({rows:>5}, {cols:>4}) {threads}t  f32 row_split   {:8.1} us {:6.1} GB/s",
            base * 1e6,
            f32_bytes / base / 1e9
        );
        for dtype in types() {
            if !cols.is_multiple_of(dtype.block_size()) {
                println!(
                    "  ({rows:>5}, {cols:>4}) {threads}t  {dtype:<6?}  n/a (rows not whole blocks)"
                );
                continue;
            }
            let w = QuantMatrix::quantize(&wf, dtype)?;
            let s = p.install(|| time(|| w.matmul_t_on(isa(), &xv, 1).map(|_| ())))?;
            println!(
                "  ({rows:>5}, {cols:>4}) {threads}t  {dtype:<6?}          {:8.1} us {:6.1} GB/s  {:5.2}x f32",
                s * 1e6,
                w.nbytes() as f64 / s / 1e9,
                base / s
            );
        }
    }
    Ok(())
}

/// 512-row products of a (rows, cols) weight against candle's f32 matmul, both directions.
fn many_rows(rows: usize, cols: usize, m: usize) -> Result<()> {
    let dev = Device::Cpu;
    let wf = (Tensor::randn(0f32, 1.0, (rows, cols), &dev)? * 0.02)?;
    let x = Tensor::randn(0f32, 1.0, (m, cols), &dev)?;
    let g = Tensor::randn(0f32, 1.0, (m, rows), &dev)?;
    let (xv, gv): (Vec<f32>, Vec<f32>) = (x.flatten_all()?.to_vec1()?, g.flatten_all()?.to_vec1()?);
    let wt = wf.t()?;
    for threads in [1, 2] {
        let p = pool(threads);
        let fwd = p.install(|| time(|| x.matmul(&wt).map(|_| ())))?;
        let bwd = p.install(|| time(|| g.matmul(&wf).map(|_| ())))?;
        let flop = 2.0 * (m * rows * cols) as f64;
        println!(
            "  m={m} ({rows:>5}, {cols:>4}) {threads}t  f32 candle  x W^T {:7.2} ms ({:5.1} GFLOP/s)  g W {:7.2} ms",
            fwd * 1e3,
            flop / fwd / 1e9,
            bwd * 1e3
        );
        for dtype in types() {
            if !cols.is_multiple_of(dtype.block_size()) {
                continue;
            }
            let w = QuantMatrix::quantize(&wf, dtype)?;
            let f = p.install(|| time(|| w.matmul_t_on(isa(), &xv, m).map(|_| ())))?;
            let b = p.install(|| time(|| w.matmul_on(isa(), &gv, m).map(|_| ())))?;
            println!(
                "  m={m} ({rows:>5}, {cols:>4}) {threads}t  {dtype:<6?}      x W^T {:7.2} ms ({:4.2}x f32 time)  g W {:7.2} ms ({:4.2}x)",
                f * 1e3,
                f / fwd,
                b * 1e3,
                b / bwd
            );
        }
    }
    Ok(())
}

/// The row count `QUANT_SPEED_FEW_ROWS` names, if set.
fn few_rows_count() -> Option<usize> {
    let n = std::env::var("QUANT_SPEED_FEW_ROWS").ok()?;
    Some(n.parse().expect("QUANT_SPEED_FEW_ROWS: a row count"))
}

/// The `m`-row product of a (rows, cols) weight of type `dtype` against `m` one-row products
/// of the same inputs, at 1 thread.
fn few_rows(rows: usize, cols: usize, dtype: GgmlDType, m: usize) -> Result<()> {
    let dev = Device::Cpu;
    let wf = (Tensor::randn(0f32, 1.0, (rows, cols), &dev)? * 0.02)?;
    let xv: Vec<f32> = Tensor::randn(0f32, 1.0, (m, cols), &dev)?
        .flatten_all()?
        .to_vec1()?;
    let w = QuantMatrix::quantize(&wf, dtype)?;
    let p = pool(1);
    let together = p.install(|| time(|| w.matmul_t_on(isa(), &xv, m).map(|_| ())))?;
    let apart = p.install(|| {
        time(|| {
            for xj in xv.chunks(cols) {
                w.matmul_t_on(isa(), xj, 1)?;
            }
            Ok(())
        })
    })?;
    println!(
        "  m={m:<2} ({rows:>5}, {cols:>4}) {dtype:<6?} {m} rows {:8.1} us  {m} x 1 row {:8.1} us  {:5.2}x",
        together * 1e6,
        apart * 1e6,
        apart / together
    );
    Ok(())
}

fn main() -> Result<()> {
    tuna_core::threads::one_pool();
    println!(
        "kernels: {} (available: {:?})",
        isa().name(),
        Isa::available()
    );
    if let Some(m) = few_rows_count() {
        println!("{m} input rows at once against {m} one-row products, 1 thread (speed-up)");
        let shapes = [(576, 576), (192, 576), (1536, 576), (576, 1536)];
        for (rows, cols) in shapes {
            few_rows(rows, cols, GgmlDType::Q4_1, m)?;
        }
        return few_rows(49152, 576, GgmlDType::Q8_0, m);
    }
    println!("one input row (decoding): time, weight bytes read per second, speed-up over f32");
    for (rows, cols) in [(576, 1536), (1536, 576), (49152, 576)] {
        one_row(rows, cols)?;
    }
    if one_row_only() {
        return Ok(());
    }
    println!("512 input rows: time, and time relative to candle's f32 matmul (lower is faster)");
    for (rows, cols) in [(576, 1536), (1536, 576)] {
        many_rows(rows, cols, 512)?;
    }
    Ok(())
}
