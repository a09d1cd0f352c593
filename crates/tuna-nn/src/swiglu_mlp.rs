//! Llama's whole gated feed-forward `down(silu(gate(x)) * up(x))` as one op, for frozen
//! weights kept in their stored type (no bias, no method attached): only its input `x` is kept
//! for the backward, which forms `gate(x)` and `up(x)` again (activation checkpointing of the
//! sublayer). Composed, a training step keeps `gate(x)`, `up(x)` and their gated product in
//! every block, the largest activations of a LoRA step (SmolLM2-135M: 4,608 values per token
//! per block); here none of them outlive the op. The price is the two products formed again.
//!
//! Only `x` gets a gradient; the weights are frozen by construction.

use crate::gelu::contiguous_f32;
use crate::quant::QuantMatrix;
use crate::swiglu;
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const NAME: &str = "tuna-swiglu-mlp";

static RECOMPUTE: AtomicBool = AtomicBool::new(true);

/// Whether models take this op when training through frozen stored feed-forward weights (on
/// by default: less memory, the two products formed again). `tuna --no-recompute` turns it
/// off for the process.
pub fn set_recompute(on: bool) {
    RECOMPUTE.store(on, Ordering::Relaxed);
}

/// See [`set_recompute`].
pub fn recompute() -> bool {
    RECOMPUTE.load(Ordering::Relaxed)
}

/// The three stored weights: gate and up (I, H), down (H, I).
#[derive(Clone)]
pub struct StoredMlp {
    pub gate: Arc<QuantMatrix>,
    pub up: Arc<QuantMatrix>,
    pub down: Arc<QuantMatrix>,
}

impl StoredMlp {
    /// True when the shapes chain and `x` is a CPU f32 tensor (..., H).
    pub fn supported(&self, x: &Tensor) -> bool {
        let (h, i) = (self.gate.col_count(), self.gate.row_count());
        let shapes = self.up.col_count() == h
            && self.up.row_count() == i
            && (self.down.row_count(), self.down.col_count()) == (h, i);
        let cpu_f32 = x.device().is_cpu() && x.dtype() == candle_core::DType::F32;
        shapes && cpu_f32 && x.dims().last() == Some(&h)
    }

    /// `down(silu(gate(x)) * up(x))` for `x` (..., H): (..., H), differentiable in `x`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if !self.supported(x) {
            candle_core::bail!("{NAME}: unsupported input {:?}", x.dims())
        }
        x.contiguous()?.apply_op1(self.clone())
    }

    /// `gate(x)` and `up(x)` for `rows` rows of `x`.
    fn gate_up(&self, x: &[f32], rows: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((self.gate.matmul_t(x, rows)?, self.up.matmul_t(x, rows)?))
    }
}

impl CustomOp1 for StoredMlp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, NAME)?;
        let rows = x.len() / self.gate.col_count().max(1);
        let (g, u) = self.gate_up(x, rows)?;
        let y = self.down.matmul_t(&swiglu::forward(&g, &u), rows)?;
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (x, grad) = (x.contiguous()?, grad.contiguous()?);
        let xv: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let dy: Vec<f32> = grad.flatten_all()?.to_vec1()?;
        let rows = xv.len() / self.gate.col_count().max(1);
        let (g, u) = self.gate_up(&xv, rows)?;
        drop(xv);
        let dh = self.down.matmul(&dy, rows)?;
        let (dg, du) = swiglu::backward(&g, &u, &dh);
        drop((g, u, dh));
        let mut dx = self.gate.matmul(&dg, rows)?;
        let dx_up = self.up.matmul(&du, rows)?;
        dx.iter_mut().zip(&dx_up).for_each(|(a, b)| *a += b);
        Ok(Some(Tensor::from_vec(dx, x.shape(), &Device::Cpu)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::testing::relative;
    use candle_core::quantized::GgmlDType;
    use candle_core::Var;

    /// Output and input gradient equal the f32 composition on the decoded weights to 1e-4
    /// relative, for a (B, T, H) input.
    #[test]
    fn matches_the_composition_on_the_decoded_weights() -> Result<()> {
        let dev = Device::Cpu;
        let (b, t, h, i) = (2, 5, 32, 64);
        let w = |r, c, s: f64| -> Result<Tensor> { Tensor::randn(0f32, 1., (r, c), &dev)? * s };
        let (wg, wu, wd) = (w(i, h, 0.2)?, w(i, h, 0.2)?, w(h, i, 0.1)?);
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = |t: &Tensor| -> Result<Arc<QuantMatrix>> {
                Ok(Arc::new(QuantMatrix::quantize(t, dtype)?))
            };
            let mlp = StoredMlp {
                gate: q(&wg)?,
                up: q(&wu)?,
                down: q(&wd)?,
            };
            let d = |m: &Arc<QuantMatrix>| m.dequantize()?.t();
            let x = Var::from_tensor(&Tensor::randn(0f32, 1., (b, t, h), &dev)?)?;
            let probe = Tensor::randn(0f32, 1., (b, t, h), &dev)?;
            let ours = mlp.forward(x.as_tensor())?;
            let xt = x.as_tensor();
            let gate = xt.broadcast_matmul(&d(&mlp.gate)?)?;
            let up = xt.broadcast_matmul(&d(&mlp.up)?)?;
            let theirs = (gate.silu()? * up)?.broadcast_matmul(&d(&mlp.down)?)?;
            assert_eq!(ours.dims(), &[b, t, h]);
            assert!(relative(&ours, &theirs)? < 1e-4, "{dtype:?} output");
            let ga = (ours * &probe)?.sum_all()?.backward()?;
            let gb = (theirs * &probe)?.sum_all()?.backward()?;
            let diff = relative(ga.get(xt).unwrap(), gb.get(xt).unwrap())?;
            assert!(diff < 1e-4, "{dtype:?}: input gradient differs by {diff}");
        }
        Ok(())
    }

    #[test]
    fn mismatched_shapes_are_refused() -> Result<()> {
        let dev = Device::Cpu;
        let q = |r, c| -> Result<Arc<QuantMatrix>> {
            let t = Tensor::randn(0f32, 1., (r, c), &dev)?;
            Ok(Arc::new(QuantMatrix::quantize(&t, GgmlDType::Q8_0)?))
        };
        let mlp = StoredMlp {
            gate: q(64, 32)?,
            up: q(64, 32)?,
            down: q(32, 64)?,
        };
        assert!(mlp.supported(&Tensor::zeros((2, 32), candle_core::DType::F32, &dev)?));
        assert!(!mlp.supported(&Tensor::zeros((2, 64), candle_core::DType::F32, &dev)?));
        let bad = StoredMlp {
            down: q(64, 64)?,
            ..mlp
        };
        assert!(!bad.supported(&Tensor::zeros((2, 32), candle_core::DType::F32, &dev)?));
        Ok(())
    }
}
