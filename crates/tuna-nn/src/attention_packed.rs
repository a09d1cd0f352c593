//! Fused attention ([`crate::attention_op`]) on one packed q/k/v tensor, as a fused q/k/v
//! product gives it: (B, T, (H + 2 Hkv) D), q's columns first, then k's, then v's.
//!
//! Given three column slices of that tensor, the backward of the slices pads each gradient
//! to the full width and sums the three: three (B, T, 3HD) buffers and two adds per layer.
//! Here the op's input is the packed tensor itself, and its gradient is written once, each
//! head's columns in place.

use crate::attention_op::{dims_of, Attention, GradRows, Heads};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const OP: &str = "fused attention on packed q/k/v";

struct Packed {
    inner: Attention,
    /// (H, Hkv).
    heads: (usize, usize),
}

/// The q, k and v column ranges (start, length) of the packed last dimension.
fn ranges((h, hk): (usize, usize), width: usize) -> Result<[(usize, usize); 3]> {
    if !width.is_multiple_of(h + 2 * hk) {
        candle_core::bail!("{OP}: width {width} does not split into {h} + 2 x {hk} heads")
    }
    let d = width / (h + 2 * hk);
    Ok([(0, h * d), (h * d, hk * d), ((h + hk) * d, hk * d)])
}

/// q, k and v as views of the packed tensor.
fn views(qkv: &Tensor, heads: (usize, usize)) -> Result<[Tensor; 3]> {
    let [q, k, v] = ranges(heads, qkv.dim(2)?)?;
    Ok([
        qkv.narrow(2, q.0, q.1)?,
        qkv.narrow(2, k.0, k.1)?,
        qkv.narrow(2, v.0, v.1)?,
    ])
}

/// True when [`attention_packed`] can run: a 3-D CPU f32 `qkv` whose width splits into the
/// heads, and a CPU f32 mask without a gradient.
pub fn supported(qkv: &Tensor, heads: (usize, usize), mask: Option<&Tensor>) -> bool {
    let (h, hk) = heads;
    let cpu_f32 = |t: &Tensor| t.device().is_cpu() && t.dtype() == candle_core::DType::F32;
    match qkv.dims() {
        &[_, t, w] => {
            cpu_f32(qkv)
                && t > 0
                && hk > 0
                && h % hk == 0
                && w % (h + 2 * hk) == 0
                && mask.is_none_or(|m| cpu_f32(m) && !m.track_op())
        }
        _ => false,
    }
}

/// Self-attention of the packed `qkv` (B, T, (H + 2 Hkv) D) with `heads` = (H, Hkv) and an
/// additive `mask` broadcastable to (B, H, T, T); returns the merged heads (B, T, H D).
pub fn attention_packed(
    qkv: &Tensor,
    heads: (usize, usize),
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    if !supported(qkv, heads, mask) {
        candle_core::bail!(
            "{OP}: unsupported input {:?} for heads {heads:?}",
            qkv.dims()
        )
    }
    let [q, k, v] = views(qkv, heads)?;
    let op = Packed {
        inner: Attention::new(&q, &k, &v, mask, Some(heads))?,
        heads,
    };
    qkv.apply_op1(op)
}

impl CustomOp1 for Packed {
    fn name(&self) -> &'static str {
        "tuna-attention-packed"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let r = ranges(self.heads, l.dims()[2])?;
        let (h, hk) = self.heads;
        let view = |(at, len): (usize, usize), n| Heads::new(s, &l.narrow(2, at, len)?, Some(n));
        let (q, k, v) = (view(r[0], h)?, view(r[1], hk)?, view(r[2], hk)?);
        self.inner.forward_heads(&q, &k, &v)
    }

    fn bwd(&self, qkv: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (h, hk) = self.heads;
        let [q, k, v] = views(qkv, self.heads)?;
        let [b, _, t, _] = dims_of(&q, Some(h))?;
        let w = qkv.dim(2)?;
        let mut g = vec![0f32; b * t * w];
        let heads = (Some(h), Some(hk));
        self.inner
            .with_heads([&q, &k, &v], heads, res, grad, |views| {
                g.par_chunks_mut((t * w).max(1))
                    .enumerate()
                    .try_for_each(|(bi, buf)| {
                        let rows = GradRows::Packed { buf, h, hk };
                        self.inner.backward_row(rows, views, bi)
                    })
            })?;
        Ok(Some(Tensor::from_vec(g, (b, t, w), qkv.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.max_all()?.to_scalar()
    }

    /// Grouped heads (4 query heads on 2 key/value heads) with a padding mask: the same output
    /// and packed gradient as the op on three column slices (whose gradients candle pads and
    /// sums).
    #[test]
    fn matches_attention_on_slices_in_value_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let (b, h, hk, t, d) = (2, 4, 2, 5, 3);
        let w = (h + 2 * hk) * d;
        let qkv = Var::from_tensor(&Tensor::randn(0f32, 1., (b, t, w), &dev)?)?;
        let keys = Tensor::new(&[[1u32, 1, 1, 0, 0], [1, 1, 1, 1, 1]], &dev)?;
        let mask = crate::mask::padding_mask(&keys)?;
        let probe = Tensor::randn(0f32, 1., (b, t, h * d), &dev)?;
        for m in [None, Some(&mask)] {
            let packed = attention_packed(qkv.as_tensor(), (h, hk), m)?;
            let [q, k, v] = views(qkv.as_tensor(), (h, hk))?;
            let sliced = crate::attention_op::attention_rows(&q, &k, &v, (h, hk), m)?;
            assert!(max_diff(&packed, &sliced)? < 1e-6);
            let g1 = (&packed * &probe)?.sum_all()?.backward()?;
            let g2 = (&sliced * &probe)?.sum_all()?.backward()?;
            let (a, c) = (g1.get(&qkv).unwrap(), g2.get(&qkv).unwrap());
            assert!(max_diff(a, c)? < 1e-6, "gradient differs");
            assert!(a.abs()?.sum_all()?.to_scalar::<f32>()? > 0.0);
        }
        Ok(())
    }

    #[test]
    fn a_width_that_does_not_split_into_the_heads_is_refused() -> Result<()> {
        let x = Tensor::zeros((1, 2, 10), candle_core::DType::F32, &Device::Cpu)?;
        assert!(!supported(&x, (2, 2), None));
        assert!(attention_packed(&x, (2, 2), None).is_err());
        assert!(supported(&x.narrow(2, 0, 9)?, (1, 1), None));
        Ok(())
    }
}
