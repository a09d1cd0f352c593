//! An OpenAI-compatible HTTP server on tokio + axum for tuna's models: chat and text
//! completions (whole or streamed as server-sent events), embeddings and model listing, plus
//! classification with finished runs; a base model and its adapters (unmerged, sharing the
//! base's weights) picked per request by `model` (`base` or `base:adapter`).
//!
//! Forward passes run on one model thread fed by a bounded queue ([`worker`]), never on the
//! async runtime; concurrent generations are decoded together there, joining and leaving the
//! running batch between steps ([`scheduler`]). Limits ([`Limits`]): body size (413), `max_tokens` (400), queue (429 with
//! `Retry-After`), a time limit per request (504); a client that goes away stops its
//! generation. Errors come in OpenAI's shape ([`ApiError`]).

pub mod answer;
pub mod auth;
pub mod catalog;
pub mod engine;
pub mod error;
pub mod extract;
pub mod gather;
pub mod grounding;
pub mod limits;
pub mod lm_adapter;
pub mod metrics;
pub mod mix;
pub mod request;
pub mod response;
pub mod routes;
pub mod scheduler;
pub mod search;
pub mod server;
pub mod state;
pub mod worker;

pub use engine::Engine;
pub use error::ApiError;
pub use limits::Limits;
pub use lm_adapter::{adapter_dir, with_lm_adapter, AdaptedLm};
pub use search::{Indexes, Searcher};
pub use server::{bind, bind_address, serve, Options, ServeError};
