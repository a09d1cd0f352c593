//! Full finetuning: every weight of the network trains (a decoder's separate output layer
//! stays frozen: classification and reward heads replace it).

/// Peak learning rate when none is given.
pub const DEFAULT_LR: f64 = 5e-5;

/// Every tensor but the language-model head.
pub fn trains(name: &str) -> bool {
    !name.starts_with("lm_head.")
}
