//! Where a training loop stands, saved in every checkpoint: the epoch and next batch, the
//! steps done, the best evaluation so far, the curves, the seconds spent and the settings a
//! resume must match. Reads the checkpoints of the earlier per-workflow loops too (their
//! fields are a subset; the RLHF stages called the curves `log`).

use serde::{Deserialize, Serialize};

/// Where the loop stands; `R` is one row of the workflow's curves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoopState<R> {
    /// Epoch in progress (0-based); PPO: iterations done.
    pub epoch: usize,
    /// Next batch of that epoch.
    #[serde(default)]
    pub next_batch: usize,
    /// Optimiser steps done.
    pub step: usize,
    /// Best evaluation score so far (none before the first, or for workflows that keep none).
    #[serde(default, with = "tuna_core::float_json::option")]
    pub best_val: Option<f64>,
    #[serde(default)]
    pub best_epoch: Option<usize>,
    /// Epochs since the best one.
    #[serde(default)]
    pub bad_epochs: usize,
    /// Rows of the curves, oldest first.
    #[serde(alias = "log")]
    pub history: Vec<R>,
    /// Training seconds before this checkpoint (so a resumed run reports its total).
    #[serde(with = "tuna_core::float_json")]
    pub seconds: f64,
    /// The run's settings as JSON; a resume must match.
    pub settings: String,
    /// Training is over (the step budget is spent, or it stopped early).
    #[serde(default)]
    pub done: bool,
}

impl<R> LoopState<R> {
    /// The state of a fresh run with `settings`.
    pub fn new(settings: &str) -> Self {
        Self {
            epoch: 0,
            next_batch: 0,
            step: 0,
            best_val: None,
            best_epoch: None,
            bad_epochs: 0,
            history: vec![],
            seconds: 0.0,
            settings: settings.to_string(),
            done: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_earlier_loop_states() {
        // The classification loop's (best_val null before the first evaluation) and the RLHF
        // stages' (`log`, no best).
        let c = r#"{"epoch":0,"next_batch":2,"step":2,"best_val":null,"best_epoch":null,
            "bad_epochs":0,"history":[1],"seconds":1.5,"settings":"s","done":false}"#;
        let s: LoopState<u32> = serde_json::from_str(c).unwrap();
        assert_eq!((s.step, s.best_val, s.history), (2, None, vec![1]));
        let r = r#"{"step":4,"epoch":1,"next_batch":0,"log":[1,2],"seconds":2.0,"settings":"s"}"#;
        let s: LoopState<u32> = serde_json::from_str(r).unwrap();
        assert_eq!((s.step, s.epoch, s.history.len(), s.done), (4, 1, 2, false));
    }

    #[test]
    fn non_finite_values_survive_a_checkpoint() {
        // A diverged step's loss, an infinite gradient norm: written and read back as they were
        // (serde_json alone writes them as null and reads the null back as none, or fails).
        use crate::finetune::history::HistoryRow;
        let mut s: LoopState<HistoryRow> = LoopState::new("s");
        s.history.push(HistoryRow {
            step: 1,
            epoch: 0.5,
            lr: f64::INFINITY,
            loss: Some(f64::NAN),
            val_accuracy: None,
            val_loss: Some(f64::NEG_INFINITY),
        });
        s.best_val = Some(f64::NAN);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        tuna_core::fsutil::write_json(&p, &(&s, 3usize)).unwrap();
        let (back, t): (LoopState<HistoryRow>, usize) = tuna_core::fsutil::read_json(&p).unwrap();
        let r = &back.history[0];
        assert_eq!(t, 3);
        assert!(r.loss.is_some_and(f64::is_nan), "{:?}", r.loss);
        assert_eq!((r.lr, r.val_loss), (f64::INFINITY, Some(f64::NEG_INFINITY)));
        assert!(back.best_val.is_some_and(f64::is_nan));
    }
}
