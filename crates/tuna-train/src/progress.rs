//! Progress reporting from long library work to whoever shows it (the CLI's progress bars).

/// Receives progress of a long task. Implementations must be cheap; calls come from the work loop.
pub trait Progress {
    /// A new phase with `total` units of work (0 when unknown).
    fn start(&self, phase: &str, total: u64);
    /// `n` more units done.
    fn advance(&self, n: u64);
    /// The phase is over.
    fn finish(&self);
    /// A short status line for the current phase (loss, learning rate, speed).
    fn message(&self, _msg: &str) {}
}

/// Progress that goes nowhere.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
