//! AdamW (Loshchilov & Hutter) with PyTorch's update rule, decoupled weight decay applied only
//! where [`Param::decay`] says, and global-norm gradient clipping.

use super::params::Param;
use candle_core::{Result, Tensor};

/// Optimiser state: first and second moments of every parameter.
pub struct AdamW {
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    /// Updates done so far.
    pub t: usize,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl AdamW {
    /// Zero moments for `params`.
    pub fn new(params: &[Param]) -> Result<Self> {
        let zeros = |p: &Param| p.var.as_tensor().zeros_like();
        Ok(Self {
            m: params.iter().map(zeros).collect::<Result<_>>()?,
            v: params.iter().map(zeros).collect::<Result<_>>()?,
            t: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        })
    }

    /// One update with gradients `grads` (same order as `params`).
    pub fn step(
        &mut self,
        params: &[Param],
        grads: &[Tensor],
        lr: f64,
        weight_decay: f64,
    ) -> Result<()> {
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            self.m[i] = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
            self.v[i] = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let denom = ((&self.v[i] / c2)?.sqrt()? + self.eps)?;
            let update = ((&self.m[i] / c1)? / denom)?;
            let w = p.var.as_tensor();
            let w = if p.decay && weight_decay > 0.0 {
                (w * (1.0 - lr * weight_decay))?
            } else {
                w.clone()
            };
            p.var.set(&(w - (update * lr)?)?)?;
        }
        Ok(())
    }
}

/// Scales `grads` so that their global L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter() {
        sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let s = max_norm / (norm + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * s)?;
        }
    }
    Ok(norm)
}
