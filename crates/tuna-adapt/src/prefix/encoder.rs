//! Where prefix tuning's key/value vectors come from: an MLP over P embeddings in training
//! (PEFT's `prefix_projection`), or the MLP's output table, which the saved adapter keeps as
//! PEFT's `prompt_embeddings`.

use candle_core::{Device, Module, Result, Tensor};
use tuna_core::Rng;
use tuna_nn::{init, Linear, Visitor};

/// Where the prefixes come from.
pub enum PrefixEncoder {
    /// Embedding (P, H) -> Linear(H, hidden) -> tanh -> Linear(hidden, L*2*kvH).
    Mlp {
        embedding: Tensor,
        first: Linear,
        second: Linear,
    },
    /// The (P, L*2*kvH) table itself (after training, or loaded from a PEFT file).
    Table(Tensor),
}

/// Layout of the prefix table: layers, kv heads, head size.
#[derive(Debug, Clone, Copy)]
pub struct PrefixShape {
    pub tokens: usize,
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl PrefixShape {
    /// Width of one row of the table: `layers * 2 * kv_heads * head_dim`.
    pub fn width(&self) -> usize {
        self.layers * 2 * self.kv_heads * self.head_dim
    }
}

impl PrefixEncoder {
    /// A fresh MLP encoder (embedding ~ N(0, 1) as `nn.Embedding`, linears as `nn.Linear`).
    pub fn init(
        shape: PrefixShape,
        dim: usize,
        hidden: usize,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        let embedding = init::normal((shape.tokens, dim), 1.0, rng, dev)?;
        let (w1, b1) = init::torch_linear(dim, hidden, rng, dev)?;
        let (w2, b2) = init::torch_linear(hidden, shape.width(), rng, dev)?;
        Ok(PrefixEncoder::Mlp {
            embedding,
            first: Linear::new(w1, Some(b1)),
            second: Linear::new(w2, Some(b2)),
        })
    }

    /// The (P, L*2*kvH) table.
    pub fn table(&self) -> Result<Tensor> {
        match self {
            PrefixEncoder::Table(t) => Ok(t.clone()),
            PrefixEncoder::Mlp {
                embedding,
                first,
                second,
            } => second.forward(&first.forward(embedding)?.tanh()?),
        }
    }

    /// Per layer, keys and values (B, kvH, P, D), laid out as PEFT's `get_prompt`
    /// (`view(P, L*2, kvH, D).permute(...)`, keys then values per layer).
    pub fn key_values(&self, shape: PrefixShape, batch: usize) -> Result<Vec<(Tensor, Tensor)>> {
        let t = self
            .table()?
            .reshape((
                shape.tokens,
                shape.layers * 2,
                shape.kv_heads,
                shape.head_dim,
            ))?
            .permute((1, 2, 0, 3))?
            .contiguous()?; // (L*2, kvH, P, D)
        let full = (batch, shape.kv_heads, shape.tokens, shape.head_dim);
        (0..shape.layers)
            .map(|l| {
                let k = t
                    .get(2 * l)?
                    .unsqueeze(0)?
                    .broadcast_as(full)?
                    .contiguous()?;
                let v = t
                    .get(2 * l + 1)?
                    .unsqueeze(0)?
                    .broadcast_as(full)?
                    .contiguous()?;
                Ok((k, v))
            })
            .collect()
    }

    /// Replaces the MLP by its output table (done before saving).
    pub fn freeze_table(&mut self) -> Result<()> {
        let t = self.table()?.detach();
        *self = PrefixEncoder::Table(t);
        Ok(())
    }

    /// Visits the MLP's tensors (`prefix_encoder.embedding.weight`, `prefix_encoder.transform.0.*`,
    /// `prefix_encoder.transform.2.*`, PEFT's names) or the table (`prompt_embeddings`).
    pub fn visit(&mut self, f: &mut Visitor) -> Result<()> {
        match self {
            PrefixEncoder::Table(t) => f("prompt_embeddings", t),
            PrefixEncoder::Mlp {
                embedding,
                first,
                second,
            } => {
                f("prefix_encoder.embedding.weight", embedding)?;
                first.visit("prefix_encoder.transform.0", f)?;
                second.visit("prefix_encoder.transform.2", f)
            }
        }
    }
}
