//! tuna's adaptation workflows on top of the models: cached embeddings, the feature-based
//! method, run directories and prediction. Libraries report progress through [`Progress`] and
//! log with `tracing`; only the CLI prints.

pub mod alloc;
pub mod cache;
pub mod chart;
pub mod compare;
pub mod embedder;
pub mod error;
pub mod features;
pub mod finetune;
pub mod optimize;
pub mod predict;
pub mod progress;
pub mod run;
pub mod run_marker;
pub mod run_model;
pub mod run_name;
pub mod task_data;

pub use error::{Error, Result};
pub use progress::{Progress, Silent};
