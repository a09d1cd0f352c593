//! One file per verb.

pub mod compare;
pub mod embed;
pub mod finetune;
pub mod generate;
pub mod icl;
pub mod info;
pub mod merge;
pub mod predict;
pub mod prompt_search;
pub mod train;
