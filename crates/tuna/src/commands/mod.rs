//! One file per verb.

pub mod compare;
pub mod embed;
pub mod finetune;
pub mod info;
pub mod merge;
pub mod predict;
pub mod train;
