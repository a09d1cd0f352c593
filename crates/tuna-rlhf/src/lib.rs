//! Aligning a causal LM with preferences, as InstructGPT did: supervised finetuning on
//! instructions, a reward model trained from ranked pairs, PPO against it, and DPO as the
//! simpler alternative. Every stage trains through the finetuning methods of `tuna-train`
//! (LoRA or all weights), writes its settings, metrics and charts, and resumes after a kill.

pub mod dpo;
pub mod format;
pub mod log;
pub mod logprobs;
pub mod optim;
pub mod ppo;
pub mod records;
pub mod reward;
pub mod sft;
pub mod stage;

pub use format::{FormatKind, Formatter, Seq};
pub use records::{read_examples, read_pairs, read_prompts, Example, Pair, Prompt};
