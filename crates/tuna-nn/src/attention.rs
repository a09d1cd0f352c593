//! Scaled dot-product attention and the head split/merge around it.

use crate::{attention_op, fallback, grouped_attention, ops};
use candle_core::{Result, Tensor};

/// (B, T, H*D) -> (B, H, T, D): contiguous, or a strided view when `x` takes part in a
/// gradient (the training attention reads heads in place).
pub fn split_heads(x: &Tensor, n_heads: usize) -> Result<Tensor> {
    let (b, t, hd) = x.dims3()?;
    let heads = x.reshape((b, t, n_heads, hd / n_heads))?.transpose(1, 2)?;
    if x.track_op() {
        return Ok(heads);
    }
    heads.contiguous()
}

/// (B, H, T, D) -> (B, T, H*D).
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    x.transpose(1, 2)?.contiguous()?.reshape((b, t, h * d))
}

/// Repeats each key/value head `n_rep` times for grouped-query attention: (B, Hkv, T, D) ->
/// (B, Hkv*n_rep, T, D), head `i` of the output uses kv head `i / n_rep` (as transformers'
/// `repeat_kv`).
pub fn repeat_kv(x: &Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.clone());
    }
    let (b, h, t, d) = x.dims4()?;
    x.unsqueeze(2)?
        .expand((b, h, n_rep, t, d))?
        .reshape((b, h * n_rep, t, d))
}

/// `softmax(q k^T / sqrt(D) + mask) v`. `q`: (B, H, Tq, D); `k`, `v`: (B, Hkv, Tk, D) with H a
/// multiple of Hkv (grouped-query attention: query head `i` uses key/value head `i / (H / Hkv)`);
/// `mask`: additive, broadcastable to (B, H, Tq, Tk) (0 where allowed, a large negative where not).
///
/// When a gradient flows through q, k or v, this is one op with its own backward on the CPU
/// ([`attention_op`]); otherwise candle's products and fused softmax.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let tracked = q.track_op() || k.track_op() || v.track_op();
    if tracked && attention_op::supported(q, k, v, mask) {
        return attention_op::attention(q, k, v, mask);
    }
    if tracked && fallback::off_kernel(q) {
        fallback::note("tuna-attention", q, "candle's products and softmax");
    }
    if !tracked {
        if let Some(out) = grouped_attention::attention(q, k, v, mask)? {
            return Ok(out);
        }
    }
    let rep = q.dim(1)? / k.dim(1)?.max(1);
    let (q, k, v) = (
        q.contiguous()?,
        repeat_kv(k, rep)?.contiguous()?,
        repeat_kv(v, rep)?.contiguous()?,
    );
    let d = q.dim(3)?;
    let scores = (q.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?; // (B, H, Tq, Tk)
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    let probs = ops::softmax_last_dim(&scores)?;
    probs.matmul(&v)
}

/// Multi-head attention on rows: `q`, `k`, `v` (B, T, H) split into `n_heads`, key and value
/// `prefix`es (B, nH, P, D) placed before the keys, the heads merged again: (B, Tq, H). When a
/// gradient flows, the heads are read and written in place by one op ([`attention_op`]).
pub fn attention_rows(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    n_heads: usize,
    mask: Option<&Tensor>,
    prefix: Option<&(Tensor, Tensor)>,
) -> Result<Tensor> {
    let tracked = [
        Some(q),
        Some(k),
        Some(v),
        prefix.map(|p| &p.0),
        prefix.map(|p| &p.1),
    ]
    .iter()
    .flatten()
    .any(|t| t.track_op());
    if tracked {
        let (k, v) = match prefix {
            Some((pk, pv)) => {
                let rows = |p: &Tensor| -> Result<Tensor> {
                    let (b, h, n, d) = p.dims4()?;
                    p.transpose(1, 2)?.reshape((b, n, h * d))
                };
                (
                    Tensor::cat(&[&rows(pk)?, k], 1)?,
                    Tensor::cat(&[&rows(pv)?, v], 1)?,
                )
            }
            None => (k.clone(), v.clone()),
        };
        let heads = (n_heads, n_heads);
        if attention_op::supported_rows(q, &k, &v, heads, mask) {
            return attention_op::attention_rows(q, &k, &v, heads, mask);
        }
    }
    let (q, mut k, mut v) = (
        split_heads(q, n_heads)?,
        split_heads(k, n_heads)?,
        split_heads(v, n_heads)?,
    );
    if let Some((pk, pv)) = prefix {
        k = Tensor::cat(&[pk, &k], 2)?;
        v = Tensor::cat(&[pv, &v], 2)?;
    }
    merge_heads(&attention(&q, &k, &v, mask)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn split_merge_round_trip_and_uniform_attention() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 24., &dev)?.reshape((1, 3, 8))?;
        let s = split_heads(&x, 2)?;
        assert_eq!(s.dims(), &[1, 2, 3, 4]);
        assert_eq!(merge_heads(&s)?.to_vec3::<f32>()?, x.to_vec3::<f32>()?);
        // Zero queries attend uniformly: output = mean of values.
        let q = Tensor::zeros((1, 1, 2, 4), candle_core::DType::F32, &dev)?;
        let v = Tensor::arange(0f32, 12., &dev)?.reshape((1, 1, 3, 4))?;
        let out = attention(&q, &v, &v, None)?;
        let want = v.mean_keepdim(2)?.broadcast_as((1, 1, 2, 4))?;
        let diff = (out - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5);
        Ok(())
    }

    #[test]
    fn repeat_kv_orders_heads_like_transformers() -> Result<()> {
        let x = Tensor::arange(0f32, 2., &Device::Cpu)?.reshape((1, 2, 1, 1))?;
        let r: Vec<f32> = repeat_kv(&x, 3)?.flatten_all()?.to_vec1()?;
        assert_eq!(r, vec![0., 0., 0., 1., 1., 1.]);
        Ok(())
    }
}
