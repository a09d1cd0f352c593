//! The sublayer seam of transformer blocks: a method may transform the output of a block's
//! attention or feed-forward sublayer before the residual addition (bottleneck adapters do).

use crate::visit::Visitor;
use candle_core::{Result, Tensor};

/// Where in a block a hook sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sublayer {
    /// On the attention output, before its residual addition.
    Attention,
    /// On the feed-forward output, before its residual addition.
    FeedForward,
}

/// A transformation of one sublayer's output, (B, T, H) -> (B, T, H).
pub trait SublayerHook: Send + Sync {
    fn forward(&self, h: &Tensor) -> Result<Tensor>;

    /// Visits the hook's tensors under the block's key prefix (`encoder.layer.3`).
    fn visit(&mut self, block: &str, f: &mut Visitor) -> Result<()>;
}

/// A block's hooks, at most one per sublayer.
#[derive(Default)]
pub struct Hooks {
    attention: Option<Box<dyn SublayerHook>>,
    feed_forward: Option<Box<dyn SublayerHook>>,
}

impl Hooks {
    /// Puts `hook` at `at`, replacing an earlier one.
    pub fn set(&mut self, at: Sublayer, hook: Box<dyn SublayerHook>) {
        match at {
            Sublayer::Attention => self.attention = Some(hook),
            Sublayer::FeedForward => self.feed_forward = Some(hook),
        }
    }

    /// `h` through the hook at `at`, if any.
    pub fn apply(&self, at: Sublayer, h: Tensor) -> Result<Tensor> {
        let hook = match at {
            Sublayer::Attention => &self.attention,
            Sublayer::FeedForward => &self.feed_forward,
        };
        match hook {
            Some(k) => k.forward(&h),
            None => Ok(h),
        }
    }

    /// Visits the attention hook's tensors, then the feed-forward hook's.
    pub fn visit(&mut self, block: &str, f: &mut Visitor) -> Result<()> {
        for k in [&mut self.attention, &mut self.feed_forward]
            .into_iter()
            .flatten()
        {
            k.visit(block, f)?;
        }
        Ok(())
    }
}
