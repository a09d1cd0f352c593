//! One file per endpoint.

pub mod chat;
pub mod classify;
pub mod completions;
pub mod embeddings;
pub mod info;
pub mod stream;

use crate::engine::Prompt;
use crate::error::ApiError;
use crate::request::GenParams;
use crate::state::AppState;
use crate::worker::{Answer, Event, Job};
use tokio::sync::{mpsc, oneshot};
use tuna_lm::Generation;

/// Queues a generation whose answer comes whole.
pub async fn generate_whole(
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
pub fn generate_stream(
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
