//! The error type of indexing and retrieval: file and input errors as in every tuna crate,
//! plus the two stores' and the caller's model's.

use std::path::PathBuf;

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong while reading documents, talking to a store or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that cannot be read or is malformed, or a value that is not usable.
    #[error(transparent)]
    Core(#[from] tuna_core::Error),
    /// The SQLite store failed.
    #[error("sqlite index: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL store failed.
    #[error("postgres index: {0}")]
    Postgres(#[from] postgres::Error),
    /// Embedding or tokenising failed (reported by the caller's model).
    #[error("{0}")]
    Model(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        tuna_core::Error::io(path, source).into()
    }

    /// A malformed file, with the reason.
    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        tuna_core::Error::bad_file(path, msg).into()
    }

    /// A value given by the user that is not usable.
    pub fn invalid(msg: impl Into<String>) -> Self {
        tuna_core::Error::Invalid(msg.into()).into()
    }
}
