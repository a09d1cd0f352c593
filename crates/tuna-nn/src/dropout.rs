//! Dropout driven by tuna's seeded generator, so that a training run is the same twice.
//!
//! Dropout is only active inside a [`TrainScope`]: the trainer opens one per step with a seed
//! derived from the run seed and the step number (so a resumed run draws the same masks).
//! Outside a scope (evaluation, inference) [`dropout`] is the identity.

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

/// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)` in training;
/// the identity otherwise.
pub fn dropout(x: &Tensor, p: f32) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let mask = STATE.with(|s| {
        s.borrow_mut().as_mut().map(|rng| {
            let keep = 1.0 / (1.0 - p);
            (0..x.elem_count())
                .map(|_| {
                    if rng.next_f64() < p as f64 {
                        0f32
                    } else {
                        keep
                    }
                })
                .collect::<Vec<f32>>()
        })
    });
    match mask {
        Some(m) => x.mul(&Tensor::from_vec(m, x.shape(), x.device())?.to_dtype(x.dtype())?),
        None => Ok(x.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
