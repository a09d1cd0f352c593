//! `POST /v1/classify` (tuna's own): labels of texts by a classification run served with
//! `--run NAME=RUN_DIR`, with every label's probability.

use crate::catalog::Need;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::request::{inputs, ClassifyRequest};
use crate::state::AppState;
use crate::worker::Job;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tokio::sync::oneshot;

pub async fn classify(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<ClassifyRequest>,
) -> Result<Json<Value>, ApiError> {
    st.metrics.request("classify");
    st.find(&req.model, Need::Classify)?;
    let list = inputs(&req.input, st.limits.max_inputs)?;
    let (tx, rx) = oneshot::channel();
    st.queue.submit(Job::Classify {
        model: req.model.clone(),
        texts: list,
        answer: tx,
    })?;
    let (preds, labels) = st.wait(rx).await?;
    let data: Vec<Value> = preds
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let probs: Map<String, Value> = labels
                .iter()
                .zip(&p.probabilities)
                .map(|(l, &v)| (l.clone(), json!(v)))
                .collect();
            json!({"index": i, "label": p.label, "confidence": p.confidence, "probabilities": probs})
        })
        .collect();
    Ok(Json(
        json!({"object": "list", "model": req.model, "labels": labels, "data": data}),
    ))
}
