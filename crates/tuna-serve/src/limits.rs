//! What one request may ask of the server, and how much waits at once.

use std::time::Duration;

/// The server's limits (each one a flag of `tuna serve`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most bytes in a request body (larger: 413).
    pub max_body_bytes: usize,
    /// Most tokens one request may generate (`max_tokens` above it: 400).
    pub max_tokens: usize,
    /// Tokens generated when a request names no `max_tokens` (at most `max_tokens`).
    pub default_max_tokens: usize,
    /// Requests that may wait for the model at once (more: 429 with `Retry-After`).
    pub queue: usize,
    /// Most texts in one embeddings or classify request, and prompts in one completion.
    pub max_inputs: usize,
    /// A request still running after this is stopped and answered 504.
    pub timeout: Duration,
    /// Most prompts decoded together (continuous batching); the rest wait their turn.
    pub max_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1 << 20,
            max_tokens: 1024,
            default_max_tokens: 256,
            queue: 16,
            max_inputs: 256,
            timeout: Duration::from_secs(300),
            max_batch: 16,
        }
    }
}
