//! Scaled dot-product attention and the head split/merge around it.

use crate::ops;
use candle_core::{Result, Tensor};

/// (B, T, H*D) -> (B, H, T, D), contiguous.
pub fn split_heads(x: &Tensor, n_heads: usize) -> Result<Tensor> {
    let (b, t, hd) = x.dims3()?;
    x.reshape((b, t, n_heads, hd / n_heads))?
        .transpose(1, 2)?
        .contiguous()
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

/// `softmax(q k^T / sqrt(D) + mask) v`. `q`: (B, H, Tq, D); `k`, `v`: (B, H, Tk, D);
/// `mask`: additive, broadcastable to (B, H, Tq, Tk) (0 where allowed, a large negative where not).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let d = q.dim(3)?;
    let scores = (q.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?; // (B, H, Tq, Tk)
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    let probs = ops::softmax_last_dim(&scores)?;
    probs.matmul(v)
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
