//! Model families for tuna, written for training as well as inference: BERT-style encoders
//! ([`bert`]) and Llama-style decoders ([`llama`]), loaded from Hugging Face directories or GGUF
//! files ([`gguf`]) through one entry point, [`load_model`].

pub mod bert;
pub mod ctx;
pub mod gguf;
pub mod gguf_write;
pub mod half_weights;
pub mod hub;
pub mod llama;
pub mod network;
pub mod registry;
pub mod testing;
pub mod tokenizer;
pub mod truncation;
pub mod validate;
pub mod virtual_tokens;

pub use ctx::Ctx;
pub use hub::resolve_model;
pub use network::Network;
pub use registry::{load_model, Family, Model, ModelInfo};
pub use tokenizer::{Batch, TextTokenizer};
pub use virtual_tokens::VirtualTokens;
