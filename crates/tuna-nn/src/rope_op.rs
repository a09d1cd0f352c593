//! Rotary position embedding in training as one op with its own backward.
//!
//! candle_nn's differentiable `rope_slow` builds the rotation from a dozen tensor ops (the
//! tables concatenated, `rotate_half` as two slices, a negation and a concatenation, two
//! broadcast products and a sum), each a pass over the queries or keys and a node whose
//! gradient candle sums into a fresh buffer. Here the forward reads each (batch, head,
//! position) row of `x` once, strided as the head split leaves it, and writes the rotated row;
//! the backward is the same rotation by the negated angle (a rotation's transpose), since the
//! tables are constants.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Arc;

/// True when [`rope`] can run: CPU f32 `x` (B, H, T, D) with unit stride in D, and tables
/// (T, D/2) on the CPU in f32.
pub fn supported(x: &Tensor, cos: &Tensor, sin: &Tensor) -> bool {
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    let (Ok((_, _, t, d)), Ok((tc, half))) = (x.dims4(), cos.dims2()) else {
        return false;
    };
    cpu_f32(x)
        && cpu_f32(cos)
        && cpu_f32(sin)
        && sin.dims() == cos.dims()
        && tc == t
        && d == 2 * half
        && x.stride()[3] == 1
}

/// `x` rotated by the angles whose cosines and sines are `cos`, `sin` (T, D/2), Hugging Face's
/// half-split layout: `[x1 c - x2 s, x2 c + x1 s]`. Differentiable in `x`; the output is
/// contiguous (B, H, T, D).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !supported(x, cos, sin) {
        candle_core::bail!("rope: unsupported inputs {:?} {:?}", x.dims(), cos.dims())
    }
    x.apply_op1(Rope {
        cos: Arc::new(cos.flatten_all()?.to_vec1()?),
        sin: Arc::new(sin.flatten_all()?.to_vec1()?),
        inverse: false,
    })
}

struct Rope {
    /// (T, D/2) row-major.
    cos: Arc<Vec<f32>>,
    sin: Arc<Vec<f32>>,
    /// Rotate by the negated angles (the backward).
    inverse: bool,
}

/// Rotates one row `x` (D values) into `out` with the tables' row `c`, `s` (D/2 values each);
/// `sign` is -1 for the inverse rotation.
#[inline(always)]
fn rotate_row(x: &[f32], c: &[f32], s: &[f32], sign: f32, out: &mut [f32]) {
    let half = c.len();
    let (x1, x2) = x.split_at(half);
    let (o1, o2) = out.split_at_mut(half);
    for i in 0..half {
        let (ci, si) = (c[i], sign * s[i]);
        o1[i] = x1[i] * ci - x2[i] * si;
        o2[i] = x2[i] * ci + x1[i] * si;
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "tuna-rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = s else {
            candle_core::bail!("{}: only f32 is supported", self.name())
        };
        let (b, h, t, d) = l.shape().dims4()?;
        let st = l.stride();
        if st[3] != 1 {
            candle_core::bail!("{}: the head dimension must have unit stride", self.name())
        }
        let (cos, sin) = (&self.cos, &self.sin);
        let half = d / 2;
        if cos.len() != t * half || sin.len() != t * half {
            candle_core::bail!("{}: tables do not cover {t} positions", self.name())
        }
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let start = l.start_offset();
        let last = start + (b.max(1) - 1) * st[0] + (h.max(1) - 1) * st[1] + (t.max(1) - 1) * st[2];
        if b * h * t * d > 0 && last + d > data.len() {
            candle_core::bail!("{}: layout runs past its storage", self.name())
        }
        let mut out = vec![0f32; b * h * t * d];
        // One work item per (batch, head): T rows of D values.
        out.par_chunks_mut((t * d).max(1))
            .enumerate()
            .for_each(|(bh, block)| {
                let base = start + (bh / h.max(1)) * st[0] + (bh % h.max(1)) * st[1];
                for (p, o) in block.chunks_mut(d.max(1)).enumerate() {
                    let at = base + p * st[2];
                    let c = &cos[p * half..(p + 1) * half];
                    let s = &sin[p * half..(p + 1) * half];
                    rotate_row(&data[at..at + d], c, s, sign, o);
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((b, h, t, d))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let back = Rope {
            cos: Arc::clone(&self.cos),
            sin: Arc::clone(&self.sin),
            inverse: !self.inverse,
        };
        Ok(Some(grad.apply_op1_no_bwd(&back)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_candle_rope_slow_in_value_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let (b, h, t, d) = (2, 3, 5, 8);
        // A head split: (B, T, H, D) viewed as (B, H, T, D), strided.
        let raw = Var::from_tensor(&Tensor::randn(0f32, 1., (b, t, h, d), &dev)?)?;
        let x = raw.as_tensor().transpose(1, 2)?;
        let cos = Tensor::randn(0f32, 1., (t, d / 2), &dev)?;
        let sin = Tensor::randn(0f32, 1., (t, d / 2), &dev)?;
        let weights = Tensor::randn(0f32, 1., (b, h, t, d), &dev)?;
        let ours = rope(&x, &cos, &sin)?;
        let theirs = candle_nn::rotary_emb::rope_slow(&x, &cos, &sin)?;
        let diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "values differ by {diff}");
        let g = (ours * &weights)?.sum_all()?.backward()?;
        let g_ref = (theirs * &weights)?.sum_all()?.backward()?;
        let (a, r) = (
            g.get(raw.as_tensor()).unwrap(),
            g_ref.get(raw.as_tensor()).unwrap(),
        );
        let diff = (a - r)?.abs()?.max_all()?.to_scalar::<f32>()?;
        // Fails when the backward rotates by +angle instead of -angle.
        assert!(diff < 1e-5, "gradients differ by {diff}");
        Ok(())
    }

    #[test]
    fn refuses_tables_that_do_not_fit() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 1, 4, 8), candle_core::DType::F32, &dev)?;
        let short = Tensor::zeros((3, 4), candle_core::DType::F32, &dev)?;
        assert!(!supported(&x, &short, &short));
        assert!(rope(&x, &short, &short).is_err());
        Ok(())
    }
}
