//! `GET /v1/models`, `GET /health` and `GET /metrics`.

use crate::catalog::Kind;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// The served names, in OpenAI's model list (`kind`: base, adapter or classifier).
pub async fn models(State(st): State<Arc<AppState>>) -> Json<Value> {
    st.metrics.request("models");
    let data: Vec<Value> = st
        .catalog()
        .entries
        .iter()
        .map(|e| {
            let kind = match e.kind {
                Kind::Base => "base",
                Kind::Adapter => "adapter",
                Kind::Classifier => "classifier",
            };
            json!({"id": e.id, "object": "model", "created": st.started, "owned_by": "tuna", "kind": kind})
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// Liveness, for probes (never behind the API key).
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The counters in Prometheus' text format.
pub async fn metrics(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}
