//! The error type of the training workflows: whatever failed underneath, with its message.

/// Errors from loading data, models, fitting and writing runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Core(#[from] tuna_core::Error),
    #[error(transparent)]
    Data(#[from] tuna_data::DataError),
    #[error(transparent)]
    Classic(#[from] tuna_classic::ClassicError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A request that cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
}

/// Result of the training workflows.
pub type Result<T> = std::result::Result<T, Error>;
