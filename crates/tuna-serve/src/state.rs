//! What every handler shares: the served names, the queue to the model, the counters, the
//! limits and the API key.

use crate::catalog::{Catalog, Entry, Need};
use crate::error::ApiError;
use crate::grounding::Grounding;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::search::Indexes;
use crate::worker::Queue;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use tokio::sync::oneshot;

/// The server's shared state.
pub struct AppState {
    /// The served names; changed by `/admin/adapters`.
    catalog: RwLock<Catalog>,
    pub queue: Queue,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub api_key: Option<String>,
    /// Retrieval indexes for `POST /v1/search` and chat with sources.
    pub indexes: Indexes,
    /// The base causal LM's tokenizer and positions, for chat with sources.
    pub grounding: Option<Grounding>,
    /// When the server started (Unix seconds): the `created` of every model.
    pub started: u64,
    next_id: AtomicU64,
}

impl AppState {
    pub fn new(
        catalog: Catalog,
        queue: Queue,
        metrics: Arc<Metrics>,
        limits: Limits,
        api_key: Option<String>,
    ) -> Self {
        Self {
            catalog: RwLock::new(catalog),
            queue,
            metrics,
            limits,
            api_key,
            indexes: Indexes::default(),
            grounding: None,
            started: now(),
            next_id: AtomicU64::new(1),
        }
    }

    /// The served names now.
    pub fn catalog(&self) -> Catalog {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The entry called `id`, if it can do what `need` says (see [`Catalog::find`]).
    pub fn find(&self, id: &str, need: Need) -> Result<Entry, ApiError> {
        let c = self.catalog.read().unwrap_or_else(|p| p.into_inner());
        c.find(id, need).cloned()
    }

    /// Changes the served names (a lock held only for `change`).
    pub fn edit_catalog<R>(&self, change: impl FnOnce(&mut Catalog) -> R) -> R {
        change(&mut self.catalog.write().unwrap_or_else(|p| p.into_inner()))
    }

    /// A fresh response id: `prefix-N`.
    pub fn id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.next_id.fetch_add(1, Relaxed))
    }

    /// The worker's answer, or 504 past the time limit (dropping the receiver, which stops the
    /// work), or 500 when the worker dropped the job (a panic in the model).
    pub async fn wait<T>(&self, rx: oneshot::Receiver<Result<T, ApiError>>) -> Result<T, ApiError> {
        match tokio::time::timeout(self.limits.timeout, rx).await {
            // The worker counts the cancelled generation when it sees the receiver gone.
            Err(_) => Err(ApiError::timeout(self.limits.timeout.as_secs())),
            Ok(Err(_)) => Err(ApiError::internal(
                "the model failed on this request (see the server's log)",
            )),
            Ok(Ok(r)) => r,
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
