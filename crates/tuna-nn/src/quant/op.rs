//! `QLinear`: `x W^T + b` with a quantised, frozen `W` as one candle op whose backward gives
//! the gradient of `x` only (`g W`); the weight and bias never get one.

use super::matrix::QuantMatrix;
use crate::gelu::contiguous_f32;
use candle_core::{CpuStorage, CustomOp1, Device, Layout, Module, Result, Shape, Tensor};
use std::sync::Arc;

const NAME: &str = "tuna-qlinear";

/// A linear layer on a frozen quantised weight (out, in) and an optional frozen f32 bias
/// (out), for f32 inputs on the CPU of shape (..., in).
#[derive(Clone, Debug)]
pub struct QLinear {
    weight: Arc<QuantMatrix>,
    bias: Option<Arc<[f32]>>,
}

impl QLinear {
    /// The layer for `weight` and `bias`; errors when the bias length is not the weight's
    /// row count.
    pub fn new(weight: Arc<QuantMatrix>, bias: Option<Vec<f32>>) -> Result<Self> {
        if let Some(b) = &bias {
            if b.len() != weight.row_count() {
                candle_core::bail!(
                    "{NAME}: bias of {} values for a weight of {} rows",
                    b.len(),
                    weight.row_count()
                )
            }
        }
        Ok(Self {
            weight,
            bias: bias.map(Arc::from),
        })
    }

    /// The quantised weight.
    pub fn weight(&self) -> &Arc<QuantMatrix> {
        &self.weight
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }
}

impl Module for QLinear {
    /// `x W^T + b` for `x` (..., in): (..., out); differentiable in `x`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1(self.clone())
    }
}

/// The number of input rows in a (..., cols) shape, or an error naming the shapes.
fn input_rows(shape: &Shape, cols: usize) -> Result<usize> {
    match shape.dims().last() {
        Some(&c) if c == cols => Ok(shape.elem_count() / cols.max(1)),
        _ => candle_core::bail!("{NAME}: input {shape:?} does not end in the weight's {cols}"),
    }
}

impl CustomOp1 for QLinear {
    fn name(&self) -> &'static str {
        NAME
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, NAME)?;
        let m = input_rows(l.shape(), self.weight.col_count())?;
        let mut y = self.weight.matmul_t(x, m)?;
        if let Some(b) = &self.bias {
            for row in y.chunks_exact_mut(b.len().max(1)) {
                row.iter_mut().zip(b.iter()).for_each(|(v, b)| *v += b);
            }
        }
        let mut dims = l.dims().to_vec();
        *dims.last_mut().expect("checked by input_rows") = self.weight.row_count();
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let g = g.contiguous()?;
        let (storage, layout) = g.storage_and_layout();
        let candle_core::Storage::Cpu(s) = &*storage else {
            candle_core::bail!("{NAME}: only the CPU is supported")
        };
        let gv = contiguous_f32(s, layout, NAME)?;
        let m = input_rows(layout.shape(), self.weight.row_count())?;
        let dx = self.weight.matmul(gv, m)?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), &Device::Cpu)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::testing::{assert_close, normal, weights};
    use candle_core::quantized::GgmlDType;
    use candle_core::Var;

    /// Output and input gradient equal candle's autograd through `x (w^T) + b` on the
    /// decoded weight, for a 2-D and a 3-D input; the weight gets no gradient.
    #[test]
    fn gradient_matches_the_dequantised_composition() -> Result<()> {
        let dev = Device::Cpu;
        for (dtype, shape) in [
            (GgmlDType::Q4_0, vec![3, 64]),
            (GgmlDType::Q6K, vec![2, 2, 256]),
        ] {
            let k = *shape.last().unwrap();
            let w = QuantMatrix::quantize(&weights(5, k, 1)?, dtype)?;
            let wf = w.dequantize()?;
            let layer = QLinear::new(Arc::new(w), Some(normal(5, 2)))?;
            let bias = Tensor::new(layer.bias().unwrap(), &dev)?;
            let xv = Var::from_vec(normal(shape.iter().product(), 3), shape.as_slice(), &dev)?;
            let rows = shape.iter().product::<usize>() / k;
            let probe = Tensor::from_vec(normal(rows * 5, 4), rows * 5, &dev)?;
            let ours = layer.forward(xv.as_tensor())?;
            let plain = xv
                .as_tensor()
                .reshape((rows, k))?
                .matmul(&wf.t()?)?
                .broadcast_add(&bias)?;
            let flat = |t: &Tensor| -> Result<Vec<f32>> { t.flatten_all()?.to_vec1() };
            assert_close(&flat(&ours)?, &flat(&plain)?, 1e-5, "forward");
            let g1 = (ours.flatten_all()? * &probe)?.sum_all()?.backward()?;
            let g2 = (plain.flatten_all()? * &probe)?.sum_all()?.backward()?;
            let (a, b) = (g1.get(&xv).unwrap(), g2.get(&xv).unwrap());
            assert_eq!(a.dims(), shape.as_slice());
            assert_close(&flat(a)?, &flat(b)?, 1e-5, "input gradient");
        }
        Ok(())
    }

    #[test]
    fn wrong_shapes_are_errors() -> Result<()> {
        let w = Arc::new(QuantMatrix::quantize(&weights(4, 32, 1)?, GgmlDType::Q8_0)?);
        assert!(QLinear::new(w.clone(), Some(vec![0.0; 3])).is_err());
        let layer = QLinear::new(w, None)?;
        let x = Tensor::zeros((2, 31), candle_core::DType::F32, &Device::Cpu)?;
        assert!(layer.forward(&x).is_err());
        Ok(())
    }
}
