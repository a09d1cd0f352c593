//! Transformer building blocks for tuna, on candle: linear layers, norms, attention, rotary
//! position embeddings, activations, masks and pooling. One concept per file.
//!
//! The hot paths (softmax, norms, rotary) live in [`ops`] so they can be made faster without
//! touching model files.

pub mod activation;
pub mod adamw_op;
pub mod attention;
pub mod attention_op;
pub mod attention_packed;
mod decode_attention;
pub mod delta;
pub mod dropout;
pub mod embedding;
pub mod fallback;
pub mod fast_exp;
mod fresh;
pub mod gelu;
mod grouped_attention;
pub mod hook;
pub mod init;
pub mod kv_cache;
pub mod layer_norm;
pub mod linear;
pub mod linear_op;
pub mod low_rank_op;
pub mod mask;
mod norm_rows;
pub mod ops;
pub mod pooling;
pub mod product;
pub mod quant;
pub mod rms_norm;
pub mod rope_op;
pub mod rotary;
pub mod routed_delta;
pub mod row_split;
pub mod swiglu;
pub mod swiglu_down;
pub mod swiglu_mlp;
pub mod token_logp;
pub mod token_logp_stored;
pub mod train_kernels;
pub mod visit;
pub mod weight;

pub use activation::Activation;
pub use delta::WeightDelta;
pub use embedding::Embedding;
pub use hook::{Hooks, Sublayer, SublayerHook};
pub use kv_cache::KvCache;
pub use layer_norm::LayerNorm;
pub use linear::{linear, linear_no_bias, Linear, LinearVisitor};
pub use pooling::Pooling;
pub use rms_norm::RmsNorm;
pub use rotary::Rotary;
pub use routed_delta::RoutedDelta;
pub use visit::Visitor;
pub use weight::Weight;
