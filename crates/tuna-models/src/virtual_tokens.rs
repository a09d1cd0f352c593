//! Virtual tokens: what an input method (soft prompt tuning, prefix tuning) puts before every
//! prompt, in the form a decoder runs them when generating.

use candle_core::{Result, Tensor};

/// Positions a method adds in front of every prompt.
#[derive(Clone)]
pub enum VirtualTokens {
    /// Soft prompt tuning: embeddings (P, H) run before the prompt's own tokens, at positions
    /// 0..P.
    Embeds(Tensor),
    /// Prefix tuning: per block, keys and values (1, kv heads, P, head dim) that every position
    /// attends to, as a cached past of P positions would be (not rotated).
    Past(Vec<(Tensor, Tensor)>),
}

impl VirtualTokens {
    /// Number of virtual positions P.
    pub fn len(&self) -> Result<usize> {
        match self {
            VirtualTokens::Embeds(t) => t.dim(0),
            VirtualTokens::Past(layers) => match layers.first() {
                Some((k, _)) => k.dim(2),
                None => Ok(0),
            },
        }
    }

    /// True when there are no virtual positions.
    pub fn is_empty(&self) -> bool {
        self.len().map(|n| n == 0).unwrap_or(true)
    }
}
