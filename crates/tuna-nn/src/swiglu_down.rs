//! Llama's gated feed-forward output `down(silu(gate) * up)` as one op, for a frozen `down`
//! weight kept in its stored type: the (tokens x intermediate) product `silu(gate) * up` is
//! formed, projected and dropped in the forward, and formed again from `gate` and `up` (which
//! the graph keeps anyway) in the backward. Composed, the graph would keep that product for the
//! frozen projection's input in every block, the largest activation of a LoRA step
//! (SmolLM2-135M: 1,536 values per token per block, a sixth of what a block keeps).
//!
//! Only the gate and up inputs get gradients; the weight is frozen by construction.

use crate::gelu::contiguous_f32;
use crate::product::{cpu, cpu_parts};
use crate::quant::QuantMatrix;
use crate::swiglu;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use std::sync::Arc;

const NAME: &str = "tuna-swiglu-down";

/// True when [`swiglu_down`] can run: CPU f32 `gate` and `up` of one shape (..., I) with I
/// the weight's columns.
pub fn supported(gate: &Tensor, up: &Tensor, down: &QuantMatrix) -> bool {
    swiglu::supported(gate, up) && gate.dims().last() == Some(&down.col_count())
}

/// `(silu(gate) * up) down^T` for `gate`, `up` (..., I) and the stored `down` (H, I):
/// (..., H), differentiable in `gate` and `up`.
pub fn swiglu_down(gate: &Tensor, up: &Tensor, down: &Arc<QuantMatrix>) -> Result<Tensor> {
    if !supported(gate, up, down) {
        candle_core::bail!(
            "{NAME}: unsupported inputs {:?} {:?} for a ({}, {}) weight",
            gate.dims(),
            up.dims(),
            down.row_count(),
            down.col_count()
        )
    }
    let op = SwiGluDown { down: down.clone() };
    gate.contiguous()?.apply_op2(&up.contiguous()?, op)
}

struct SwiGluDown {
    down: Arc<QuantMatrix>,
}

impl CustomOp2 for SwiGluDown {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = contiguous_f32(s1, l1, NAME)?;
        let u = contiguous_f32(s2, l2, NAME)?;
        if g.len() != u.len() {
            candle_core::bail!("{NAME}: shapes differ")
        }
        let rows = g.len() / self.down.col_count().max(1);
        let y = self.down.matmul_t(&swiglu::forward(g, u), rows)?;
        let mut dims = l1.dims().to_vec();
        *dims.last_mut().expect("checked by supported") = self.down.row_count();
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (gs, gl) = cpu_parts(gate, NAME)?;
        let (us, ul) = cpu_parts(up, NAME)?;
        let (ds, dl) = cpu_parts(&grad, NAME)?;
        let g = contiguous_f32(cpu(&gs), &gl, NAME)?;
        let u = contiguous_f32(cpu(&us), &ul, NAME)?;
        let dy = contiguous_f32(cpu(&ds), &dl, NAME)?;
        let rows = dy.len() / self.down.row_count().max(1);
        let dh = self.down.matmul(dy, rows)?;
        if dh.len() != g.len() || u.len() != g.len() {
            candle_core::bail!("{NAME}: gradient shape differs")
        }
        let (dg, du) = swiglu::backward(g, u, &dh);
        Ok((
            Some(Tensor::from_vec(dg, gate.shape(), gate.device())?),
            Some(Tensor::from_vec(du, up.shape(), up.device())?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::testing::relative;
    use candle_core::quantized::GgmlDType;
    use candle_core::{Device, Var};

    /// Output and both input gradients equal the f32 composition `silu(gate) * up` times the
    /// decoded weight's transpose to 1e-4 relative, for (B, T, I) inputs.
    #[test]
    fn matches_the_composition_on_the_decoded_weight() -> Result<()> {
        let dev = Device::Cpu;
        let (b, t, i, h) = (2, 5, 64, 24);
        let wf = (Tensor::randn(0f32, 1., (h, i), &dev)? * 0.1)?;
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let w = Arc::new(QuantMatrix::quantize(&wf, dtype)?);
            let decoded = w.dequantize()?;
            let g = Var::from_tensor(&Tensor::randn(0f32, 2., (b, t, i), &dev)?)?;
            let u = Var::from_tensor(&Tensor::randn(0f32, 1., (b, t, i), &dev)?)?;
            let probe = Tensor::randn(0f32, 1., (b, t, h), &dev)?;
            let ours = swiglu_down(g.as_tensor(), u.as_tensor(), &w)?;
            let act = (g.as_tensor().silu()? * u.as_tensor())?;
            let theirs = act.broadcast_matmul(&decoded.t()?)?;
            assert_eq!(ours.dims(), &[b, t, h]);
            assert!(relative(&ours, &theirs)? < 1e-4, "{dtype:?} output");
            let ga = (ours * &probe)?.sum_all()?.backward()?;
            let gb = (theirs * &probe)?.sum_all()?.backward()?;
            for v in [g.as_tensor(), u.as_tensor()] {
                let d = relative(ga.get(v).unwrap(), gb.get(v).unwrap())?;
                assert!(d < 1e-4, "{dtype:?}: gradient differs by {d}");
            }
        }
        Ok(())
    }

    #[test]
    fn wrong_shapes_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let wf = Tensor::randn(0f32, 1., (4, 32), &dev)?;
        let w = Arc::new(QuantMatrix::quantize(&wf, GgmlDType::Q8_0)?);
        let x = Tensor::zeros((3, 31), candle_core::DType::F32, &dev)?;
        assert!(swiglu_down(&x, &x, &w).is_err());
        Ok(())
    }
}
