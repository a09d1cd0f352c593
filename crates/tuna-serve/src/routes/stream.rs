//! Streamed answers as server-sent events: one `data: {chunk}` per piece of text, a chunk with
//! the `finish_reason` per finished choice, then `data: [DONE]`. The response starts once the
//! model's first event is in, so a request the model refuses (a prompt too long) is answered
//! with its status and a JSON error; a failure after that is sent as `data: {"error": ...}` and
//! the stream ends without `[DONE]`. When the client goes away the stream is dropped, which
//! closes the channel and stops the generation.

use crate::error::ApiError;
use crate::response::{chunk, role_chunk, usage_chunk, Head};
use crate::worker::Event;
use axum::response::sse::{Event as Sse, Sse as SseBody};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tuna_lm::Generation;

/// Who the chunks are from.
pub struct Info {
    pub id: String,
    pub model: String,
    pub created: u64,
    /// Chat chunks (`delta`) rather than completion chunks (`text`).
    pub chat: bool,
    pub token_ids: bool,
    /// End with a chunk of the usage (`stream_options.include_usage`).
    pub usage: bool,
    /// Fields added to the first chunk (tuna's own, such as `sources`).
    pub extra: Option<serde_json::Value>,
}

struct Progress {
    rx: UnboundedReceiver<Event>,
    /// The first event, taken before the response started.
    first: Option<Event>,
    info: Info,
    started: bool,
    finished: bool,
    /// The finished generations, for the usage chunk.
    done: Vec<Generation>,
    usage_sent: bool,
}

impl Progress {
    /// The next event to send, or none when the stream is over.
    async fn next(&mut self) -> Option<Sse> {
        if self.finished {
            return None;
        }
        let info = &self.info;
        let head = Head {
            id: &info.id,
            model: &info.model,
            created: info.created,
            token_ids: info.token_ids,
        };
        if info.chat && !self.started {
            self.started = true;
            let first = super::with_fields(role_chunk(&head), info.extra.clone());
            return Some(Sse::default().data(first.to_string()));
        }
        let event = match self.first.take() {
            Some(e) => Some(e),
            None => self.rx.recv().await,
        };
        let data = match event {
            Some(Event::Text { index, text }) => {
                chunk(&head, info.chat, index, Some(&text), None).to_string()
            }
            Some(Event::Done { index, generation }) => {
                let c = chunk(&head, info.chat, index, None, Some(&generation)).to_string();
                self.done.push(generation);
                c
            }
            Some(Event::Error(e)) => {
                self.finished = true;
                e.body().to_string()
            }
            None if info.usage && !self.usage_sent => {
                self.usage_sent = true;
                usage_chunk(&head, info.chat, &self.done).to_string()
            }
            None => {
                self.finished = true;
                "[DONE]".to_string()
            }
        };
        Some(Sse::default().data(data))
    }
}

/// The response that streams `rx`'s events, once the first is in: an error as the first event
/// is the answer itself (its status, JSON), and so is no event within `timeout` (504).
pub async fn respond(
    mut rx: UnboundedReceiver<Event>,
    info: Info,
    timeout: Duration,
) -> Result<Response, ApiError> {
    let first = match tokio::time::timeout(timeout, rx.recv()).await {
        Err(_) => return Err(ApiError::timeout(timeout.as_secs())),
        Ok(Some(Event::Error(e))) => return Err(e),
        Ok(None) => {
            return Err(ApiError::internal(
                "the model failed on this request (see the server's log)",
            ))
        }
        Ok(Some(e)) => e,
    };
    let state = Progress {
        rx,
        first: Some(first),
        info,
        started: false,
        finished: false,
        done: vec![],
        usage_sent: false,
    };
    let events = stream::unfold(state, |mut s| async move {
        let e = s.next().await?;
        Some((Ok::<_, Infallible>(e), s))
    });
    Ok(SseBody::new(events).into_response())
}
