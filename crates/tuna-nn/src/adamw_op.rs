//! AdamW's update of one parameter as one pass: weight, first and second moment changed in
//! place, the gradient read once (and scaled for clipping on the way), spread over the threads.
//!
//! The tensor-op version of the same rule writes a fresh buffer for each of about a dozen
//! elementwise ops per parameter, on one thread each. Here every element goes through the same
//! f32 operations in the same order as that version (candle's `x * a + b` for a scalar product
//! and sum), so the two give the same bits. f32 CPU tensors only: [`adamw_update`] says `false`
//! for anything else and the caller runs the tensor ops.

use candle_core::{CpuStorage, InplaceOp1, Layout, Result, Storage, Tensor};
use std::cell::RefCell;

/// The scalars of one update, each already rounded to f32 as the tensor ops would round them.
#[derive(Debug, Clone, Copy)]
pub struct AdamWUpdate {
    /// Clipping: the gradient is multiplied by this first (none: not clipped).
    pub grad_scale: Option<f32>,
    pub beta1: f32,
    pub one_minus_beta1: f32,
    pub beta2: f32,
    pub one_minus_beta2: f32,
    /// 1 / (1 - beta1^t), 1 / (1 - beta2^t): the bias corrections.
    pub inv_c1: f32,
    pub inv_c2: f32,
    pub eps: f32,
    /// Decoupled weight decay: the weight is multiplied by this first (none: no decay).
    pub decay: Option<f32>,
    pub lr: f32,
}

impl AdamWUpdate {
    /// One element: (weight, first moment, second moment) after the update with gradient `g`.
    #[inline(always)]
    fn apply(&self, w: f32, g: f32, m: f32, v: f32) -> (f32, f32, f32) {
        let g = match self.grad_scale {
            Some(s) => g * s + 0.0,
            None => g,
        };
        let m = (m * self.beta1 + 0.0) + (g * self.one_minus_beta1 + 0.0);
        let v = (v * self.beta2 + 0.0) + ((g * g) * self.one_minus_beta2 + 0.0);
        let denom = (v * self.inv_c2 + 0.0).sqrt() + self.eps;
        let update = (m * self.inv_c1 + 0.0) / denom;
        let w = match self.decay {
            Some(d) => w * d + 0.0,
            None => w,
        };
        (w - (update * self.lr + 0.0), m, v)
    }

    fn run(&self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            (*w, *m, *v) = self.apply(*w, g, *m, *v);
        }
    }
}

/// Updates `w` (a variable), `m` and `v` in place from gradient `g`; `false` (nothing changed)
/// unless all four are contiguous f32 CPU tensors of one size.
pub fn adamw_update(
    w: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    u: &AdamWUpdate,
) -> Result<bool> {
    let n = w.elem_count();
    let fits = |t: &Tensor| {
        t.device().is_cpu()
            && t.dtype() == candle_core::DType::F32
            && t.is_contiguous()
            && t.elem_count() == n
    };
    if ![w, g, m, v].into_iter().all(fits) {
        return Ok(false);
    }
    w.inplace_op1(&OnWeight { g, m, v, u })?;
    Ok(true)
}

/// The contiguous f32 values a layout covers in a storage.
fn slice_mut<'s>(s: &'s mut CpuStorage, l: &Layout) -> Result<&'s mut [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("adamw: not contiguous")
    };
    match s {
        CpuStorage::F32(d) => Ok(&mut d[a..b]),
        _ => candle_core::bail!("adamw: not f32"),
    }
}

/// Borrowed mutable values handed from one nested in-place op to the next.
type Held<'a> = RefCell<Option<&'a mut [f32]>>;

/// The outer op: holds the weight and opens the first moment.
struct OnWeight<'a> {
    g: &'a Tensor,
    m: &'a Tensor,
    v: &'a Tensor,
    u: &'a AdamWUpdate,
}

/// The middle op: holds the weight and the first moment, opens the second moment.
struct OnFirst<'a, 'w> {
    w: &'a Held<'w>,
    g: &'a Tensor,
    v: &'a Tensor,
    u: &'a AdamWUpdate,
}

/// The inner op: has all three and runs the update.
struct OnSecond<'a, 'w> {
    w: &'a Held<'w>,
    m: &'a Held<'w>,
    g: &'a Tensor,
    u: &'a AdamWUpdate,
}

impl InplaceOp1 for OnWeight<'_> {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let w = RefCell::new(Some(slice_mut(s, l)?));
        self.m.inplace_op1(&OnFirst {
            w: &w,
            g: self.g,
            v: self.v,
            u: self.u,
        })
    }
}

impl<'w> InplaceOp1 for OnFirst<'_, 'w> {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        // The moment's slice lives as long as this call; the weight's is re-borrowed for it.
        let mut w = self.w.borrow_mut();
        let w: &mut [f32] = w.as_deref_mut().expect("weight held by the outer op");
        let w = RefCell::new(Some(w));
        let m = RefCell::new(Some(slice_mut(s, l)?));
        self.v.inplace_op1(&OnSecond {
            w: &w,
            m: &m,
            g: self.g,
            u: self.u,
        })
    }
}

