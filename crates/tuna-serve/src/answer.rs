//! Where a generation's answer goes: all at once on a one-shot channel, or piece by piece as
//! events of a stream.

use crate::error::ApiError;
use tokio::sync::{mpsc, oneshot};
use tuna_lm::Generation;

/// A piece of a streamed answer.
#[derive(Debug)]
pub enum Event {
    /// New text of prompt `index`.
    Text { index: usize, text: String },
    /// Prompt `index` is done.
    Done {
        index: usize,
        generation: Generation,
    },
    /// The generation failed or was stopped; nothing follows.
    Error(ApiError),
}

/// Where a generation's answer goes.
pub enum Answer {
    /// All at once, when every prompt is done.
    Whole(oneshot::Sender<Result<Vec<Generation>, ApiError>>),
    /// Piece by piece.
    Stream(mpsc::UnboundedSender<Event>),
}

impl Answer {
    /// Tells the client why its generation failed.
    pub fn fail(self, e: ApiError) {
        match self {
            Answer::Whole(tx) => drop(tx.send(Err(e))),
            Answer::Stream(tx) => drop(tx.send(Event::Error(e))),
        }
    }
}
