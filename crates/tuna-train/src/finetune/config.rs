//! How a finetuning run optimises: epochs, batches, the learning-rate schedule, clipping,
//! checkpoints.

use serde::{Deserialize, Serialize};

/// Learning-rate schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Linear,
    Cosine,
    Constant,
}

/// How to optimise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Batches whose gradients are summed before one optimiser step.
    pub grad_accum: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Share of the optimiser steps spent warming the learning rate up from 0.
    pub warmup: f64,
    pub schedule: Schedule,
    /// Largest global gradient norm (0: no clipping).
    pub clip: f64,
    /// Longest input in tokens.
    pub max_len: usize,
    pub seed: u64,
    /// Stop after this many epochs without a better validation accuracy (0: never).
    pub patience: usize,
    /// Write a checkpoint every this many optimiser steps (0: only at epoch ends).
    pub checkpoint_every: usize,
    /// Stop after this many optimiser steps (benchmarks and smoke tests; 0: no limit).
    pub max_steps: usize,
    /// Items of a batch run forward and backward at once (0: the whole batch). Smaller pieces
    /// bound the memory a step needs; their gradients add up to the whole batch's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub micro_batch: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            batch_size: 16,
            grad_accum: 1,
            lr: 5e-4,
            weight_decay: 0.01,
            warmup: 0.1,
            schedule: Schedule::Linear,
            clip: 1.0,
            max_len: 128,
            seed: 42,
            patience: 0,
            checkpoint_every: 200,
            max_steps: 0,
            micro_batch: 0,
        }
    }
}

/// The learning rate at optimiser step `step` (0-based) of `total`.
pub fn lr_at(cfg: &TrainConfig, step: usize, total: usize) -> f64 {
    let warm = (cfg.warmup * total as f64).round() as usize;
    if step < warm {
        return cfg.lr * (step + 1) as f64 / warm as f64;
    }
    let left = (total - warm).max(1) as f64;
    let done = (step - warm) as f64 / left;
    match cfg.schedule {
        Schedule::Constant => cfg.lr,
        Schedule::Linear => cfg.lr * (1.0 - done).max(0.0),
        Schedule::Cosine => cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * done).cos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        let cfg = TrainConfig {
            lr: 1.0,
            warmup: 0.1,
            ..TrainConfig::default()
        };
        assert!((lr_at(&cfg, 0, 100) - 0.1).abs() < 1e-12);
        assert!((lr_at(&cfg, 9, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cfg, 10, 100) - 1.0).abs() < 1e-12);
        assert!(lr_at(&cfg, 99, 100) < 0.02);
        let cos = TrainConfig {
            schedule: Schedule::Cosine,
            ..cfg
        };
        assert!((lr_at(&cos, 55, 100) - 0.5).abs() < 1e-9);
    }
}
