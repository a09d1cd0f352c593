//! The per-call context every model's `forward_embeds` takes: masks, and the hooks methods use
//! (hidden-state capture, prefix tuning's per-layer key/value prefixes, position offsets, the
//! key/value cache of incremental decoding).

use candle_core::{Result, Tensor};
use tuna_nn::KvCache;

/// What a forward pass needs besides the input embeddings.
#[derive(Default)]
pub struct Ctx {
    /// (B, T) of 0/1: which positions are real tokens. With a [`Ctx::cache`] it covers the cached
    /// positions too: (B, cached + T).
    pub mask: Option<Tensor>,
    /// Prefix tuning: per block, key and value prefixes (B, kv heads, P, head dim) that every
    /// position attends to.
    pub prefix: Option<Vec<(Tensor, Tensor)>>,
    /// First position id of the input (prefix tuning offsets real tokens by the prefix length,
    /// as a cached past of that length would).
    pub position_offset: usize,
    /// Per-row position ids (B, T) u32, for left-padded batches; overrides the offset.
    pub positions: Option<Tensor>,
    /// Incremental decoding (causal models): the keys and values of earlier calls, extended by
    /// this one. New positions start after the cached ones.
    pub cache: Option<KvCache>,
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

    /// Decoding context: an empty cache for `n_layers` layers.
    pub fn with_cache(n_layers: usize) -> Self {
        Self {
            cache: Some(KvCache::new(n_layers)),
            ..Self::default()
        }
    }

    /// Number of prefix positions.
    pub fn prefix_len(&self) -> Result<usize> {
        match &self.prefix {
            Some(p) if !p.is_empty() => p[0].0.dim(2),
            _ => Ok(0),
        }
    }

    /// Number of cached positions.
    pub fn cached_len(&self) -> Result<usize> {
        self.cache.as_ref().map_or(Ok(0), |c| c.len())
    }

    /// Positions every new query attends to before its own: prefix plus cache.
    pub fn past_len(&self) -> Result<usize> {
        Ok(self.prefix_len()? + self.cached_len()?)
    }

    /// The key padding mask (B, P + T): ones for the prefix, then [`Ctx::mask`] (which covers
    /// the cached positions itself).
    pub fn key_mask(&self) -> Result<Option<Tensor>> {
        let (Some(mask), p) = (&self.mask, self.prefix_len()?) else {
            return Ok(None);
        };
        if p == 0 {
            return Ok(Some(mask.clone()));
        }
        let ones = Tensor::ones((mask.dim(0)?, p), mask.dtype(), mask.device())?;
        Ok(Some(Tensor::cat(&[&ones, mask], 1)?))
    }

    pub(crate) fn capture(&mut self, h: &Tensor) {
        if self.capture_hidden {
            self.hidden_states.push(h.clone());
        }
    }
}
