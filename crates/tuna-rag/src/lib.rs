//! Indexing and retrieval-augmented generation: documents (text, Markdown, JSONL, SQuAD JSON)
//! cut into token chunks, embedded, stored in a vector index (SQLite + sqlite-vec, or
//! PostgreSQL + pgvector), searched by cosine similarity, and turned into grounded prompts;
//! with retrieval (recall@k, MRR) and answer (exact match, F1) metrics.
//!
//! The crate holds no model: the caller supplies an [`Embedder`] (token spans and vectors) and
//! a token counter for prompts.

pub mod chunk;
pub mod docs;
mod error;
pub mod indexer;
pub mod metrics;
pub mod prompt;
pub mod questions;
pub mod store;

pub use chunk::{chunk_text, Chunk, ChunkConfig};
pub use docs::{load_documents, Document};
pub use error::{Error, Result};
pub use indexer::{add_documents, embed_input, AddReport, Embedder};
pub use metrics::{exact_match, token_f1, RetrievalMetrics, RetrievalScore};
pub use prompt::{grounded_prompt, GroundedPrompt};
pub use questions::{load_questions, Question};
pub use store::{open, DocEntry, Hit, IndexMeta, NewChunk, Stats, Store};
