//! `x W^T` for a single input row (decoding one token at a time), with the weight's rows split
//! across the worker threads.
//!
//! A one-row product is bound by reading the weight from memory, and the matrix library runs
//! it on one thread whatever the thread count. Here each thread takes a band of weight rows
//! (each band one single-row product, computed as before) and the bands' outputs are joined.

use crate::quant::split::for_each_share;
use candle_core::{Result, Tensor};

/// Weights with fewer rows than this stay on one thread.
const MIN_ROWS: usize = 256;

/// True when `x W^T` should be split: one input row on the CPU (elsewhere the plain product
/// runs, logged once), a weight of at least `MIN_ROWS` rows, no gradients, several threads.
pub fn applies(x: &Tensor, weight: &Tensor) -> bool {
    if !one_row(x, weight) {
        return false;
    }
    if !x.device().is_cpu() {
        crate::fallback::note("tuna-row-split", x, "one plain product (cuBLAS on a GPU)");
        return false;
    }
    rayon::current_num_threads() > 1
}

/// A one-row product with a large enough weight and no gradients.
fn one_row(x: &Tensor, weight: &Tensor) -> bool {
    x.dims().len() == 2
        && x.dim(0).is_ok_and(|m| m == 1)
        && weight.dim(0).is_ok_and(|n| n >= MIN_ROWS)
        && !x.track_op()
        && !weight.track_op()
}

/// `x` (1, K) times `weight` (N, K) transposed: (1, N), one band of rows per thread.
pub fn row_split_matmul(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let n = weight.dim(0)?;
    let band = n.div_ceil(rayon::current_num_threads());
    let product = |i: usize| {
        let rows = band.min(n - i * band);
        x.matmul(&weight.narrow(0, i * band, rows)?.t()?)
    };
    // The bands as the quantised products split theirs: the first on this thread, the others
    // on helpers that spin between products (`quant/team.rs`).
    let mut parts: Vec<(usize, Result<Tensor>)> = (0..n.div_ceil(band))
        .map(|i| (i, Err(candle_core::Error::Msg("band not run".into()))))
        .collect();
    for_each_share(&mut parts, |(i, out)| *out = product(*i));
    let parts = parts
        .into_iter()
        .map(|(_, p)| p)
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&parts, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_the_plain_product() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1.0, (1001, 70), &dev)?;
        let x = Tensor::randn(0f32, 1.0, (1, 70), &dev)?;
        let want = x.matmul(&w.t()?)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let got = pool.install(|| {
            assert!(applies(&x, &w));
            row_split_matmul(&x, &w)
        })?;
        assert_eq!(got.dims(), want.dims());
        let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0, "each output is the same dot product as before");
        Ok(())
    }
}
