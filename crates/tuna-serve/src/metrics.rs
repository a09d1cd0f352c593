//! Counters for `GET /metrics`, in Prometheus' text format: requests per endpoint, errors per
//! status, tokens in and out, batched decoding steps, cancelled generations, the queue's depth
//! and the prompts decoding.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// The endpoints counted.
pub const ENDPOINTS: [&str; 6] = [
    "chat",
    "completions",
    "embeddings",
    "classify",
    "models",
    "admin",
];

/// The server's counters (shared by the handlers and the worker).
#[derive(Default)]
pub struct Metrics {
    requests: [AtomicU64; ENDPOINTS.len()],
    errors: Mutex<Vec<(u16, u64)>>,
    pub prompt_tokens: AtomicU64,
    pub generated_tokens: AtomicU64,
    /// Decoding forward passes: one token of every row of a batch each.
    pub decode_steps: AtomicU64,
    /// Generations stopped because the client went away or the time limit passed.
    pub cancelled: AtomicU64,
    /// Requests waiting for the worker.
    pub queued: AtomicU64,
    /// Prompts being decoded together (continuous batching).
    pub running: AtomicU64,
}

impl Metrics {
    /// Counts a request to `endpoint` (one of [`ENDPOINTS`]).
    pub fn request(&self, endpoint: &str) {
        if let Some(i) = ENDPOINTS.iter().position(|e| *e == endpoint) {
            self.requests[i].fetch_add(1, Relaxed);
        }
    }

    /// Counts an error answer of `status`.
    pub fn error(&self, status: u16) {
        if let Ok(mut errors) = self.errors.lock() {
            match errors.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => errors.push((status, 1)),
            }
        }
    }

    /// The counters in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP tuna_requests_total Requests per endpoint.\n# TYPE tuna_requests_total counter"
        );
        for (e, n) in ENDPOINTS.iter().zip(&self.requests) {
            let _ = writeln!(
                s,
                "tuna_requests_total{{endpoint=\"{e}\"}} {}",
                n.load(Relaxed)
            );
        }
        let _ = writeln!(s, "# HELP tuna_errors_total Error answers per HTTP status.\n# TYPE tuna_errors_total counter");
        let mut errors = self.errors.lock().map(|e| e.clone()).unwrap_or_default();
        errors.sort();
        for (status, n) in errors {
            let _ = writeln!(s, "tuna_errors_total{{status=\"{status}\"}} {n}");
        }
        let gauges = [
            (
                "tuna_prompt_tokens_total",
                "counter",
                "Prompt tokens run.",
                &self.prompt_tokens,
            ),
            (
                "tuna_generated_tokens_total",
                "counter",
                "Tokens generated.",
                &self.generated_tokens,
            ),
            (
                "tuna_decode_steps_total",
                "counter",
                "Decoding forward passes, each one token of every prompt in a batch.",
                &self.decode_steps,
            ),
            (
                "tuna_cancelled_total",
                "counter",
                "Generations stopped early: client gone or time limit.",
                &self.cancelled,
            ),
            (
                "tuna_queue_depth",
                "gauge",
                "Requests waiting for the model.",
                &self.queued,
            ),
            (
                "tuna_running",
                "gauge",
                "Prompts the model is decoding together.",
                &self.running,
            ),
        ];
        for (name, kind, help, v) in gauges {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter() {
        let m = Metrics::default();
        m.request("chat");
        m.error(404);
        m.error(404);
        let s = m.render();
        assert!(
            s.contains("tuna_requests_total{endpoint=\"chat\"} 1"),
            "{s}"
        );
        assert!(s.contains("tuna_errors_total{status=\"404\"} 2"), "{s}");
        assert!(s.contains("tuna_queue_depth 0"), "{s}");
    }
}
