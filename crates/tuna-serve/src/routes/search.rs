//! `POST /v1/search` (tuna's own): the chunks of a served index closest to a query, with their
//! sources and scores, as `tuna search` lists them.

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Most chunks one search returns.
pub const MAX_TOP_K: usize = 100;

/// `POST /v1/search`.
#[derive(Debug, Deserialize)]
pub struct SearchRequest {
    /// The index (may be left out when the server has one).
    pub index: Option<String>,
    pub query: String,
    /// How many chunks (default 5).
    pub top_k: Option<usize>,
}

pub async fn search(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<SearchRequest>,
) -> Result<Json<Value>, ApiError> {
    st.metrics.request("search");
    let names = st.indexes.names();
    let name = match (&req.index, names.as_slice()) {
        (Some(n), _) => n.clone(),
        (None, [only]) => only.clone(),
        (None, []) => {
            return Err(ApiError::invalid(
                "index",
                "this server has no index (start it with --index NAME=INDEX)",
            ))
        }
        (None, _) => {
            let msg = format!("give the index to search: one of {}", names.join(", "));
            return Err(ApiError::invalid("index", msg));
        }
    };
    let index = st.indexes.get(&name).ok_or_else(|| {
        let mut e = ApiError::unknown_model(&name, &names);
        e.message = format!("no index `{name}` is served; served: {}", names.join(", "));
        e.param = Some("index".into());
        e.code = Some("index_not_found");
        e
    })?;
    if req.query.trim().is_empty() {
        return Err(ApiError::invalid("query", "the query is empty"));
    }
    let k = req.top_k.unwrap_or(5);
    if !(1..=MAX_TOP_K).contains(&k) {
        let msg = format!("top_k must be from 1 to {MAX_TOP_K}, got {k}");
        return Err(ApiError::invalid("top_k", msg));
    }
    let query = req.query.clone();
    let job = tokio::task::spawn_blocking(move || index.search(&query, k));
    let hits = match tokio::time::timeout(st.limits.timeout, job).await {
        Err(_) => return Err(ApiError::timeout(st.limits.timeout.as_secs())),
        Ok(Err(_)) => {
            return Err(ApiError::internal(
                "the search failed (see the server's log)",
            ))
        }
        Ok(Ok(Err(e))) => {
            tracing::error!(index = %name, "search failed: {e}");
            return Err(ApiError::internal(format!("the search failed: {e}")));
        }
        Ok(Ok(Ok(hits))) => hits,
    };
    let data: Vec<Value> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| {
            json!({"object": "search_result", "index": i, "source": h.source, "title": h.title,
                "chunk": h.chunk, "text": h.text, "score": h.score})
        })
        .collect();
    Ok(Json(
        json!({"object": "list", "index": name, "query": req.query, "data": data}),
    ))
}
