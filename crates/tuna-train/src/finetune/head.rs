//! The new output layer(s) of a classifier: pooling of the token states (a learned attention
//! score, or a fixed rule), optional hidden layer, then one linear layer.

use candle_core::{Device, Module, Result, Tensor};
use serde::{Deserialize, Serialize};
use tuna_core::Rng;
use tuna_nn::dropout::dropout;
use tuna_nn::pooling::attention_pool;
use tuna_nn::{init, Linear, Pooling};

/// The head's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// How token states become one vector.
    pub pooling: Pooling,
    /// Hidden layer size (0: a single linear layer).
    pub hidden: usize,
    /// Dropout before the head.
    pub dropout: f32,
}

/// Token states (B, T, H) -> pooled vector (B, H) -> logits (B, C).
pub struct Head {
    pooling: Pooling,
    /// Attention pooling's score vector (1, H), for [`Pooling::Attention`].
    attention: Option<Tensor>,
    hidden: Option<Linear>,
    out: Linear,
    dropout: f32,
    /// Key prefix: `classifier` (encoders, as BertForSequenceClassification) or `score`
    /// (decoders, as LlamaForSequenceClassification).
    pub name: String,
}

impl Head {
    /// Weights ~ N(0, 0.02), biases 0 (transformers' initialisation). Decoder heads have no bias.
    /// Attention pooling's score vector is N(0, 0.02) too: close to the mean at the start.
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        name: &str,
        pooling: Pooling,
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
        let attention = pooling
            .is_learned()
            .then(|| init::normal((1, dim), 0.02, rng, dev))
            .transpose()?;
        Ok(Self {
            pooling,
            attention,
            hidden,
            out,
            dropout,
            name: name.to_string(),
        })
    }

    /// The pooling rule.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// One vector (B, H) per sequence of token states (B, T, H); `mask` (B, T) marks real tokens.
    pub fn pool(&self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        match &self.attention {
            Some(w) => attention_pool(hidden, mask, w),
            None => self.pooling.pool(hidden, mask),
        }
    }

    /// Logits (B, C) of pooled vectors (B, H); dropout before each layer in training.
    pub fn forward(&self, pooled: &Tensor) -> Result<Tensor> {
        let mut x = dropout(pooled, self.dropout)?;
        if let Some(h) = &self.hidden {
            x = dropout(&h.forward(&x)?.relu()?, self.dropout)?;
        }
        self.out.forward(&x)
    }

    /// True for the names of this head's tensors.
    pub fn owns(&self, tensor: &str) -> bool {
        is_head_tensor(&self.name, tensor)
    }

    /// Visits `NAME_pool.weight` and `NAME_hidden.*` (if any), and `NAME.*`.
    pub fn visit(&mut self, f: &mut dyn FnMut(&str, &mut Tensor) -> Result<()>) -> Result<()> {
        if let Some(w) = &mut self.attention {
            f(&format!("{}_pool.weight", self.name), w)?;
        }
        if let Some(h) = &mut self.hidden {
            h.visit(&format!("{}_hidden", self.name), f)?;
        }
        self.out.visit(&self.name, f)
    }
}

/// True when `tensor` belongs to the head named `head`: `HEAD.*`, `HEAD_hidden.*`, `HEAD_pool.*`.
pub fn is_head_tensor(head: &str, tensor: &str) -> bool {
    tensor.strip_prefix(head).is_some_and(|rest| {
        [".", "_hidden.", "_pool."]
            .iter()
            .any(|p| rest.starts_with(p))
    })
}
