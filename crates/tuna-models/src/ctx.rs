//! The per-call context every model's `forward_embeds` takes: masks, train flag, and the hooks
//! methods use (hidden-state capture now; prefixes and the KV cache plug in here too).

use candle_core::Tensor;

/// What a forward pass needs besides the input embeddings.
#[derive(Default)]
pub struct Ctx {
    /// (B, T) of 0/1: which positions are real tokens (right padding).
    pub mask: Option<Tensor>,
    /// Training mode (dropout on). Inference when false.
    pub train: bool,
    /// Keep every block's output in [`Ctx::hidden_states`].
    pub capture_hidden: bool,
    /// Filled when `capture_hidden`: the embeddings output, then each block's output.
    pub hidden_states: Vec<Tensor>,
}

impl Ctx {
    /// Inference context with a padding mask.
    pub fn with_mask(mask: &Tensor) -> Self {
        Self {
            mask: Some(mask.clone()),
            ..Self::default()
        }
    }

    pub(crate) fn capture(&mut self, h: &Tensor) {
        if self.capture_hidden {
            self.hidden_states.push(h.clone());
        }
    }
}
