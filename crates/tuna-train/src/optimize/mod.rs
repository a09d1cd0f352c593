//! The one optimisation loop behind every training workflow (classification finetuning, SFT,
//! reward models, DPO, and PPO's update epochs): the seeds, the gradient accumulator, the
//! optimiser step, the loop state with its checkpoints and resume check, and the epoch loop
//! itself. A workflow supplies what differs through [`Stage`]: the loss of a batch, how the
//! held-out part is scored, and what is logged.

pub mod accumulate;
pub mod epochs;
pub mod halt;
pub mod optimizer;
pub mod seed;
pub mod stage;
pub mod state;

pub use epochs::{run, Checkpoints, LoopOutcome};
pub use optimizer::Optimizer;
pub use stage::{EvalPoint, Evaluation, Stage, StepReport, Values};
pub use state::LoopState;
