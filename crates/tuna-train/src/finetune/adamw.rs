//! AdamW (Loshchilov & Hutter) with PyTorch's update rule, decoupled weight decay applied only
//! where [`Param::decay`] says, and global-norm gradient clipping.

use super::params::Param;
use candle_core::{Result, Tensor};
use tuna_nn::adamw_op::{adamw_update, sum_squares, AdamWUpdate};

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

    /// One update with gradients `grads` (same order as `params`), clipped first to a global
    /// L2 norm of at most `clip` (0: no clipping); returns the norm before clipping. On the
    /// CPU each parameter is one fused pass ([`tuna_nn::adamw_op`]), elsewhere tensor ops with
    /// the same arithmetic.
    pub fn clipped_step(
        &mut self,
        params: &[Param],
        grads: &[Tensor],
        clip: f64,
        lr: f64,
        weight_decay: f64,
    ) -> Result<f64> {
        let norm = grad_norm(grads)?;
        let scale = (clip > 0.0 && norm > clip).then(|| clip / (norm + 1e-6));
        self.t += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            let decays = p.decay && weight_decay > 0.0;
            let u = AdamWUpdate {
                grad_scale: scale.map(|s| s as f32),
                beta1: b1 as f32,
                one_minus_beta1: (1.0 - b1) as f32,
                beta2: b2 as f32,
                one_minus_beta2: (1.0 - b2) as f32,
                inv_c1: (1.0 / c1) as f32,
                inv_c2: (1.0 / c2) as f32,
                eps: self.eps as f32,
                decay: decays.then_some((1.0 - lr * weight_decay) as f32),
                lr: lr as f32,
            };
            let w = p.var.as_tensor();
            if adamw_update(w, g, &self.m[i], &self.v[i], &u)? {
                continue;
            }
            tuna_nn::fallback::note("adamw", w, "tensor ops");
            let g = match scale {
                Some(s) => (g * s)?,
                None => g.clone(),
            };
            self.m[i] = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?;
            self.v[i] = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let denom = ((&self.v[i] / c2)?.sqrt()? + self.eps)?;
            let update = ((&self.m[i] / c1)? / denom)?;
            let w = if decays {
                (w * (1.0 - lr * weight_decay))?
            } else {
                w.clone()
            };
            p.var.set(&(w - (update * lr)?)?)?;
        }
        Ok(norm)
    }
}

/// The global L2 norm of `grads`.
pub fn grad_norm(grads: &[Tensor]) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads {
        sq += match sum_squares(g) {
            Some(s) => s,
            None => g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64,
        };
    }
    Ok(sq.sqrt())
}
