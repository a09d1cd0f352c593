//! IA3's learned rescaling of a frozen linear layer (Liu et al., PEFT's `ia3_l`): a vector
//! that scales the layer's output rows (keys, values), or on a feed-forward layer its input,
//! `y = (x * l) W^T + b`. Ones at initialisation, so the layer starts unchanged.

use candle_core::{DType, Device, Result, Tensor};
use tuna_nn::{Visitor, Weight, WeightDelta};

/// The scaling vector: (1, in) on a feed-forward layer, else (out, 1), as PEFT stores it.
#[derive(Debug, Clone)]
pub struct Ia3Delta {
    pub l: Tensor,
    pub feedforward: bool,
}

impl Ia3Delta {
    /// Ones of PEFT's shape for a layer of `in_dim` -> `out_dim`.
    pub fn init(in_dim: usize, out_dim: usize, feedforward: bool, dev: &Device) -> Result<Self> {
        let shape = if feedforward {
            (1, in_dim)
        } else {
            (out_dim, 1)
        };
        Ok(Self {
            l: Tensor::ones(shape, DType::F32, dev)?,
            feedforward,
        })
    }

    /// The vector as one row, (1, in) or (1, out).
    fn row(&self) -> Result<Tensor> {
        self.l.reshape((1, ()))
    }
}

impl WeightDelta for Ia3Delta {
    fn input(&self, x: &Tensor) -> Result<Option<Tensor>> {
        if self.feedforward {
            Ok(Some(x.broadcast_mul(&self.row()?)?))
        } else {
            Ok(None)
        }
    }

    fn output(
        &self,
        _x: &Tensor,
        base: Tensor,
        _weight: &Weight,
        _bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        if self.feedforward {
            Ok(base)
        } else {
            base.broadcast_mul(&self.l.flatten_all()?)
        }
    }

    fn visit(&mut self, module: &str, f: &mut Visitor) -> Result<()> {
        f(&format!("{module}.ia3_l"), &mut self.l)
    }

    fn merge(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<(Tensor, Option<Tensor>)> {
        if self.feedforward {
            // (x * l) W^T = x (W * l)^T: scale the columns.
            Ok((weight.broadcast_mul(&self.row()?)?, bias.cloned()))
        } else {
            let l = self.l.flatten_all()?;
            let b = bias.map(|b| b.mul(&l)).transpose()?;
            Ok((weight.broadcast_mul(&self.l)?, b))
        }
    }

    fn clone_box(&self) -> Box<dyn WeightDelta> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Module;
    use tuna_core::Rng;
    use tuna_nn::Linear;

    #[test]
    fn scales_input_or_output_and_merges_to_the_same_output() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(5);
        let w = tuna_nn::init::normal((3, 4), 1.0, &mut rng, &dev)?;
        let b = tuna_nn::init::normal(3, 1.0, &mut rng, &dev)?;
        let x = tuna_nn::init::normal((2, 4), 1.0, &mut rng, &dev)?;
        for ff in [false, true] {
            let mut lin = Linear::new(w.clone(), Some(b.clone()));
            let plain = lin.forward(&x)?;
            let mut d = Ia3Delta::init(4, 3, ff, &dev)?;
            lin.delta = Some(Box::new(d.clone()));
            let same = (lin.forward(&x)? - &plain)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(same < 1e-6);
            d.l = tuna_nn::init::normal(d.l.shape().clone(), 1.0, &mut rng, &dev)?;
            lin.delta = Some(Box::new(d.clone()));
            let adapted = lin.forward(&x)?;
            let want = if ff {
                x.broadcast_mul(&d.l)?.matmul(&w.t()?)?.broadcast_add(&b)?
            } else {
                plain.broadcast_mul(&d.l.flatten_all()?)?
            };
            let e = (&adapted - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(e < 1e-5, "feedforward {ff}: {e}");
            lin.merge_delta()?;
            let m = (lin.forward(&x)? - adapted)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(m < 1e-5, "feedforward {ff}: merged differs by {m}");
        }
        Ok(())
    }
}
