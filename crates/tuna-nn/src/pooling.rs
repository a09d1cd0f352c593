//! Pooling token states (B, T, H) into one vector per sequence, padding-aware.

use candle_core::{DType, Result, Tensor, D};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// How a sequence of hidden states becomes one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The first token's state (BERT's `[CLS]`).
    Cls,
    /// Mean over the real (non-padding) tokens.
    Mean,
    /// The last real token's state (causal LMs).
    Last,
    /// A learned weighting of the real tokens: softmax over the tokens of a trained score
    /// `h · w`, then the weighted mean. `w` belongs to a trained classifier head (see
    /// [`attention_pool`]); fixed embeddings cannot use it.
    Attention,
}

impl FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            "last" => Ok(Pooling::Last),
            "attention" => Ok(Pooling::Attention),
            _ => Err(format!(
                "unknown pooling `{s}`: use cls, mean, last or attention"
            )),
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::Last => "last",
            Pooling::Attention => "attention",
        })
    }
}

impl Pooling {
    /// True for a pooling with trained weights ([`Pooling::Attention`]).
    pub fn is_learned(self) -> bool {
        self == Pooling::Attention
    }

    /// `hidden`: (B, T, H); `mask`: (B, T) of 0/1 with real tokens first (right padding).
    /// [`Pooling::Attention`] needs its trained score vector: use [`attention_pool`].
    pub fn pool(&self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match self {
            Pooling::Attention => candle_core::bail!(
                "attention pooling is learned with a classifier head: \
                 fixed embeddings need cls, mean or last"
            ),
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
            Pooling::Mean => {
                let m = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?; // (B, T, 1)
                let sum = hidden.broadcast_mul(&m)?.sum(1)?; // (B, H)
                let count = m.sum(1)?.clamp(1e-9, f64::MAX)?; // (B, 1)
                sum.broadcast_div(&count)
            }
            Pooling::Last => {
                let (b, _t, h) = hidden.dims3()?;
                let last = (mask.to_dtype(DType::F32)?.sum(1)? - 1.0)?
                    .clamp(0f32, f32::MAX)?
                    .to_dtype(DType::U32)?; // (B,)
                let idx = last.reshape((b, 1, 1))?.expand((b, 1, h))?.contiguous()?;
                hidden.contiguous()?.gather(&idx, 1)?.squeeze(1)
            }
        }
    }
}

/// Attention pooling of `hidden` (B, T, H) with the score vector `w` (1, H): token t of a
/// sequence gets the weight softmax_t(h_t · w) over its real tokens (`mask` (B, T) of 0/1).
/// With `w` = 0 this is the mean over the real tokens.
pub fn attention_pool(hidden: &Tensor, mask: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (_, _, h) = hidden.dims3()?;
    // Scores (B, T); padding gets -1e9 before the softmax, where exp underflows to exactly 0.
    let scores = hidden.broadcast_mul(&w.reshape((1, 1, h))?)?.sum(2)?;
    let pad = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?;
    let weights = candle_nn::ops::softmax(&(scores + pad)?, D::Minus1)?; // (B, T)
    weights
        .unsqueeze(1)?
        .matmul(&hidden.contiguous()?)?
        .squeeze(1)
}

/// Scales each row to unit L2 norm.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    x.broadcast_div(&norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn pools_ignore_padding() -> Result<()> {
        let dev = Device::Cpu;
        // B=2, T=3, H=2; second sequence has one padding token.
        let h = Tensor::new(
            &[
                [[1f32, 2.], [3., 4.], [5., 6.]],
                [[1., 1.], [3., 3.], [100., 100.]],
            ],
            &dev,
        )?;
        let m = Tensor::new(&[[1u32, 1, 1], [1, 1, 0]], &dev)?;
        let mean: Vec<Vec<f32>> = Pooling::Mean.pool(&h, &m)?.to_vec2()?;
        assert_eq!(mean, vec![vec![3., 4.], vec![2., 2.]]);
        let last: Vec<Vec<f32>> = Pooling::Last.pool(&h, &m)?.to_vec2()?;
        assert_eq!(last, vec![vec![5., 6.], vec![3., 3.]]);
        let cls: Vec<Vec<f32>> = Pooling::Cls.pool(&h, &m)?.to_vec2()?;
        assert_eq!(cls, vec![vec![1., 2.], vec![1., 1.]]);
        assert!(Pooling::Attention.pool(&h, &m).is_err());
        let zero = Tensor::zeros((1, 2), DType::F32, &dev)?;
        let even: Vec<Vec<f32>> = attention_pool(&h, &m, &zero)?.to_vec2()?;
        assert_eq!(even, mean);
        // A score vector that prefers large first coordinates puts the weight on the largest
        // real token, never on the padding.
        let w = Tensor::new(&[[10f32, 0.]], &dev)?;
        let peaked: Vec<Vec<f32>> = attention_pool(&h, &m, &w)?.to_vec2()?;
        assert!((peaked[0][0] - 5.0).abs() < 1e-4 && (peaked[1][0] - 3.0).abs() < 1e-4);
        let n: Vec<Vec<f32>> = l2_normalize(&Tensor::new(&[[3f32, 4.]], &dev)?)?.to_vec2()?;
        assert_eq!(n, vec![vec![0.6, 0.8]]);
        Ok(())
    }
}
