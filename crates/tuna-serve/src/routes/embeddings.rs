//! `POST /v1/embeddings`: pooled vectors of texts, as `tuna embed` makes them, as float lists or
//! base64 (little-endian f32, what the `openai` client asks for by default).

use crate::catalog::Need;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::request::{inputs, EmbeddingRequest};
use crate::state::AppState;
use crate::worker::Job;
use axum::extract::State;
use axum::Json;
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::oneshot;

pub async fn embeddings(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<EmbeddingRequest>,
) -> Result<Json<Value>, ApiError> {
    st.metrics.request("embeddings");
    st.find(&req.model, Need::Embed)?;
    let list = inputs(&req.input, st.limits.max_inputs)?;
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("encoding_format must be float or base64, got `{other}`"),
            ))
        }
    };
    let (tx, rx) = oneshot::channel();
    st.queue.submit(Job::Embed {
        model: req.model.clone(),
        texts: list,
        answer: tx,
    })?;
    let (emb, tokens) = st.wait(rx).await?;
    let data: Vec<Value> = (0..emb.rows)
        .map(|i| {
            let row = emb.row(i);
            let v = if base64 {
                let bytes: Vec<u8> = row.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(row)
            };
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    Ok(Json(json!({
        "object": "list", "data": data, "model": req.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })))
}
