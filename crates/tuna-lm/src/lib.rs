//! Causal language models without training: generation with a key/value cache (streamed,
//! batched, or continuously batched: sequences joining and leaving a running batch), chat
//! templates, log-likelihood scoring of continuations, in-context classification with k-shot
//! prompts, and prompt search.

pub mod batch;
pub mod chat;
pub mod demos;
pub mod generate;
pub mod icl;
pub mod prompt_search;
pub mod sampling;
pub mod score;
pub mod stream;
pub mod template;

pub use batch::{DecodeBatch, RowEvent};
pub use chat::{stop_token_ids, ChatTemplate, Message};
pub use demos::{DemoPicker, Selection};
pub use generate::{GenerateConfig, Generation, Generator, Session, StopReason};
pub use icl::{IclClassifier, IclPrediction, IclSettings, Pool};
pub use sampling::{Sampler, Sampling};
pub use score::{Candidate, LogLikelihood, Scorer};
pub use template::PromptTemplate;
