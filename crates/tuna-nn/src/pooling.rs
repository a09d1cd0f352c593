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
}

impl FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cls" => Ok(Pooling::Cls),
            "mean" => Ok(Pooling::Mean),
            "last" => Ok(Pooling::Last),
            _ => Err(format!("unknown pooling `{s}`: use cls, mean or last")),
        }
    }
}

impl std::fmt::Display for Pooling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::Last => "last",
        })
    }
}

impl Pooling {
    /// `hidden`: (B, T, H); `mask`: (B, T) of 0/1 with real tokens first (right padding).
    pub fn pool(&self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match self {
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
        let n: Vec<Vec<f32>> = l2_normalize(&Tensor::new(&[[3f32, 4.]], &dev)?)?.to_vec2()?;
        assert_eq!(n, vec![vec![0.6, 0.8]]);
        Ok(())
    }
}
