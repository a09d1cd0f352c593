//! The gated feed-forward product `silu(gate) * up` (Llama's SwiGLU) as one op with its own
//! backward.
//!
//! Composed, it is candle's `silu` (a scalar `exp` per element on one thread) and a product,
//! and in the backward the derivative of `silu` built from half a dozen more tensor ops. Here
//! one pass computes the output and one pass both gradients, with the vectorised `exp` of
//! `fast_exp` (the copy for AVX-512 or AVX2 chosen at run time) and every pass split over the
//! threads.

use crate::fast_exp::{dispatch, exp_neg, Simd};
use crate::gelu::contiguous_f32;
use crate::product::{cpu, cpu_parts};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel work item.
const CHUNK: usize = 1 << 14;

/// The logistic function, for any `x` (the exp is only ever taken of a non-positive value).
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    let e = exp_neg(-x.abs());
    let r = 1.0 / (1.0 + e);
    if x >= 0.0 {
        r
    } else {
        e * r
    }
}

#[inline(always)]
fn fwd_loop(g: &[f32], u: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
        *o = g * sigmoid(g) * u;
    }
}

/// `dg = dy u s (1 + g (1 - s))`, `du = dy g s`, with `s = sigmoid(g)`.
#[inline(always)]
fn bwd_loop(g: &[f32], u: &[f32], dy: &[f32], dg: &mut [f32], du: &mut [f32]) {
    let grads = dg.iter_mut().zip(du.iter_mut());
    for (((dg, du), &g), (&u, &dy)) in grads.zip(g).zip(u.iter().zip(dy)) {
        let s = sigmoid(g);
        *du = dy * g * s;
        *dg = dy * u * s * (1.0 + g * (1.0 - s));
    }
}

/// `silu(g) * u` for slices of one length, split over the threads.
pub(crate) fn forward(g: &[f32], u: &[f32]) -> Vec<f32> {
    let simd = Simd::detect();
    let mut out = vec![0f32; g.len()];
    out.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(o, (g, u))| {
            dispatch!(simd, (), |g: &[f32], u: &[f32], o: &mut [f32]| fwd_loop(
                g, u, o
            ))
        });
    out
}

/// The gradients of `g` and `u` for the output's gradient `dy`, split over the threads.
pub(crate) fn backward(g: &[f32], u: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let simd = Simd::detect();
    let (mut dg, mut du) = (vec![0f32; g.len()], vec![0f32; g.len()]);
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(
            g.par_chunks(CHUNK)
                .zip(u.par_chunks(CHUNK))
                .zip(dy.par_chunks(CHUNK)),
        )
        .for_each(|((dg, du), ((g, u), dy))| {
            dispatch!(simd, (), |g: &[f32],
                                 u: &[f32],
                                 dy: &[f32],
                                 dg: &mut [f32],
                                 du: &mut [f32]| {
                bwd_loop(g, u, dy, dg, du)
            })
        });
    (dg, du)
}

/// True when [`swiglu`] can run: CPU f32 tensors of one shape.
pub fn supported(gate: &Tensor, up: &Tensor) -> bool {
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    cpu_f32(gate) && cpu_f32(up) && gate.dims() == up.dims()
}

/// `silu(gate) * up`, differentiable in both.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if !supported(gate, up) {
        candle_core::bail!(
            "swiglu: unsupported inputs {:?} {:?}",
            gate.dims(),
            up.dims()
        )
    }
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}

struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "tuna-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = contiguous_f32(s1, l1, self.name())?;
        let u = contiguous_f32(s2, l2, self.name())?;
        if g.len() != u.len() {
            candle_core::bail!("{}: shapes differ", self.name())
        }
        let out = forward(g, u);
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (gs, gl) = cpu_parts(gate, self.name())?;
        let (us, ul) = cpu_parts(up, self.name())?;
        let (ds, dl) = cpu_parts(&grad, self.name())?;
        let g = contiguous_f32(cpu(&gs), &gl, self.name())?;
        let u = contiguous_f32(cpu(&us), &ul, self.name())?;
        let dy = contiguous_f32(cpu(&ds), &dl, self.name())?;
        if g.len() != dy.len() || u.len() != dy.len() {
            candle_core::bail!("{}: gradient shape differs", self.name())
        }
        let (dg, du) = backward(g, u, dy);
        let shape = gate.shape();
        Ok((
            Some(Tensor::from_vec(dg, shape, gate.device())?),
            Some(Tensor::from_vec(du, shape, up.device())?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_silu_times_up_in_value_and_gradients() -> Result<()> {
        let dev = Device::Cpu;
        // Large enough for several work items; values far into both tails.
        let n = 3 * CHUNK + 17;
        let g = Var::from_tensor(&(Tensor::randn(0f32, 4., n, &dev)?))?;
        let u = Var::from_tensor(&Tensor::randn(0f32, 1., n, &dev)?)?;
        let w = Tensor::randn(0f32, 1., n, &dev)?;
        let ours = swiglu(g.as_tensor(), u.as_tensor())?;
        let theirs = (g.as_tensor().silu()? * u.as_tensor())?;
        let max = |t: Tensor| t.abs()?.max_all()?.to_scalar::<f32>();
        assert!(max((&ours - &theirs)?)? < 1e-5);
        let a = (ours * &w)?.sum_all()?.backward()?;
        let b = (theirs * &w)?.sum_all()?.backward()?;
        for v in [g.as_tensor(), u.as_tensor()] {
            let d = max((a.get(v).unwrap() - b.get(v).unwrap())?)?;
            assert!(d < 1e-4, "gradient differs by {d}");
        }
        Ok(())
    }

    #[test]
    fn sigmoid_holds_in_the_tails_and_keeps_nan() {
        assert_eq!(sigmoid(200.0), 1.0);
        assert_eq!(sigmoid(-200.0), 0.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
        assert!((sigmoid(1.5) - 1.0 / (1.0 + (-1.5f32).exp())).abs() < 1e-7);
        assert!(sigmoid(f32::NAN).is_nan());
    }
}
