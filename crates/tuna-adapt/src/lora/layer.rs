//! LoRA's low-rank update of a frozen linear layer: `y += dropout(x) A^T B^T * alpha / r`.

use candle_core::{Device, Result, Tensor};
use tuna_core::Rng;
use tuna_nn::dropout::dropout;
use tuna_nn::linear::flatten_rows;
use tuna_nn::low_rank_op::LowRank;
use tuna_nn::{init, Visitor, Weight, WeightDelta};

/// The trainable part of a LoRA layer. `a`: (r, in), `b`: (out, r).
#[derive(Debug, Clone)]
pub struct LoraDelta {
    pub a: Tensor,
    pub b: Tensor,
    /// `alpha / r`.
    pub scale: f64,
    /// Dropout on the input of the update, in training.
    pub dropout: f32,
}

impl LoraDelta {
    /// PEFT's default initialisation: `A` Kaiming-uniform, `B` zero, so the layer starts unchanged.
    pub fn init(
        in_dim: usize,
        out_dim: usize,
        r: usize,
        alpha: f64,
        dropout: f32,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        let bound = 1.0 / (in_dim as f64).sqrt();
        Ok(Self {
            a: init::uniform((r, in_dim), bound, rng, dev)?,
            b: Tensor::zeros((out_dim, r), candle_core::DType::F32, dev)?,
            scale: alpha / r as f64,
            dropout,
        })
    }

    /// The update for 2-D rows `x` (N, in) -> (N, out), without dropout.
    pub fn product(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.a.t()?)?.matmul(&self.b.t()?)? * self.scale
    }

    /// The update for 2-D rows `x` (N, in) -> (N, out).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = dropout(x, self.dropout)?.matmul(&self.a.t()?)?;
        h.matmul(&self.b.t()?)? * self.scale
    }

    /// The update as a dense (out, in) matrix, to fold into the base weight.
    pub fn dense(&self) -> Result<Tensor> {
        self.b.matmul(&self.a)? * self.scale
    }

    /// Visits `lora_A.weight` and `lora_B.weight` under `module` (PEFT's names).
    pub fn visit_ab(&mut self, module: &str, f: &mut Visitor) -> Result<()> {
        f(&format!("{module}.lora_A.weight"), &mut self.a)?;
        f(&format!("{module}.lora_B.weight"), &mut self.b)
    }
}

impl WeightDelta for LoraDelta {
    fn output(
        &self,
        x: &Tensor,
        base: Tensor,
        _weight: &Weight,
        _bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (_, x2) = flatten_rows(x)?;
        let d = self.forward(&x2)?.reshape(base.shape())?;
        base + d
    }

    fn low_rank(&self) -> Option<LowRank> {
        Some(LowRank {
            a: self.a.clone(),
            b: self.b.clone(),
            scale: self.scale,
            dropout: self.dropout,
        })
    }

    fn visit(&mut self, module: &str, f: &mut Visitor) -> Result<()> {
        self.visit_ab(module, f)
    }

    fn merge(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<(Tensor, Option<Tensor>)> {
        Ok(((weight + self.dense()?)?, bias.cloned()))
    }

    fn clone_box(&self) -> Box<dyn WeightDelta> {
        Box::new(self.clone())
    }
}
