//! DoRA's update of a frozen linear layer (Liu et al., PEFT's `use_dora`): the LoRA-updated
//! weight `W' = W + B A * alpha / r` is split into a trained magnitude per output row `m` and a
//! direction `W' / ||W'||`, so the layer computes `m / ||W'|| * (x W'^T) + b`.
//!
//! As in PEFT (and the paper's section 4.3), the row norm is treated as a constant in the
//! backward pass, and with dropout in training the update and the rescaled base product both
//! see the dropped-out input:
//! `y = x W^T + b + (s - 1) * (dropout(x) W^T) + s * dropout(x) A^T B^T * alpha / r`,
//! `s = m / ||W'||`.

use crate::lora::layer::LoraDelta;
use candle_core::{Result, Tensor};
use tuna_nn::dropout::{dropout, training};
use tuna_nn::linear::flatten_rows;
use tuna_nn::{linear_op, Visitor, Weight, WeightDelta};

/// LoRA's matrices plus the magnitude vector `m` (out,).
#[derive(Debug, Clone)]
pub struct DoraDelta {
    pub lora: LoraDelta,
    pub magnitude: Tensor,
}

/// `||W + dense||` per output row, (out,).
fn row_norms(weight: &Tensor, dense: &Tensor) -> Result<Tensor> {
    (weight + dense)?.sqr()?.sum(1)?.sqrt()
}

impl DoraDelta {
    /// A fresh DoRA layer: LoRA's initialisation (`B` zero) and `m = ||W||`, so the layer
    /// starts unchanged.
    pub fn init(lora: LoraDelta, weight: &Tensor) -> Result<Self> {
        let magnitude = weight.sqr()?.sum(1)?.sqrt()?;
        Ok(Self { lora, magnitude })
    }

    /// `m / ||W + B A * scale||`, (out,), with the norm as a constant.
    fn row_scale(&self, weight: &Tensor) -> Result<Tensor> {
        let norm = row_norms(weight, &self.lora.dense()?)?.detach();
        self.magnitude.broadcast_div(&norm)
    }
}

impl WeightDelta for DoraDelta {
    fn output(
        &self,
        x: &Tensor,
        base: Tensor,
        weight: &Weight,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        // DoRA needs the weight's values (its row norms): a quantised one is decoded per call.
        let weight = &weight.dense()?;
        let shape = base.shape().clone();
        let (_, x2) = flatten_rows(x)?;
        let base2 = base.reshape((x2.dim(0)?, ()))?;
        let dropped = training() && self.lora.dropout > 0.0;
        let xd = dropout(&x2, self.lora.dropout)?;
        // The base product without bias, of the input the update sees.
        let plain = if dropped {
            if linear_op::applies(&xd, weight, None) {
                linear_op::linear(&xd, weight, None)?
            } else {
                xd.matmul(&weight.t()?)?
            }
        } else {
            match bias {
                Some(b) => base2.broadcast_sub(b)?,
                None => base2.clone(),
            }
        };
        let s = self.row_scale(weight)?;
        let update = self.lora.product(&xd)?;
        let y = (base2 + plain.broadcast_mul(&(&s - 1.0)?)?)?;
        (y + update.broadcast_mul(&s)?)?.reshape(shape)
    }

    fn visit(&mut self, module: &str, f: &mut Visitor) -> Result<()> {
        self.lora.visit_ab(module, f)?;
        f(
            &format!("{module}.lora_magnitude_vector"),
            &mut self.magnitude,
        )
    }

    fn merge(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<(Tensor, Option<Tensor>)> {
        let dense = self.lora.dense()?;
        let s = self.magnitude.broadcast_div(&row_norms(weight, &dense)?)?;
        let merged = (weight + dense)?.broadcast_mul(&s.unsqueeze(1)?)?;
        Ok((merged, bias.cloned()))
    }

    fn clone_box(&self) -> Box<dyn WeightDelta> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Module};
    use tuna_core::Rng;
    use tuna_nn::Linear;

    #[test]
    fn starts_unchanged_and_merges_to_the_same_output() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = Rng::new(3);
        let w = tuna_nn::init::normal((5, 4), 1.0, &mut rng, &dev)?;
        let b = tuna_nn::init::normal(5, 1.0, &mut rng, &dev)?;
        let x = tuna_nn::init::normal((3, 4), 1.0, &mut rng, &dev)?;
        let lora = LoraDelta::init(4, 5, 2, 4.0, 0.0, &mut rng, &dev)?;
        let mut lin = Linear::new(w.clone(), Some(b.clone()));
        let plain = lin.forward(&x)?;
        lin.delta = Some(Box::new(DoraDelta::init(lora, &w)?));
        let d = (lin.forward(&x)? - &plain)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(d < 1e-5, "not a no-op at init: {d}");
        // Move away from the initialisation, then compare with the merged weight.
        let mut dora = DoraDelta::init(LoraDelta::init(4, 5, 2, 4.0, 0.0, &mut rng, &dev)?, &w)?;
        dora.lora.b = tuna_nn::init::normal((5, 2), 1.0, &mut rng, &dev)?;
        dora.magnitude = (&dora.magnitude * 1.3)?;
        lin.delta = Some(Box::new(dora));
        let adapted = lin.forward(&x)?;
        lin.merge_delta()?;
        let d = (lin.forward(&x)? - adapted)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(d < 1e-4, "merged differs by {d}");
        Ok(())
    }
}
