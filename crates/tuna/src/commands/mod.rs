//! One file per verb.

pub mod embed;
pub mod finetune;
pub mod info;
pub mod predict;
pub mod train;
