//! A hook for crash tests: with `TUNA_TEST_HALT_AT_STEP=N` in the environment, a training run
//! stands still once optimiser step N is complete (with the checkpoint that step writes, when
//! one is due, and before the evaluation that may follow it), writes N into the file named by
//! `TUNA_TEST_HALT_FILE` (when set) and waits to be killed. A test can then SIGKILL the process
//! at a known step instead of at whatever step a timer happens to hit. Without the variable
//! nothing changes.

use std::path::PathBuf;
use std::time::Duration;

/// The step to halt at, read once per run.
#[derive(Debug, Clone, Default)]
pub struct Halt {
    at: Option<usize>,
    signal: Option<PathBuf>,
}

impl Halt {
    /// The halt asked for by the environment (none: never halts).
    pub fn from_env() -> Self {
        Self {
            at: std::env::var("TUNA_TEST_HALT_AT_STEP")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            signal: std::env::var_os("TUNA_TEST_HALT_FILE").map(PathBuf::from),
        }
    }

    /// Called when optimiser step `step` is complete: never returns if it is the one.
    pub fn after_step(&self, step: usize) {
        if self.at != Some(step) {
            return;
        }
        tracing::warn!(
            step,
            "halted by TUNA_TEST_HALT_AT_STEP; waiting to be killed"
        );
        if let Some(p) = &self.signal {
            let _ = tuna_core::fsutil::atomic_write(p, step.to_string().as_bytes());
        }
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}
