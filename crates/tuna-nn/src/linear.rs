//! Fully connected layer `y = x W^T + b`, loaded from `weight` (out, in) and optional `bias`,
//! with an optional [`WeightDelta`] (the seam adaptation methods use).

use crate::delta::WeightDelta;
use crate::quant::{QLinear, QuantMatrix};
use crate::visit::Visitor;
use crate::weight::Weight;
use crate::{linear_op, low_rank_op, row_split};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use std::sync::Arc;

/// Called with each linear layer's module name (`encoder.layer.0.attention.self.query`): how
/// methods find the layers they change.
pub type LinearVisitor<'a> = dyn FnMut(&str, &mut Linear) -> Result<()> + 'a;

/// A linear layer with Hugging Face's weight layout (out_features, in_features).
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
    /// A method's change to the layer's output, if attached.
    pub delta: Option<Box<dyn WeightDelta>>,
}

impl Linear {
    /// Builds from explicit tensors.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight: Weight::Dense(weight),
            bias,
            delta: None,
        }
    }

    /// Builds from a weight of either kind.
    pub fn from_weight(weight: Weight, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            delta: None,
        }
    }

    /// Input and output sizes.
    pub fn dims(&self) -> Result<(usize, usize)> {
        let (o, i) = self.weight.dims2()?;
        Ok((i, o))
    }

    /// Holds the weight in its stored quantised type `q` from now on (the loader's choice for
    /// frozen GGUF weights); `q` must have the weight's shape.
    pub fn set_quantised(&mut self, q: Arc<QuantMatrix>) -> Result<()> {
        self.set_weight(Weight::Quant(q))
    }

    /// Replaces the weight by `w` of the same shape (either kind).
    pub fn set_weight(&mut self, w: Weight) -> Result<()> {
        let (want, got) = (self.weight.dims2()?, w.dims2()?);
        if got != want {
            candle_core::bail!("weight {got:?} for a layer of {want:?}")
        }
        self.weight = w;
        Ok(())
    }

    /// Decodes a quantised weight into an f32 tensor (for training it, or writing it out).
    pub fn dequantise(&mut self) -> Result<()> {
        if self.weight.is_quantised() {
            self.weight = Weight::Dense(self.weight.dense()?);
        }
        Ok(())
    }

    /// The layer without its delta.
    pub fn base(&self) -> Linear {
        Self {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            delta: None,
        }
    }

    /// The weight when the layer is a plain product (no bias, no delta attached): what an op
    /// that fuses the layer with what follows it can use in its place.
    pub fn plain_weight(&self) -> Option<&Tensor> {
        match (&self.bias, &self.delta) {
            (None, None) => self.weight.tensor(),
            _ => None,
        }
    }

    /// The stored weight when the layer is a plain product of one kept in its stored type (no
    /// bias, no delta): what an op fusing the layer with what follows can decode itself.
    pub fn plain_stored(&self) -> Option<&Arc<QuantMatrix>> {
        match (&self.bias, &self.delta, &self.weight) {
            (None, None, Weight::Quant(q)) => Some(q),
            _ => None,
        }
    }

    /// Visits `weight`, `bias` and the delta's tensors under `prefix` (PEFT's names), letting
    /// `f` replace them. A quantised weight is not a tensor and is not visited (frozen by
    /// construction); [`Linear::dequantise`] first where it must be.
    pub fn visit(&mut self, prefix: &str, f: &mut Visitor) -> Result<()> {
        if let Weight::Dense(w) = &mut self.weight {
            f(&format!("{prefix}.weight"), w)?;
        }
        if let Some(b) = &mut self.bias {
            f(&format!("{prefix}.bias"), b)?;
        }
        if let Some(d) = &mut self.delta {
            d.visit(prefix, f)?;
        }
        Ok(())
    }

    /// Folds the delta into the weight (and bias) and removes it.
    pub fn merge_delta(&mut self) -> Result<()> {
        if let Some(d) = self.delta.take() {
            let (w, b) = d.merge(&self.weight.dense()?, self.bias.as_ref())?;
            self.weight = Weight::Dense(w);
            self.bias = b;
        }
        Ok(())
    }

    /// `x W^T + b` without the delta.
    pub fn forward_base(&self, x: &Tensor) -> Result<Tensor> {
        self.rows(x, false)
    }

    /// The layer's output for `x` (any leading dims) given `base`, the frozen product of `x`
    /// computed elsewhere (a slice of a fused product): the delta applied to it, or the whole
    /// layer again when the delta changes the product's input.
    pub fn finish(&self, x: &Tensor, base: Tensor) -> Result<Tensor> {
        let Some(d) = &self.delta else {
            return Ok(base);
        };
        let (_, x2) = flatten_rows(x)?;
        if d.input(&x2)?.is_some() {
            return self.forward(x);
        }
        d.output(x, base, &self.weight, self.bias.as_ref())
    }

    fn rows(&self, x: &Tensor, with_delta: bool) -> Result<Tensor> {
        // Work on 2-D rows: one matmul over all positions, then the bias add on the same rows.
        let (lead, x2) = flatten_rows(x)?;
        let delta = self.delta.as_ref().filter(|_| with_delta);
        let input = match delta {
            Some(d) => d.input(&x2)?,
            None => None,
        };
        let xin = input.as_ref().unwrap_or(&x2);
        let low_rank = delta.filter(|_| input.is_none()).and_then(|d| d.low_rank());
        if let Some(u) = low_rank
            .filter(|u| low_rank_op::applies(xin, &self.weight, self.bias.as_ref(), &[(0, u)]))
        {
            let y =
                low_rank_op::linear_low_rank(xin, &self.weight, self.bias.as_ref(), &[(0, &u)])?;
            return unflatten(y, lead);
        }
        let mut y = self.product(xin)?;
        if let Some(d) = delta {
            y = d.output(&x2, y, &self.weight, self.bias.as_ref())?;
        }
        unflatten(y, lead)
    }

    /// `x W^T + b` for 2-D `x`, on the kernel that fits the weight and the input.
    fn product(&self, x: &Tensor) -> Result<Tensor> {
        let bias = self.bias.as_ref();
        let y = match &self.weight {
            Weight::Dense(w) if linear_op::applies(x, w, bias) => {
                return linear_op::linear(x, w, bias)
            }
            Weight::Dense(w) if row_split::applies(x, w) => row_split::row_split_matmul(x, w)?,
            Weight::Dense(w) => x.matmul(&w.t()?)?,
            Weight::Quant(q) if !crate::fallback::off_kernel(x) => {
                QLinear::new(q.clone(), None)?.forward(x)?
            }
            Weight::Quant(q) => {
                crate::fallback::note("tuna-qlinear", x, "the weight decoded to a tensor");
                let w = q.dequantize()?.to_device(x.device())?.to_dtype(x.dtype())?;
                x.matmul(&w.t()?)?
            }
        };
        match bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// One layer computing several layers on the same input at once (their outputs
    /// concatenated): one larger matrix product instead of several small ones.
    pub fn fuse(parts: &[Linear]) -> Result<Linear> {
        let Some(weights) = parts
            .iter()
            .map(|l| l.weight.tensor())
            .collect::<Option<Vec<&Tensor>>>()
        else {
            candle_core::bail!("quantised linear layers are not fused")
        };
        let weight = Tensor::cat(&weights, 0)?;
        let bias = match parts
            .iter()
            .map(|l| l.bias.as_ref())
            .collect::<Option<Vec<_>>>()
        {
            Some(b) => Some(Tensor::cat(&b, 0)?),
            None if parts.iter().all(|l| l.bias.is_none()) => None,
            None => candle_core::bail!("cannot fuse linear layers with and without bias"),
        };
        Ok(Linear::new(weight, bias))
    }

    /// The output of `self`, the fusion of `parts` ([`Linear::fuse`] of their base weights),
    /// with each part's low-rank delta added to its own columns, as one op with a backward
    /// ([`low_rank_op`]); `None` when a part's delta has another form or nothing needs a
    /// gradient. `x`: (B, T, in) or (N, in).
    pub fn fused_low_rank(&self, parts: &[&Linear], x: &Tensor) -> Result<Option<Tensor>> {
        let mut ups = Vec::new();
        let mut col = 0;
        for p in parts {
            match &p.delta {
                None => {}
                Some(d) => match d.low_rank() {
                    Some(u) => ups.push((col, u)),
                    None => return Ok(None),
                },
            }
            col += p.weight.dims2()?.0;
        }
        let (lead, x2) = flatten_rows(x)?;
        let ups: Vec<(usize, &low_rank_op::LowRank)> = ups.iter().map(|(c, u)| (*c, u)).collect();
        let bias = self.bias.as_ref();
        if !low_rank_op::applies(&x2, &self.weight, bias, &ups) {
            return Ok(None);
        }
        let y = if let (true, Some(w)) = (ups.is_empty(), self.weight.tensor()) {
            linear_op::linear(&x2, w, bias)?
        } else {
            low_rank_op::linear_low_rank(&x2, &self.weight, bias, &ups)?
        };
        unflatten(y, lead).map(Some)
    }

    /// The weight, (out, in).
    pub fn weight(&self) -> &Weight {
        &self.weight
    }

    /// The bias, (out,), if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.rows(x, true)
    }
}

