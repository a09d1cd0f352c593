//! `POST /v1/completions`: plain prompts (one or several), answered whole or streamed.

use super::answer;
use crate::catalog::Need;
use crate::engine::Prompt;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::request::{texts, CompletionRequest, SamplingFields};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;

pub async fn completions(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    st.metrics.request("completions");
    let fields = SamplingFields::read(&req.rest)?;
    st.find(&req.model, Need::Generate)?;
    let prompts: Vec<Prompt> = texts(&req.prompt, "prompt", st.limits.max_inputs)?
        .into_iter()
        .map(Prompt::Text)
        .collect();
    answer(&st, req.model, prompts, &fields, false, None).await
}
