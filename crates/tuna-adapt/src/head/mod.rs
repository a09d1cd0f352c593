//! A new head on a frozen backbone, optionally with its last N blocks (and a decoder's final
//! norm) trained too: the "choose what trains" method. The head itself belongs to the task
//! (classification, reward, value) and trains with every method.

use clap::Args;
use serde::{Deserialize, Serialize};
use tuna_models::Network;

/// Peak learning rate of the head alone.
pub const DEFAULT_LR: f64 = 2e-3;
/// Peak learning rate with unfrozen blocks.
pub const DEFAULT_LR_UNFROZEN: f64 = 1e-4;

/// Head settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Also train the last N blocks (and a decoder's final norm).
    pub unfreeze_last: usize,
}

/// Command-line flags of the head method.
#[derive(Args, Clone, Debug)]
pub struct HeadArgs {
    /// head: also train the last N blocks (and a decoder's final norm).
    #[arg(long, default_value_t = 0)]
    pub unfreeze_last: usize,
}

/// Key-name test for the last blocks and the final norm.
pub fn selector(cfg: &HeadConfig, net: &Network) -> crate::Selector {
    let n = net.num_blocks();
    let blocks: Vec<String> = (n.saturating_sub(cfg.unfreeze_last)..n)
        .map(|i| format!("{}.", net.block_name(i)))
        .collect();
    let norm = if cfg.unfreeze_last > 0 {
        net.final_norm_names()
    } else {
        vec![]
    };
    Box::new(move |name| {
        blocks.iter().any(|p| name.starts_with(p)) || norm.iter().any(|n| n == name)
    })
}

/// Blocks before the first trained one: their output can be computed once and cached.
pub fn frozen_blocks(cfg: &HeadConfig, net: &Network) -> usize {
    net.num_blocks().saturating_sub(cfg.unfreeze_last)
}

/// `head` or `last-N`.
pub fn label(cfg: &HeadConfig) -> String {
    match cfg.unfreeze_last {
        0 => "head".into(),
        n => format!("last-{n}"),
    }
}
