//! Softmax, layer norm and RMS norm as fused CPU kernels **with** a backward, for training.
//!
//! Composed of tensor ops, each of these keeps five to ten intermediate tensors alive in the
//! gradient graph and makes as many passes over memory, forward and backward. Here the forward
//! is one pass and only the input and output are kept; the backward is one pass too. Row
//! reductions for weight gradients are summed in a fixed chunk order, so results do not depend
//! on thread scheduling. Only contiguous f32 on the CPU takes these kernels; [`crate::ops`]
//! falls back to differentiable tensor ops elsewhere.

use crate::fast_exp::{softmax_rows, Simd};
use crate::gelu::contiguous_f32;
use crate::norm_rows::NormRows;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Rows per parallel work item.
const ROWS: usize = 32;

fn last_dim(l: &Layout) -> usize {
    l.dims().last().copied().unwrap_or(1).max(1)
}

/// True when the fused kernels can run on `xs`.
pub fn supported(xs: &[&Tensor]) -> bool {
    xs.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == candle_core::DType::F32)
}

// ---------------------------------------------------------------- softmax

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "tuna-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, self.name())?;
        let d = last_dim(l);
        let mut out = x.to_vec();
        let simd = Simd::detect();
        out.par_chunks_mut(d * ROWS)
            .for_each(|o| softmax_rows(o, d, simd));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad)?,
        ))
    }
}

/// `y * (g - sum(g * y))` per row.
struct SoftmaxGrad;

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "tuna-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (
            contiguous_f32(s1, l1, self.name())?,
            contiguous_f32(s2, l2, self.name())?,
        );
        let d = last_dim(l1);
        let fill = |out: &mut [f32]| {
            out.par_chunks_mut(d * ROWS)
                .zip(y.par_chunks(d * ROWS).zip(g.par_chunks(d * ROWS)))
                .for_each(|(o, (y, g))| {
                    for ((o, y), g) in o.chunks_mut(d).zip(y.chunks(d)).zip(g.chunks(d)) {
                        let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
                        for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
                            *o = y * (g - dot);
                        }
                    }
                })
        };
        // SAFETY: the rows of `out` are each written in full above.
        let out = unsafe { crate::fresh::filled_by(y.len(), fill) };
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Softmax over the last dimension, differentiable (CPU f32).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

// ---------------------------------------------------------------- norms

/// Layer norm (`rms == false`, with bias) or RMS norm (`rms == true`) over the last dimension.
struct Norm {
    eps: f32,
    rms: bool,
}

impl Norm {
    fn rows(&self) -> NormRows {
        NormRows {
            eps: self.eps,
            rms: self.rms,
        }
    }

    fn forward(&self, x: &[f32], w: &[f32], b: Option<&[f32]>, d: usize) -> Vec<f32> {
        let rows = self.rows();
        let fill = |out: &mut [f32]| {
            out.par_chunks_mut(d * ROWS)
                .zip(x.par_chunks(d * ROWS))
                .for_each(|(o, x)| rows.forward(x, w, b, o))
        };
        // SAFETY: `NormRows::forward` writes every value of its rows.
        unsafe { crate::fresh::filled_by(x.len(), fill) }
    }

    /// dx (rows x d), then dw (d) and db (d) appended: one (rows + 2, d) buffer.
    fn backward(&self, x: &[f32], w: &[f32], g: &[f32], d: usize) -> Vec<f32> {
        let rows = x.len() / d;
        let norm = self.rows();
        let mut partial: Vec<Vec<f32>> = Vec::new();
        let fill = |dx: &mut [f32]| {
            partial = dx
                .par_chunks_mut(d * ROWS)
                .zip(x.par_chunks(d * ROWS).zip(g.par_chunks(d * ROWS)))
                .map(|(o, (x, g))| {
                    let mut acc = vec![0f32; 2 * d]; // dw, db
                    norm.backward(x, w, g, o, &mut acc);
                    acc
                })
                .collect()
        };
        // SAFETY: `NormRows::backward` writes every value of its rows of dx; the room for dw
        // and db is filled below without moving the buffer.
        let mut out = unsafe { crate::fresh::filled_with_room(x.len(), 2 * d, fill) };
        let mut sums = vec![0f32; 2 * d];
        for p in &partial {
            for (s, v) in sums.iter_mut().zip(p) {
                *s += v;
            }
        }
        out.extend_from_slice(&sums);
        debug_assert_eq!(out.len(), (rows + 2) * d);
        out
    }

