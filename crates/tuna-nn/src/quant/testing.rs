//! Test helpers: seeded weights with a realistic spread, candle's own decoding as the
//! reference, and the comparison every product test makes.

use super::matrix::QuantMatrix;
use candle_core::quantized::{QStorage, QTensor};
use candle_core::{Device, Result, Tensor};
use std::borrow::Cow;

/// A (rows, cols) weight like a trained layer's: normal values of scale 0.02 that varies
/// by row (0.5x to 2x), with one value in a hundred eight times larger.
pub(crate) fn weights(rows: usize, cols: usize, seed: u64) -> Result<Tensor> {
    let mut rng = tuna_core::Rng::new(seed);
    let mut v = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let scale = 0.02 * (0.5 + 1.5 * rng.next_f64());
        for _ in 0..cols {
            let outlier = if rng.below(100) == 0 { 8.0 } else { 1.0 };
            v.push((rng.normal() * scale * outlier) as f32);
        }
    }
    Tensor::from_vec(v, (rows, cols), &Device::Cpu)
}

/// `n` standard normal values.
pub(crate) fn normal(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = tuna_core::Rng::new(seed);
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// The matrix decoded by candle (`QTensor::dequantize`), the reference for every product.
pub(crate) fn candle_dequantized(w: &QuantMatrix) -> Result<Tensor> {
    let storage = QStorage::from_data(Cow::Borrowed(w.bytes()), &Device::Cpu, w.dtype())?;
    QTensor::new(storage, (w.row_count(), w.col_count()))?.dequantize(&Device::Cpu)
}

/// Asserts `max |got - want| <= tol * max(1, max |want|)`, naming the worst element.
pub(crate) fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1f32, |a, v| a.max(v.abs()));
    let (i, d) = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold(
            (0, 0f32),
            |best, (i, d)| if d > best.1 { (i, d) } else { best },
        );
    assert!(
        d <= tol * scale,
        "{what}: element {i} is {} instead of {} (diff {d}, allowed {})",
        got[i],
        want[i],
        tol * scale
    );
}

/// The largest difference of two tensors relative to `b`'s largest magnitude.
pub(crate) fn relative(a: &Tensor, b: &Tensor) -> Result<f32> {
    let scale: f32 = b.abs()?.max_all()?.to_scalar()?;
    let d: f32 = (a - b)?.abs()?.max_all()?.to_scalar()?;
    Ok(d / scale.max(1e-12))
}
