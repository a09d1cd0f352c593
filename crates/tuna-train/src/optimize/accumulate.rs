//! Gradient accumulation: the gradients of several micro-batches summed per trainable tensor
//! (zeros where a tensor got none), taken by the optimiser step.

use crate::finetune::params::Param;
use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor};

/// The summed gradients since the last optimiser step.
#[derive(Default)]
pub struct GradAccumulator {
    sum: Option<Vec<Tensor>>,
}

impl GradAccumulator {
    /// Adds the gradients in `grads` of every tensor of `params` (same order).
    pub fn add(&mut self, params: &[Param], grads: &GradStore) -> Result<()> {
        let fresh: Vec<Tensor> = params
            .iter()
            .map(|p| match grads.get(p.var.as_tensor()) {
                Some(t) => Ok(t.clone()),
                None => p.var.as_tensor().zeros_like(),
            })
            .collect::<Result<_>>()?;
        self.sum = Some(match self.sum.take() {
            None => fresh,
            Some(acc) => acc
                .iter()
                .zip(&fresh)
                .map(|(a, b)| a + b)
                .collect::<Result<_>>()?,
        });
        Ok(())
    }

    /// The sum so far (none before the first `add`), leaving the accumulator empty.
    pub fn take(&mut self) -> Option<Vec<Tensor>> {
        self.sum.take()
    }
}
