//! Retrieval indexes served for `POST /v1/search` (`tuna serve --index NAME=INDEX`): each one
//! is a [`Searcher`] that embeds a query with the encoder its index was built with and returns
//! the closest chunks. The search runs on the blocking thread pool, beside the model thread.

use std::sync::Arc;
use tuna_rag::Hit;

/// An index that answers queries.
pub trait Searcher: Send + Sync {
    /// The `k` chunks closest to `query`, best first; an error says what failed.
    fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>, String>;
}

/// The served indexes by name.
#[derive(Clone, Default)]
pub struct Indexes(pub Vec<(String, Arc<dyn Searcher>)>);

impl Indexes {
    /// The names, in the order given.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The index called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Searcher>> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
    }
}

impl std::fmt::Debug for Indexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}