    fn grads(&self, x: &Tensor, w: &Tensor, grad: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let d = w.elem_count();
        let rows = x.elem_count() / d;
        let all = x.apply_op3_no_bwd(
            w,
            &grad.contiguous()?,
            &NormGrad {
                eps: self.eps,
                rms: self.rms,
            },
        )?;
        let dx = all.narrow(0, 0, rows)?.reshape(x.shape())?;
        Ok((dx, all.get(rows)?, all.get(rows + 1)?))
    }
}

struct LayerNormOp(Norm);

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "tuna-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (
            contiguous_f32(s1, l1, self.name())?,
            contiguous_f32(s2, l2, self.name())?,
            contiguous_f32(s3, l3, self.name())?,
        );
        let out = self.0.forward(x, w, Some(b), last_dim(l1));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = self.0.grads(x, w, grad)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

struct RmsNormOp(Norm);

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "tuna-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (
            contiguous_f32(s1, l1, self.name())?,
            contiguous_f32(s2, l2, self.name())?,
        );
        let out = self.0.forward(x, w, None, last_dim(l1));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.0.grads(x, w, grad)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// The backward of both norms: (x, w, g) -> (rows + 2, d) holding dx, dw, db.
struct NormGrad {
    eps: f32,
    rms: bool,
}

impl CustomOp3 for NormGrad {
    fn name(&self) -> &'static str {
        "tuna-norm-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, g) = (
            contiguous_f32(s1, l1, self.name())?,
            contiguous_f32(s2, l2, self.name())?,
            contiguous_f32(s3, l3, self.name())?,
        );
        let d = last_dim(l1);
        let norm = Norm {
            eps: self.eps,
            rms: self.rms,
        };
        let out = norm.backward(x, w, g, d);
        Ok((CpuStorage::F32(out), Shape::from((x.len() / d + 2, d))))
    }
}

/// Layer norm over the last dimension with weight and bias, differentiable in all three (CPU f32).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f32) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        LayerNormOp(Norm { eps, rms: false }),
    )
}

/// RMS norm over the last dimension with weight, differentiable in both (CPU f32).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f32) -> Result<Tensor> {
    x.contiguous()?
        .apply_op2(&w.contiguous()?, RmsNormOp(Norm { eps, rms: true }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn close(a: &Tensor, b: &Tensor, tol: f32) -> Result<()> {
        let d = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < tol, "differ by {d}");
        Ok(())
    }

    #[test]
    fn match_the_composed_ops_forward_and_backward() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = tuna_core::Rng::new(3);
        let mut t = |n: usize| -> Result<Tensor> {
            Tensor::from_vec(
                (0..n).map(|_| rng.normal() as f32).collect::<Vec<_>>(),
                n,
                &dev,
            )
        };
        let (rows, d) = (70, 24);
        let x = Var::from_tensor(&t(rows * d)?.reshape((2, 35, d))?)?;
        let w = Var::from_tensor(&t(d)?)?;
        let b = Var::from_tensor(&t(d)?)?;
        let probe = t(rows * d)?.reshape((2, 35, d))?;
        let loss = |y: Tensor| -> Result<Tensor> { (y * &probe)?.sum_all() };

        let fused =
            (softmax_last_dim(&x)? + layer_norm(&x, &w, &b, 1e-5)? + rms_norm(&x, &w, 1e-6)?)?;
        let slow = (candle_nn::ops::softmax(&x, D::Minus1)?
            + candle_nn::ops::layer_norm_slow(&x, &w, &b, 1e-5)?
            + candle_nn::ops::rms_norm_slow(&x, &w, 1e-6)?)?;
        close(&fused, &slow, 1e-5)?;
        let gf = loss(fused)?.backward()?;
        let gs = loss(slow)?.backward()?;
        for v in [&x, &w, &b] {
            close(
                gf.get(v).expect("fused grad"),
                gs.get(v).expect("slow grad"),
                1e-4,
            )?;
        }
        Ok(())
    }
}
