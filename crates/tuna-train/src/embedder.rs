//! Batched, length-sorted embedding of many texts with a frozen model.

use crate::progress::Progress;
use candle_core::Tensor;
use tuna_core::Result;
use tuna_models::Model;
use tuna_nn::pooling::l2_normalize;
use tuna_nn::Pooling;

/// How texts become vectors.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct EmbedOptions {
    /// Pooling of token states.
    pub pooling: Pooling,
    /// Longest input in tokens; longer texts are truncated.
    pub max_len: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Scale every embedding to unit length.
    pub normalize: bool,
}

/// Dense row-major embeddings.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub data: Vec<f32>,
    pub rows: usize,
    pub cols: usize,
}

impl Embeddings {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Embeddings {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Embeddings {
            data,
            rows: idx.len(),
            cols: self.cols,
        }
    }
}

/// Embeds `texts` in batches of similar length (less padding), returning rows in input order.
pub fn embed_texts(
    model: &Model,
    texts: &[String],
    opts: &EmbedOptions,
    progress: &dyn Progress,
) -> Result<Embeddings> {
    let seqs = texts
        .iter()
        .map(|t| model.encode(t, opts.max_len))
        .collect::<Result<Vec<_>>>()?;
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
    let cols = model.info.hidden_size;
    let mut data = vec![0f32; texts.len() * cols];
    progress.start("embedding", texts.len() as u64);
    for chunk in order.chunks(opts.batch_size.max(1)) {
        let batch: Vec<&[u32]> = chunk.iter().map(|&i| seqs[i].as_slice()).collect();
        let mut pooled: Tensor = model.embed_ids(&batch, opts.pooling)?;
        if opts.normalize {
            pooled = l2_normalize(&pooled)?;
        }
        let rows: Vec<Vec<f32>> = pooled.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        for (&i, row) in chunk.iter().zip(rows) {
            data[i * cols..(i + 1) * cols].copy_from_slice(&row);
        }
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    Ok(Embeddings {
        data,
        rows: texts.len(),
        cols,
    })
}
