//! Attention without a gradient on a decoding cache: the query heads that share a key/value
//! head are multiplied with it as one matrix, and the keys and values are read where they lie
//! (views of the cache's buffers), so a step copies neither the cache nor its heads repeated
//! for grouped-query attention. Decoding-sized queries skip the products
//! (`decode_attention`).

use crate::{decode_attention, ops};
use candle_core::{Result, Tensor};

/// `softmax(q k^T / sqrt(D) + mask) v` as [`crate::attention::attention`] defines it, or
/// `None` where the mask's shape is not one this handles (the caller's general path then
/// runs). `q` (B, H, Tq, D); `k`, `v` (B, Hkv, Tk, D), rows of each matrix contiguous.
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Option<Tensor>> {
    let (b, h, tq, d) = q.dims4()?;
    let (hkv, tk) = (k.dim(1)?, k.dim(2)?);
    if hkv == 0 || h % hkv != 0 || k.stride()[3] != 1 || v.stride()[3] != 1 {
        return Ok(None);
    }
    let rep = h / hkv;
    // (1 or B, Tq, Tk)-shaped mask, or None.
    let mask = match mask {
        None => None,
        Some(m) => match *m.dims() {
            [tq2, tk2] if (tq2, tk2) == (tq, tk) => Some(m.reshape((1, tq, tk))?),
            [mb, 1, tq2, tk2] if (tq2, tk2) == (tq, tk) && (mb == b || mb == 1) => {
                Some(m.reshape((mb, tq, tk))?)
            }
            _ => return Ok(None),
        },
    };
    // Query head `i` uses key/value head `i / rep`: the rep heads of a group are adjacent.
    let q = q.contiguous()?.reshape((b, hkv, rep * tq, d))?;
    if rep * tq <= decode_attention::MAX_ROWS {
        let mask = mask.as_ref().map(Tensor::contiguous).transpose()?;
        if let Some(out) = decode_attention::attention(&q, k, v, mask.as_ref(), (rep, tq))? {
            return Ok(Some(out));
        }
    }
    // (B or 1, 1, 1, Tq, Tk): broadcast over the key/value heads and each group's heads.
    let mask = match mask {
        Some(m) => Some(m.reshape((m.dim(0)?, 1, 1, tq, tk))?),
        None => None,
    };
    let scores = (q.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?; // (B, Hkv, rep*Tq, Tk)
    let scores = scores.reshape((b, hkv, rep, tq, tk))?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(&m)?,
        None => scores,
    };
    let probs = ops::softmax_last_dim(&scores)?.reshape((b, hkv, rep * tq, tk))?;
    Ok(Some(probs.matmul(v)?.reshape((b, h, tq, d))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::repeat_kv;
    use candle_core::{Device, D};

    /// The general composition: heads repeated, then candle's products and softmax.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let rep = q.dim(1)? / k.dim(1)?;
        let (k, v) = (
            repeat_kv(&k.contiguous()?, rep)?,
            repeat_kv(&v.contiguous()?, rep)?,
        );
        let s = (q.matmul(&k.t()?)? * (1.0 / (q.dim(3)? as f64).sqrt()))?;
        let s = match mask {
            Some(m) => s.broadcast_add(m)?,
            None => s,
        };
        candle_nn::ops::softmax(&s, D::Minus1)?.matmul(&v)
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    }

    /// Grouped heads on views of a larger buffer (as the cache hands them out) give the
    /// general composition's numbers, with no mask, a (Tq, Tk) mask and a per-row mask, for a
    /// decoding-sized query (`decode_attention`) and a longer one (the products).
    #[test]
    fn matches_repeated_heads_on_cache_views() -> Result<()> {
        let dev = Device::Cpu;
        let kb = Tensor::randn(0f32, 1., (2, 2, 12, 8), &dev)?;
        let vb = Tensor::randn(0f32, 1., (2, 2, 12, 8), &dev)?;
        let (k, v) = (kb.narrow(2, 0, 9)?, vb.narrow(2, 0, 9)?);
        for tq in [3, 7] {
            let q = Tensor::randn(0f32, 1., (2, 6, tq, 8), &dev)?;
            // Query i sees keys up to 9 - tq + i; the second batch row's first key is padding.
            let causal: Vec<f32> = (0..tq * 9)
                .map(|j| {
                    if j % 9 > 9 - tq + j / 9 {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
                .collect();
            let causal = Tensor::from_vec(causal, (tq, 9), &dev)?;
            let pad: Vec<f32> = (0..tq * 9)
                .map(|j| if j % 9 == 0 { -1e9 } else { 0.0 })
                .collect();
            let pad = (Tensor::from_vec(pad, (tq, 9), &dev)? + &causal)?;
            let rows = Tensor::stack(&[&causal, &pad], 0)?.unsqueeze(1)?;
            for mask in [None, Some(&causal), Some(&rows)] {
                let got = attention(&q, &k, &v, mask)?.expect("a shape it handles");
                assert!(
                    max_diff(&got, &reference(&q, &k, &v, mask)?)? < 1e-5,
                    "tq {tq}"
                );
            }
        }
        let q = Tensor::randn(0f32, 1., (2, 6, 3, 8), &dev)?;
        let (k, v) = (kb.narrow(2, 0, 5)?, vb.narrow(2, 0, 5)?);
        let per_head = Tensor::zeros((2, 6, 3, 5), candle_core::DType::F32, &dev)?;
        assert!(attention(&q, &k, &v, Some(&per_head))?.is_none());
        Ok(())
    }
}
