//! `POST /v1/chat/completions`: messages through the model's chat template, answered whole or
//! streamed.

use super::answer;
use crate::catalog::Need;
use crate::engine::Prompt;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::request::{messages, ChatRequest, SamplingFields};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;

pub async fn chat(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    st.metrics.request("chat");
    let fields = SamplingFields::read(&req.rest)?;
    st.find(&req.model, Need::Generate)?;
    let msgs = messages(&req.messages)?;
    answer(&st, req.model, vec![Prompt::Chat(msgs)], &fields, true).await
}