impl InplaceOp1 for OnSecond<'_, '_> {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        use rayon::prelude::*;
        const CHUNK: usize = 1 << 14;
        let v = slice_mut(s, l)?;
        let mut w = self.w.borrow_mut();
        let w = w.as_deref_mut().expect("weight held by the outer op");
        let mut m = self.m.borrow_mut();
        let m = m.as_deref_mut().expect("moment held by the middle op");
        let (gs, gl) = self.g.storage_and_layout();
        let Storage::Cpu(CpuStorage::F32(gd)) = &*gs else {
            candle_core::bail!("adamw: gradient not f32 on the CPU")
        };
        let Some((a, b)) = gl.contiguous_offsets() else {
            candle_core::bail!("adamw: gradient not contiguous")
        };
        let g = &gd[a..b];
        w.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((w, g), m), v)| self.u.run(w, g, m, v));
        Ok(())
    }
}

/// The sum of squares of a gradient, in f64 over f32 chunks (one pass, no buffer); none unless
/// it is a contiguous f32 CPU tensor.
pub fn sum_squares(g: &Tensor) -> Option<f64> {
    use rayon::prelude::*;
    if !g.device().is_cpu() || g.dtype() != candle_core::DType::F32 {
        return None;
    }
    let (s, l) = g.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(d)) = &*s else {
        return None;
    };
    let (a, b) = l.contiguous_offsets()?;
    Some(
        d[a..b]
            .par_chunks(1 << 14)
            .map(|c| c.iter().map(|&x| x * x).sum::<f32>() as f64)
            .sum(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The same rule as tensor ops (what the optimiser runs off the CPU).
    fn by_tensor_ops(
        w: &Tensor,
        g: &Tensor,
        m: &Tensor,
        v: &Tensor,
        u: &AdamWUpdate,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let g = match u.grad_scale {
            Some(s) => (g * s as f64)?,
            None => g.clone(),
        };
        let m = ((m * u.beta1 as f64)? + (&g * u.one_minus_beta1 as f64)?)?;
        let v = ((v * u.beta2 as f64)? + (g.sqr()? * u.one_minus_beta2 as f64)?)?;
        let denom = ((&v * u.inv_c2 as f64)?.sqrt()? + u.eps as f64)?;
        let update = ((&m * u.inv_c1 as f64)? / denom)?;
        let w = match u.decay {
            Some(d) => (w * d as f64)?,
            None => w.clone(),
        };
        Ok(((w - (update * u.lr as f64)?)?, m, v))
    }

    #[test]
    fn one_pass_gives_the_bits_of_the_tensor_ops() -> Result<()> {
        let dev = Device::Cpu;
        let n = 50_000;
        for (scale, decay) in [(None, None), (Some(0.37f32), Some(0.999f32))] {
            let u = AdamWUpdate {
                grad_scale: scale,
                beta1: 0.9,
                one_minus_beta1: 0.1,
                beta2: 0.999,
                one_minus_beta2: (1.0f64 - 0.999) as f32,
                inv_c1: (1.0 / (1.0 - 0.9f64.powi(3))) as f32,
                inv_c2: (1.0 / (1.0 - 0.999f64.powi(3))) as f32,
                eps: 1e-8,
                decay,
                lr: 3e-4,
            };
            let w = candle_core::Var::from_tensor(&Tensor::randn(0f32, 1., n, &dev)?)?;
            let g = Tensor::randn(0f32, 0.1, n, &dev)?;
            let m = (Tensor::randn(0f32, 0.01, n, &dev)? * 1.0)?;
            let v = Tensor::randn(0f32, 0.01, n, &dev)?.sqr()?;
            let (w2, m2, v2) = by_tensor_ops(w.as_tensor(), &g, &m, &v, &u)?;
            assert!(adamw_update(w.as_tensor(), &g, &m, &v, &u)?);
            for (a, b) in [(w.as_tensor(), &w2), (&m, &m2), (&v, &v2)] {
                let (a, b) = (a.to_vec1::<f32>()?, b.to_vec1::<f32>()?);
                assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
            }
        }
        Ok(())
    }

    #[test]
    fn other_dtypes_and_strided_tensors_are_left_to_the_caller() -> Result<()> {
        let dev = Device::Cpu;
        let u = AdamWUpdate {
            grad_scale: None,
            beta1: 0.9,
            one_minus_beta1: 0.1,
            beta2: 0.999,
            one_minus_beta2: 0.001,
            inv_c1: 10.0,
            inv_c2: 1000.0,
            eps: 1e-8,
            decay: None,
            lr: 1e-3,
        };
        let w = Tensor::ones((4, 3), candle_core::DType::F32, &dev)?;
        let t = w.t()?;
        let z = w.zeros_like()?;
        assert!(!adamw_update(&t, &t, &t, &t, &u)?);
        let w64 = w.to_dtype(candle_core::DType::F64)?;
        assert!(!adamw_update(&w64, &w64, &w64, &w64, &u)?);
        assert_eq!(w.to_vec2::<f32>()?, vec![vec![1.0; 3]; 4]);
        assert!(adamw_update(&w, &z, &z.copy()?, &z.copy()?, &u)?);
        Ok(())
    }

    #[test]
    fn sum_of_squares_in_one_pass() -> Result<()> {
        let g = Tensor::new(&[3f32, 4.0, 0.0, -12.0], &Device::Cpu)?;
        assert_eq!(sum_squares(&g), Some(169.0));
        Ok(())
    }
}
