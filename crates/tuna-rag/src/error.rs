//! The error type of indexing and retrieval: each variant names what failed.

use std::path::PathBuf;

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong while reading documents, talking to a store or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file exists but its content is not usable.
    #[error("{path}: {msg}")]
    BadFile { path: PathBuf, msg: String },
    /// A value given by the user is not usable.
    #[error("{0}")]
    Invalid(String),
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
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed file, with the reason.
    pub fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
