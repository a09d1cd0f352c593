//! The fully connected product `x W^T + b` as one op with its own backward, for training.
//!
//! Built from candle's ops, a linear layer in training is a transpose, a matmul and a broadcast
//! add, and candle's backward then: computes the gradient of both matmul operands whether or
//! not they need one (every frozen weight got a full-size gradient each step, as much work and
//! memory as full finetuning), sums the bias gradient with a generic strided reduction, and
//! adds each node's gradient to a zero-filled buffer. Here the forward is one product written
//! straight into the output, starting from the bias; the backward computes only the gradients
//! that are needed (`dx = g W`, `dW = g^T x`, `db` = column sums of `g`), each in one pass.

use crate::gelu::contiguous_f32;
use crate::product::{column_sums, product, with_mat, Mat};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Device, Layout, Result, Shape, Tensor};

const NAME: &str = "tuna-linear";

/// `x` (N, in) times `w` (out, in) transposed, plus `b` (out).
fn forward(x: Mat, w: Mat, b: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
    let (n, out) = (x.dims().0, w.dims().0);
    let y = product(x, w.t(), b)?;
    Ok((CpuStorage::F32(y), Shape::from((n, out))))
}

type Grads = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// The gradients of `x`, `w` and `b` that are tracked, from the output's gradient `g` (N, out).
fn backward(x: &Tensor, w: &Tensor, b: Option<&Tensor>, g: &Tensor) -> Result<Grads> {
    let cpu = &Device::Cpu;
    with_mat(g, NAME, |gm| {
        let (n, out) = gm.dims();
        let dx = if x.track_op() {
            let v = with_mat(w, NAME, |wm| product(gm, wm, None))?;
            Some(Tensor::from_vec(v, (n, w.dim(1)?), cpu)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            let v = with_mat(x, NAME, |xm| product(gm.t(), xm, None))?;
            Some(Tensor::from_vec(v, (out, x.dim(1)?), cpu)?)
        } else {
            None
        };
        let db = match b {
            Some(b) if b.track_op() => Some(Tensor::from_vec(column_sums(gm), out, cpu)?),
            _ => None,
        };
        Ok((dx, dw, db))
    })
}

struct NoBias;

impl CustomOp2 for NoBias {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        forward(Mat::new(s1, l1, NAME)?, Mat::new(s2, l2, NAME)?, None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = backward(x, w, None, g)?;
        Ok((dx, dw))
    }
}

struct WithBias;

impl CustomOp3 for WithBias {
    fn name(&self) -> &'static str {
        NAME
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
        let b = contiguous_f32(s3, l3, NAME)?;
        forward(Mat::new(s1, l1, NAME)?, Mat::new(s2, l2, NAME)?, Some(b))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Grads> {
        backward(x, w, Some(b), g)
    }
}

/// True when `x W^T + b` should take this op: some operand needs a gradient, `x` is 2-D, and
/// everything is f32 on the CPU (elsewhere candle's ops are used).
pub fn applies(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> bool {
    let all = [Some(x), Some(weight), bias];
    let all = all.iter().flatten();
    if !all.clone().any(|t| t.track_op()) || x.rank() != 2 {
        return false;
    }
    if all.clone().any(|t| crate::fallback::off_kernel(t)) {
        crate::fallback::note(NAME, x, "candle's matmul and broadcast add");
        return false;
    }
    true
}

/// `x W^T + b` for 2-D `x` (N, in), with gradients for the operands that track them.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => x.apply_op3(weight, &b.contiguous()?, WithBias),
        None => x.apply_op2(weight, NoBias),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
    }

    /// Every pattern of tracked operands, with and without bias, a transposed input included:
    /// the same output and gradients as candle's composition, and none for frozen operands.
    #[test]
    fn matches_candle_composition_and_skips_frozen_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = tuna_core::Rng::new(1);
        let mut t = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let probe = Tensor::from_vec(t(5 * 4), (5, 4), &dev)?;
        for (track_x, track_w, bias, transposed) in [
            (true, false, true, false),
            (false, true, true, false),
            (true, true, true, true),
            (true, true, false, false),
            (true, false, false, true),
        ] {
            let xv = Var::from_vec(t(5 * 3), (5, 3), &dev)?;
            let wv = Var::from_vec(t(4 * 3), (4, 3), &dev)?;
            let bv = Var::from_vec(t(4), 4, &dev)?;
            let pick = |v: &Var, track: bool| {
                if track {
                    v.as_tensor().clone()
                } else {
                    v.as_tensor().detach()
                }
            };
            let x = if transposed {
                // The same values through a (3, 5) transposed back: a strided input.
                let xt = xv.as_tensor().t()?.contiguous()?;
                let xt = if track_x { xt } else { xt.detach() };
                xt.t()?
            } else {
                pick(&xv, track_x)
            };
            let w = pick(&wv, track_w);
            let b = bias.then(|| pick(&bv, track_w));
            assert!(applies(&x, &w, b.as_ref()));
            let ours = linear(&x, &w, b.as_ref())?;
            let mut plain = x.matmul(&w.t()?)?;
            if let Some(b) = &b {
                plain = plain.broadcast_add(b)?;
            }
            assert!(max_diff(&ours, &plain)? < 1e-6);
            let g1 = (ours * &probe)?.sum_all()?.backward()?;
            let g2 = (plain * &probe)?.sum_all()?.backward()?;
            for (v, tracked) in [(&xv, track_x), (&wv, track_w), (&bv, track_w && bias)] {
                match (g1.get(v), g2.get(v)) {
                    (Some(a), Some(b)) => assert!(max_diff(a, b)? < 1e-5),
                    (None, None) => {}
                    (a, b) => panic!("gradients differ in presence: {a:?} vs {b:?}"),
                }
                assert_eq!(g1.get(v).is_some(), tracked);
            }
            // The frozen weight gets no gradient; candle's matmul keeps one for its transpose.
            if !track_w {
                let stored = |g: &candle_core::backprop::GradStore| g.get_ids().count();
                assert!(stored(&g1) < stored(&g2));
            }
        }
        Ok(())
    }
}
