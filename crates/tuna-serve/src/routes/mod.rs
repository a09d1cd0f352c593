//! One file per endpoint, and the generation both chat and completions answer with.

pub mod admin;
pub mod chat;
pub mod classify;
pub mod completions;
pub mod embeddings;
pub mod info;
pub mod search;
pub mod stream;

use crate::engine::Prompt;
use crate::error::ApiError;
use crate::request::{GenParams, SamplingFields};
use crate::response::{self, Head};
use crate::state::{now, AppState};
use crate::worker::{Answer, Event, Job};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use stream::{respond, Info};
use tokio::sync::{mpsc, oneshot};
use tuna_lm::Generation;

/// Generates from `prompts` with `model` and answers: streamed as server-sent events when
/// `fields` ask for it, else whole; in chat's shapes (`chat`, one prompt) or completions'.
/// The settings of `fields` are checked first (400).
pub async fn answer(
    st: &AppState,
    model: String,
    prompts: Vec<Prompt>,
    fields: &SamplingFields,
    chat: bool,
    extra: Option<Value>,
) -> Result<Response, ApiError> {
    let params = fields.check(&st.limits)?;
    let token_ids = params.return_token_ids;
    let (id, created) = (st.id(if chat { "chatcmpl" } else { "cmpl" }), now());
    if fields.stream() {
        let rx = generate_stream(st, &model, prompts, params)?;
        let info = Info {
            id,
            model,
            created,
            chat,
            token_ids,
            usage: fields.include_usage(),
            extra,
        };
        return respond(rx, info, st.limits.timeout).await;
    }
    let gens = generate_whole(st, &model, prompts, params).await?;
    let head = Head {
        id: &id,
        model: &model,
        created,
        token_ids,
    };
    let body = if chat {
        let g = gens
            .first()
            .ok_or_else(|| ApiError::internal("no generation came back"))?;
        response::chat(&head, g)
    } else {
        response::completion(&head, &gens)
    };
    let body = with_fields(body, extra);
    Ok(Json(body).into_response())
}

/// `body` with the fields of the object `extra` added (tuna's own, such as `sources`).
pub fn with_fields(mut body: Value, extra: Option<Value>) -> Value {
    if let (Value::Object(b), Some(Value::Object(e))) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

/// Queues a generation whose answer comes whole.
async fn generate_whole(
    st: &AppState,
    model: &str,
    prompts: Vec<Prompt>,
    params: GenParams,
) -> Result<Vec<Generation>, ApiError> {
    let (tx, rx) = oneshot::channel();
    st.queue.submit(Job::Generate {
        model: model.into(),
        prompts,
        params,
        answer: Answer::Whole(tx),
    })?;
    st.wait(rx).await
}

/// Queues a generation whose answer is streamed.
fn generate_stream(
    st: &AppState,
    model: &str,
    prompts: Vec<Prompt>,
    params: GenParams,
) -> Result<mpsc::UnboundedReceiver<Event>, ApiError> {
    let (tx, rx) = mpsc::unbounded_channel();
    st.queue.submit(Job::Generate {
        model: model.into(),
        prompts,
        params,
        answer: Answer::Stream(tx),
    })?;
    Ok(rx)
}