/// (B, T, I) -> ((B, T), (B*T, I)); 2-D input unchanged.
pub fn flatten_rows(x: &Tensor) -> Result<(Option<(usize, usize)>, Tensor)> {
    Ok(match x.dims() {
        [b, t, i] => (Some((*b, *t)), x.reshape((b * t, *i))?),
        _ => (None, x.clone()),
    })
}

/// Rows (B*T, O) back to (B, T, O) when the input was 3-D.
fn unflatten(y: Tensor, lead: Option<(usize, usize)>) -> Result<Tensor> {
    match lead {
        Some((b, t)) => y.reshape((b, t, ())),
        None => Ok(y),
    }
}

/// Loads `weight` (out, in) and `bias` (out,) under `vb`.
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    let weight = vb.get((out_dim, in_dim), "weight")?;
    let bias = vb.get(out_dim, "bias")?;
    Ok(Linear::new(weight, Some(bias)))
}

/// Loads `weight` (out, in) only.
pub fn linear_no_bias(in_dim: usize, out_dim: usize, vb: VarBuilder) -> Result<Linear> {
    Ok(Linear::new(vb.get((out_dim, in_dim), "weight")?, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_manual_product_in_2d_and_3d() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1f32, 2.], [0., -1.], [3., 1.]], &dev)?;
        let b = Tensor::new(&[0.5f32, 0., -1.], &dev)?;
        let lin = Linear::new(w, Some(b));
        let x = Tensor::new(&[[1f32, 1.], [2., 0.]], &dev)?;
        let y: Vec<Vec<f32>> = lin.forward(&x)?.to_vec2()?;
        assert_eq!(y, vec![vec![3.5, -1., 3.], vec![2.5, 0., 5.]]);
        let fused: Vec<Vec<f32>> = Linear::fuse(&[lin.clone(), lin.clone()])?
            .forward(&x)?
            .to_vec2()?;
        assert_eq!(fused[1], [y[1].clone(), y[1].clone()].concat());
        let y3 = lin.forward(&x.unsqueeze(0)?)?;
        assert_eq!(y3.dims(), &[1, 2, 3]);
        assert_eq!(y3.squeeze(0)?.to_vec2::<f32>()?, y);
        Ok(())
    }
}
