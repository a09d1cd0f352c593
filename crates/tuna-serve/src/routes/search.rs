//! `POST /v1/search` (tuna's own): the chunks of a served index closest to a query, with their
//! sources and scores, as `tuna search` lists them; and the retrieval that chat with sources
//! (`"index"` in a chat request) shares.

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tuna_rag::Hit;

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

/// The served index `index` names (or the only one), checked `top_k` (default `default_k`).
fn pick(
    st: &AppState,
    index: Option<&str>,
    top_k: Option<usize>,
    default_k: usize,
) -> Result<(String, Arc<dyn crate::Searcher>, usize), ApiError> {
    let names = st.indexes.names();
    let name = match (index, names.as_slice()) {
        (Some(n), _) => n.to_string(),
        (None, [only]) => only.clone(),
        (None, []) => {
            let msg = "this server has no index (start it with --index NAME=INDEX)";
            return Err(ApiError::invalid("index", msg));
        }
        (None, _) => {
            let msg = format!("give the index to search: one of {}", names.join(", "));
            return Err(ApiError::invalid("index", msg));
        }
    };
    let searcher = st.indexes.get(&name).ok_or_else(|| {
        let mut e = ApiError::unknown_model(&name, &names);
        e.message = format!("no index `{name}` is served; served: {}", names.join(", "));
        e.param = Some("index".into());
        e.code = Some("index_not_found");
        e
    })?;
    let k = top_k.unwrap_or(default_k);
    if !(1..=MAX_TOP_K).contains(&k) {
        let msg = format!("top_k must be from 1 to {MAX_TOP_K}, got {k}");
        return Err(ApiError::invalid("top_k", msg));
    }
    Ok((name, searcher, k))
}

/// The `top_k` chunks of index `index` (or the only one) closest to `query`, searched on the
/// blocking pool within the request's time limit; the index's name and the hits, best first.
pub async fn retrieve(
    st: &AppState,
    index: Option<&str>,
    query: &str,
    top_k: Option<usize>,
    default_k: usize,
) -> Result<(String, Vec<Hit>), ApiError> {
    let (name, searcher, k) = pick(st, index, top_k, default_k)?;
    let query = query.to_string();
    let job = tokio::task::spawn_blocking(move || searcher.search(&query, k));
    match tokio::time::timeout(st.limits.timeout, job).await {
        Err(_) => Err(ApiError::timeout(st.limits.timeout.as_secs())),
        Ok(Err(_)) => Err(ApiError::internal(
            "the search failed (see the server's log)",
        )),
        Ok(Ok(Err(e))) => {
            tracing::error!(index = %name, "search failed: {e}");
            Err(ApiError::internal(format!("the search failed: {e}")))
        }
        Ok(Ok(Ok(hits))) => Ok((name, hits)),
    }
}

/// A hit as the API shows it (`chunk`: its position in its document).
pub fn hit_json(i: usize, h: &Hit) -> Value {
    json!({"object": "search_result", "index": i, "source": h.source, "title": h.title,
        "chunk": h.seq, "text": h.text, "score": h.score})
}

pub async fn search(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<SearchRequest>,
) -> Result<Json<Value>, ApiError> {
    st.metrics.request("search");
    if req.query.trim().is_empty() {
        // Checked after the index, so that an unknown index is told first.
        pick(&st, req.index.as_deref(), req.top_k, 5)?;
        return Err(ApiError::invalid("query", "the query is empty"));
    }
    let (name, hits) = retrieve(&st, req.index.as_deref(), &req.query, req.top_k, 5).await?;
    let data: Vec<Value> = hits
        .iter()
        .enumerate()
        .map(|(i, h)| hit_json(i, h))
        .collect();
    Ok(Json(
        json!({"object": "list", "index": name, "query": req.query, "data": data}),
    ))
}
