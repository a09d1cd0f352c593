//! The new output layer(s) of a classifier: optional hidden layer, then one linear layer.

use candle_core::{Device, Module, Result, Tensor};
use tuna_core::Rng;
use tuna_nn::dropout::dropout;
use tuna_nn::{init, Linear};

/// Pooled vector (B, H) -> logits (B, C).
pub struct Head {
    hidden: Option<Linear>,
    out: Linear,
    dropout: f32,
    /// Key prefix: `classifier` (encoders, as BertForSequenceClassification) or `score`
    /// (decoders, as LlamaForSequenceClassification).
    pub name: String,
}

impl Head {
    /// Weights ~ N(0, 0.02), biases 0 (transformers' initialisation). Decoder heads have no bias.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        name: &str,
        dim: usize,
        hidden: usize,
        classes: usize,
        bias: bool,
        dropout: f32,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        let mut layer = |i: usize, o: usize| -> Result<Linear> {
            let w = init::normal((o, i), 0.02, rng, dev)?;
            let b = bias
                .then(|| Tensor::zeros(o, candle_core::DType::F32, dev))
                .transpose()?;
            Ok(Linear::new(w, b))
        };
        let (hidden, out) = if hidden > 0 {
            (Some(layer(dim, hidden)?), layer(hidden, classes)?)
        } else {
            (None, layer(dim, classes)?)
        };
        Ok(Self {
            hidden,
            out,
            dropout,
            name: name.to_string(),
        })
    }

    /// Logits (B, C); dropout before each layer in training.
    pub fn forward(&self, pooled: &Tensor) -> Result<Tensor> {
        let mut x = dropout(pooled, self.dropout)?;
        if let Some(h) = &self.hidden {
            x = dropout(&h.forward(&x)?.relu()?, self.dropout)?;
        }
        self.out.forward(&x)
    }

    /// Visits `NAME_hidden.*` (if any) and `NAME.*`.
    pub fn visit(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        if let Some(h) = &mut self.hidden {
            h.visit(&format!("{}_hidden", self.name), f)?;
        }
        self.out.visit(&self.name, f)
    }
}
