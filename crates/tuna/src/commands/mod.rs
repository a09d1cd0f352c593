//! One file per verb.

pub mod ask;
pub mod compare;
pub mod dpo;
pub mod embed;
pub mod export;
pub mod finetune;
pub mod generate;
pub mod icl;
pub mod index;
pub mod info;
pub mod merge;
pub mod merge_gguf;
pub mod ppo;
pub mod predict;
pub mod prompt_search;
pub mod reward;
pub mod rlhf;
pub mod search;
pub mod serve;
pub mod sft;
pub mod train;
