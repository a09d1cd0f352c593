//! The product of a trainable input with a frozen weight, `x W^T + b`, whose backward computes
//! only the input's gradient.
//!
//! candle's matmul backward always computes both operands' gradients, and keeps the weight's
//! until the gradient store is dropped: with LoRA, adapters or prompts every frozen weight of the
//! model would get a full-size gradient each step (as much work and memory as full finetuning).
//! Here the weight is a constant of the op, so the backward is one product, `g W`.

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Storage, Tensor};

/// The op; the weight and bias are constants of it (candle keeps the op until the backward).
struct FrozenLinear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "tuna-frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(v) = s else {
            candle_core::bail!("{}: only f32 is supported", self.name())
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("{}: input must be contiguous", self.name())
        };
        let (rows, cols) = l.shape().dims2()?;
        let x = Tensor::from_slice(&v[a..b], (rows, cols), &Device::Cpu)?;
        let mut y = x.matmul(&self.weight.t()?)?;
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(bias)?;
        }
        let out = y.dim(1)?;
        let (storage, layout) = y.storage_and_layout();
        let (Storage::Cpu(CpuStorage::F32(yv)), Some((ya, yb))) =
            (&*storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("{}: unexpected product layout", self.name())
        };
        Ok((
            CpuStorage::F32(yv[ya..yb].to_vec()),
            Shape::from((rows, out)),
        ))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.weight)?))
    }
}

/// True when `x W^T + b` should take the frozen-weight path: `x` needs a gradient, the weight
/// and bias do not, and everything is f32 on the CPU.
pub fn applies(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> bool {
    x.track_op()
        && !weight.track_op()
        && !bias.is_some_and(|b| b.track_op())
        && x.device().is_cpu()
        && [Some(x), Some(weight), bias]
            .iter()
            .flatten()
            .all(|t| t.dtype() == candle_core::DType::F32)
}

/// `x W^T + b` for 2-D `x` (N, in), with a gradient for `x` only.
pub fn frozen_linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    x.contiguous()?.apply_op1(FrozenLinear {
        weight: weight.contiguous()?,
        bias: bias.cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn same_value_and_input_gradient_as_matmul_and_no_weight_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let mut rng = tuna_core::Rng::new(1);
        let mut t = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.normal() as f32).collect() };
        let x = Var::from_vec(t(5 * 3), (5, 3), &dev)?;
        let w = Tensor::from_vec(t(4 * 3), (4, 3), &dev)?;
        let b = Tensor::from_vec(t(4), 4, &dev)?;
        assert!(applies(&x, &w, Some(&b)));
        let probe = Tensor::from_vec(t(5 * 4), (5, 4), &dev)?;
        let ours = frozen_linear(&x, &w, Some(&b))?;
        let plain = x.matmul(&w.t()?)?.broadcast_add(&b)?;
        let d = (&ours - &plain)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6);
        let g1 = (ours * &probe)?.sum_all()?.backward()?;
        let g2 = (plain * &probe)?.sum_all()?.backward()?;
        let d = (g1.get(&x).unwrap() - g2.get(&x).unwrap())?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(d < 1e-5);
        assert!(g1.get(&w).is_none(), "the frozen weight got a gradient");
        // candle's matmul computes and keeps a gradient for the (transposed) weight.
        let stored = |g: &candle_core::backprop::GradStore| g.get_ids().count();
        assert!(
            stored(&g1) < stored(&g2),
            "{} vs {}",
            stored(&g1),
            stored(&g2)
        );
        Ok(())
    }
}
