//! Streamed answers as server-sent events: one `data: {chunk}` per piece of text, a chunk with
//! the `finish_reason` per finished choice, then `data: [DONE]`. A failure mid-stream is sent as
//! `data: {"error": ...}` and the stream ends without `[DONE]`. When the client goes away the
//! stream is dropped, which closes the channel and stops the generation.

use crate::response::{chunk, role_chunk, usage_chunk, Head};
use crate::worker::Event;
use axum::response::sse::{Event as Sse, Sse as SseBody};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use std::convert::Infallible;
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
}

struct Progress {
    rx: UnboundedReceiver<Event>,
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
            return Some(Sse::default().data(role_chunk(&head).to_string()));
        }
        let data = match self.rx.recv().await {
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

/// The response that streams `rx`'s events.
pub fn respond(rx: UnboundedReceiver<Event>, info: Info) -> Response {
    let state = Progress {
        rx,
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
    SseBody::new(events).into_response()
}
