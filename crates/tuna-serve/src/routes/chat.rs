//! `POST /v1/chat/completions`: messages through the model's chat template, answered whole or
//! streamed.

use super::stream::{respond, Info};
use super::{generate_stream, generate_whole};
use crate::catalog::Need;
use crate::engine::Prompt;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::request::{messages, ChatRequest};
use crate::response::{chat as answer, Head};
use crate::state::{now, AppState};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

pub async fn chat(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    st.metrics.request("chat");
    st.catalog.find(&req.model, Need::Generate)?;
    let msgs = messages(&req.messages)?;
    let params = req.sampling.check(&st.limits)?;
    let token_ids = params.return_token_ids;
    let (id, created) = (st.id("chatcmpl"), now());
    let prompts = vec![Prompt::Chat(msgs)];
    if req.sampling.stream() {
        let rx = generate_stream(&st, &req.model, prompts, params)?;
        let usage = req.sampling.include_usage();
        let info = Info {
            id,
            model: req.model,
            created,
            chat: true,
            token_ids,
            usage,
        };
        return Ok(respond(rx, info));
    }
    let gens = generate_whole(&st, &req.model, prompts, params).await?;
    let g = gens
        .first()
        .ok_or_else(|| ApiError::internal("no generation came back"))?;
    let head = Head {
        id: &id,
        model: &req.model,
        created,
        token_ids,
    };
    Ok(Json(answer(&head, g)).into_response())
}
