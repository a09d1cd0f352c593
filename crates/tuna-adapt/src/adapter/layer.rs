//! Houlsby bottleneck adapter: `h + up(act(down(h)))`, the identity at initialisation.

use candle_core::{Device, Module, Result, Tensor};
use tuna_core::Rng;
use tuna_nn::{init, Activation, Linear, Sublayer, SublayerHook, Visitor};

/// A residual bottleneck of size `down.out`.
#[derive(Debug, Clone)]
pub struct Bottleneck {
    pub down: Linear,
    pub up: Linear,
    pub act: Activation,
}

impl Bottleneck {
    /// `down` as PyTorch initialises a linear layer; `up` zero, so the adapter starts as identity.
    pub fn init(
        dim: usize,
        size: usize,
        act: Activation,
        rng: &mut Rng,
        dev: &Device,
    ) -> Result<Self> {
        let (w, b) = init::torch_linear(dim, size, rng, dev)?;
        let zeros_w = Tensor::zeros((dim, size), candle_core::DType::F32, dev)?;
        let zeros_b = Tensor::zeros(dim, candle_core::DType::F32, dev)?;
        Ok(Self {
            down: Linear::new(w, Some(b)),
            up: Linear::new(zeros_w, Some(zeros_b)),
            act,
        })
    }

    /// `h + up(act(down(h)))`.
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let z = self
            .up
            .forward(&self.act.forward(&self.down.forward(h)?)?)?;
        h + z
    }

    /// Visits `down.weight`, `down.bias`, `up.weight`, `up.bias` under `prefix`.
    pub fn visit(&mut self, prefix: &str, f: &mut Visitor) -> Result<()> {
        self.down.visit(&format!("{prefix}.down"), f)?;
        self.up.visit(&format!("{prefix}.up"), f)
    }
}

/// A bottleneck on one sublayer of a block, named `adapter_attn` or `adapter_ffn` under it.
pub struct AdapterHook {
    pub at: Sublayer,
    pub bottleneck: Bottleneck,
}

impl AdapterHook {
    /// The key name under the block.
    pub fn name(at: Sublayer) -> &'static str {
        match at {
            Sublayer::Attention => "adapter_attn",
            Sublayer::FeedForward => "adapter_ffn",
        }
    }
}

impl SublayerHook for AdapterHook {
    fn forward(&self, h: &Tensor) -> Result<Tensor> {
        self.bottleneck.forward(h)
    }

    fn visit(&mut self, block: &str, f: &mut Visitor) -> Result<()> {
        let name = Self::name(self.at);
        self.bottleneck.visit(&format!("{block}.{name}"), f)
    }
}
