//! What the RLHF stages add to the shared optimisation of `tuna-train` ([`tuna_train::optimize`]:
//! the optimiser, gradient accumulation, checkpoints and resume): which tensors train, the loop
//! state with the RLHF curves, and where a run keeps its checkpoint.

use crate::log::LogRow;
use candle_core::Result;
use std::path::{Path, PathBuf};
use tuna_train::finetune::params::trainable_names;
use tuna_train::finetune::TaskModel;

pub use tuna_train::optimize::Optimizer;

/// Where a stage's loop stands; saved in every checkpoint.
pub type LoopState = tuna_train::optimize::LoopState<LogRow>;

/// Names of the tensors `tm`'s method trains; the new head only with `with_head` (a value or
/// reward head), never for a plain language model.
pub fn trainable(tm: &mut TaskModel, with_head: bool) -> Result<Vec<String>> {
    let names = trainable_names(tm)?;
    Ok(names
        .into_iter()
        .filter(|n| with_head || !tm.head.owns(n))
        .collect())
}

/// Checkpoint folder of a run directory.
pub fn checkpoint_dir(run: &Path) -> PathBuf {
    run.join("checkpoint")
}
