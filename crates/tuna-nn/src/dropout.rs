//! Dropout driven by tuna's seeded generator, so that a training run is the same twice.
//!
//! Dropout is only active inside a [`TrainScope`]: the trainer opens one per step with a seed
//! derived from the run seed and the step number (so a resumed run draws the same masks).
//! Outside a scope (evaluation, inference) [`dropout`] is the identity.

use crate::fast_exp::{dispatch, Simd};
use candle_core::{Result, Tensor};
use std::cell::RefCell;
use tuna_core::Rng;

thread_local! {
    static STATE: RefCell<Option<Rng>> = const { RefCell::new(None) };
}

/// Dropout is active while this lives (on this thread).
pub struct TrainScope(());

impl TrainScope {
    /// Activates dropout with masks drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        STATE.with(|s| *s.borrow_mut() = Some(Rng::new(seed)));
        TrainScope(())
    }
}

impl Drop for TrainScope {
    fn drop(&mut self) {
        STATE.with(|s| *s.borrow_mut() = None);
    }
}

/// True inside a [`TrainScope`].
pub fn training() -> bool {
    STATE.with(|s| s.borrow().is_some())
}

/// One draw from the scope's generator for a dropout mask, or `None` outside a
/// [`TrainScope`] (or when `p` is 0): the seed [`keep_mask`] expands.
pub fn mask_seed(p: f32) -> Option<u64> {
    if p <= 0.0 {
        return None;
    }
    STATE.with(|s| s.borrow_mut().as_mut().map(|rng| rng.next_u64()))
}

/// Rows of the mask generated from one generator each, so the mask is the same whatever the
/// number of threads.
const MASK_ROWS: usize = 64;

/// A dropout mask of `rows` x `cols` values from `seed`: 0 with probability `p`, else
/// `1 / (1 - p)`; generated in blocks of rows in parallel.
pub fn keep_mask(seed: u64, rows: usize, cols: usize, p: f32) -> Vec<f32> {
    use rayon::prelude::*;
    let keep = 1.0 / (1.0 - p);
    // Dropped when the 53 high bits, as a fraction, fall below p.
    let cut = (p as f64 * (1u64 << 53) as f64) as u64;
    let fill = |mask: &mut [f32]| {
        mask.par_chunks_mut((MASK_ROWS * cols).max(1))
            .enumerate()
            .for_each(|(i, block)| {
                let rng = Rng::new(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                fill_block(&rng, block, cut, keep)
            })
    };
    // SAFETY: `fill_block` writes every value of its block, and the blocks cover the mask.
    unsafe { crate::fresh::filled_by(rows * cols, fill) }
}

/// `block` from the draws of `rng` in order, built per instruction set (the draws are
/// independent, so the loop vectorises).
fn fill_block(rng: &Rng, block: &mut [f32], cut: u64, keep: f32) {
    dispatch!(
        Simd::detect(),
        (),
        |rng: &Rng, block: &mut [f32], cut: u64, keep: f32| {
            for (k, m) in block.iter_mut().enumerate() {
                *m = if rng.at(k as u64) >> 11 < cut {
                    0.0
                } else {
                    keep
                };
            }
        }
    )
}

/// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)` in training;
/// the identity otherwise.
pub fn dropout(x: &Tensor, p: f32) -> Result<Tensor> {
    let Some(seed) = mask_seed(p) else {
        return Ok(x.clone());
    };
    let cols = x.dims().last().copied().unwrap_or(1).max(1);
    let m = keep_mask(seed, x.elem_count() / cols, cols, p);
    x.mul(&Tensor::from_vec(m, x.shape(), x.device())?.to_dtype(x.dtype())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The vectorised fill draws the generator's stream in order: the masks of every run
    /// before it are unchanged.
    #[test]
    fn masks_are_each_blocks_stream_in_order() {
        let (rows, cols, p) = (150, 37, 0.1f32);
        let mask = keep_mask(9, rows, cols, p);
        let cut = (p as f64 * (1u64 << 53) as f64) as u64;
        for (i, block) in mask.chunks(MASK_ROWS * cols).enumerate() {
            let mut rng = Rng::new(9 ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for &m in block {
                let dropped = rng.next_u64() >> 11 < cut;
                assert_eq!(m == 0.0, dropped);
            }
        }
    }

    #[test]
    fn identity_outside_scope_and_seeded_inside() -> Result<()> {
        let x = Tensor::ones(1000, candle_core::DType::F32, &Device::Cpu)?;
        assert_eq!(dropout(&x, 0.5)?.to_vec1::<f32>()?, x.to_vec1::<f32>()?);
        let draw = |seed| -> Result<Vec<f32>> {
            let _s = TrainScope::new(seed);
            dropout(&x, 0.5)?.to_vec1::<f32>()
        };
        let (a, b, c) = (draw(1)?, draw(1)?, draw(2)?);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let zeros = a.iter().filter(|v| **v == 0.0).count();
        assert!((400..600).contains(&zeros), "{zeros}");
        assert!(a.iter().all(|v| *v == 0.0 || *v == 2.0));
        assert!(!training());
        Ok(())
    }
}
