//! `POST /v1/completions`: plain prompts (one or several), answered whole or streamed.

use super::stream::{respond, Info};
use super::{generate_stream, generate_whole};
use crate::catalog::Need;
use crate::engine::Prompt;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::request::{texts, CompletionRequest};
use crate::response::{completion, Head};
use crate::state::{now, AppState};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

pub async fn completions(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    st.metrics.request("completions");
    st.catalog.find(&req.model, Need::Generate)?;
    let prompts: Vec<Prompt> = texts(&req.prompt, "prompt", st.limits.max_inputs)?
        .into_iter()
        .map(Prompt::Text)
        .collect();
    let params = req.sampling.check(&st.limits)?;
    let token_ids = params.return_token_ids;
    let (id, created) = (st.id("cmpl"), now());
    if req.sampling.stream() {
        let rx = generate_stream(&st, &req.model, prompts, params)?;
        let usage = req.sampling.include_usage();
        let info = Info {
            id,
            model: req.model,
            created,
            chat: false,
            token_ids,
            usage,
        };
        return Ok(respond(rx, info));
    }
    let gens = generate_whole(&st, &req.model, prompts, params).await?;
    let head = Head {
        id: &id,
        model: &req.model,
        created,
        token_ids,
    };
    Ok(Json(completion(&head, &gens)).into_response())
}
