//! `POST /v1/chat/completions`: messages through the model's chat template, answered whole or
//! streamed; with `"index"` (tuna's own field), answered from the index's closest chunks, which
//! the answer lists as `sources` (see [`crate::grounding`]).

use super::answer;
use super::search::{hit_json, retrieve};
use crate::catalog::Need;
use crate::engine::Prompt;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::grounding::question;
use crate::request::{messages, ChatRequest, Rest, SamplingFields};
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;
use tuna_lm::Message;

/// Chunks given to the model when a request names an index but no `top_k` (as `tuna ask`).
const SOURCES: usize = 3;

pub async fn chat(
    State(st): State<Arc<AppState>>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> Result<Response, ApiError> {
    st.metrics.request("chat");
    let fields = SamplingFields::read(&req.rest)?;
    st.find(&req.model, Need::Generate)?;
    let mut msgs = messages(&req.messages)?;
    let extra = match index_fields(&req.rest)? {
        Some(f) => Some(ground(&st, &mut msgs, &fields, &f).await?),
        None => None,
    };
    answer(
        &st,
        req.model,
        vec![Prompt::Chat(msgs)],
        &fields,
        true,
        extra,
    )
    .await
}

/// What a chat request that names an index asks for (tuna's own fields).
struct IndexFields {
    index: String,
    /// Chunks to retrieve.
    top_k: Option<usize>,
    /// Tokens for instruction, sources and question.
    context_tokens: Option<usize>,
    /// The instruction before the sources.
    instruction: Option<String>,
}

/// A whole number field of `rest`, if given.
fn count_field(rest: &Rest, name: &str) -> Result<Option<usize>, ApiError> {
    match rest.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|k| Some(k as usize))
            .ok_or_else(|| ApiError::wrong_type(name, format!("{name} must be a whole number"))),
    }
}

/// The index fields of a chat request, when it names an index.
fn index_fields(rest: &Rest) -> Result<Option<IndexFields>, ApiError> {
    let index = match rest.get("index") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::wrong_type("index", "index must be a string")),
    };
    Ok(Some(IndexFields {
        index,
        top_k: count_field(rest, "top_k")?,
        context_tokens: count_field(rest, "context_tokens")?,
        instruction: match rest.get("instruction") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                let msg = "instruction must be a string";
                return Err(ApiError::wrong_type("instruction", msg));
            }
        },
    }))
}

/// Retrieves for the last user message of `msgs` and puts the sources before it; the fields
/// the answer gets: the index and the sources given to the model.
async fn ground(
    st: &AppState,
    msgs: &mut [Message],
    fields: &SamplingFields,
    f: &IndexFields,
) -> Result<Value, ApiError> {
    let grounding = st
        .grounding
        .as_ref()
        .ok_or_else(|| ApiError::invalid("index", "the served model cannot answer from sources"))?;
    let max_tokens = fields.check(&st.limits)?.max_tokens;
    let q = question(msgs)?.to_string();
    let (name, hits) = retrieve(st, Some(&f.index), &q, f.top_k, SOURCES).await?;
    let limits = (f.context_tokens, max_tokens);
    let sources = grounding.ground(msgs, &hits, f.instruction.as_deref(), limits)?;
    let sources: Vec<Value> = sources
        .iter()
        .enumerate()
        .map(|(i, h)| hit_json(i, h))
        .collect();
    Ok(json!({"index": name, "sources": sources}))
}
