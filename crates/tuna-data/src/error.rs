//! The error type of `tuna-data`: every message names the file, the 1-based line where there is
//! one, the cause, and what to do when that is obvious, e.g. `sms.tsv line 17: empty text`.

use std::path::{Path, PathBuf};

/// Errors raised while reading datasets, building label maps or parsing split specifications.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file does not exist.
    #[error("{}: file not found; check the path", path.display())]
    NotFound {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A problem with the file as a whole (empty, unknown column, no label column, ...).
    #[error("{}: {msg}", path.display())]
    File {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong and, where obvious, what to do.
        msg: String,
    },
    /// A problem on one line of the file.
    #[error("{} line {line}: {msg}", path.display())]
    Line {
        /// The file concerned.
        path: PathBuf,
        /// 1-based line number (for a multi-line CSV record, the line where it starts).
        line: usize,
        /// What is wrong and, where obvious, what to do.
        msg: String,
    },
    /// Rows of one file that cannot be read (empty text, missing label, wrong number of
    /// fields, invalid JSON), all of them counted and the first [`LISTED_BAD_ROWS`] listed.
    #[error("{}: {}", path.display(), rows_message(*total, listed))]
    Rows {
        /// The file concerned.
        path: PathBuf,
        /// How many rows are bad.
        total: usize,
        /// The first of them, each as `line N: what is wrong`.
        listed: Vec<String>,
    },
    /// A value given by the user (a split specification, a format name, a column) is not usable.
    #[error("{0}")]
    Invalid(String),
}

/// How many bad rows a [`DataError::Rows`] lists.
pub const LISTED_BAD_ROWS: usize = 10;

fn rows_message(total: usize, listed: &[String]) -> String {
    let rows = if total == 1 {
        "1 row cannot be read".to_string()
    } else {
        format!("{total} rows cannot be read")
    };
    let more = match total.saturating_sub(listed.len()) {
        0 => String::new(),
        n => format!("; and {n} more"),
    };
    format!(
        "{rows}: {}{more}; fix them, or leave them out with `--skip-bad-rows`",
        listed.join("; ")
    )
}

impl DataError {
    /// Wraps an I/O error on `path`, turning "not found" into [`DataError::NotFound`].
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            DataError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }

    /// A whole-file problem.
    pub fn file(path: &Path, msg: impl Into<String>) -> Self {
        DataError::File {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    /// This error as one entry of a bad-row list: `line N: msg` for a line of `path`, the
    /// whole message for anything else (another file of a folder dataset, say).
    pub fn row_entry(&self, path: &Path) -> String {
        match self {
            DataError::Line { path: p, line, msg } if p == path => format!("line {line}: {msg}"),
            other => other.to_string(),
        }
    }

    /// A problem on line `line` (1-based).
    pub fn line(path: &Path, line: usize, msg: impl Into<String>) -> Self {
        DataError::Line {
            path: path.to_path_buf(),
            line,
            msg: msg.into(),
        }
    }
}

impl From<tuna_core::Error> for DataError {
    fn from(e: tuna_core::Error) -> Self {
        match e {
            tuna_core::Error::Io { path, source } => DataError::io(&path, source),
            tuna_core::Error::BadFile { path, msg } => DataError::File { path, msg },
            other => DataError::Invalid(other.to_string()),
        }
    }
}

impl From<DataError> for tuna_core::Error {
    fn from(e: DataError) -> Self {
        match e {
            DataError::Io { path, source } => tuna_core::Error::Io { path, source },
            DataError::Invalid(msg) => tuna_core::Error::Invalid(msg),
            DataError::NotFound { ref path }
            | DataError::File { ref path, .. }
            | DataError::Rows { ref path, .. } => {
                let path = path.clone();
                let full = e.to_string();
                let msg = full
                    .strip_prefix(&format!("{}: ", path.display()))
                    .unwrap_or(&full)
                    .to_string();
                tuna_core::Error::BadFile { path, msg }
            }
            DataError::Line { path, line, msg } => tuna_core::Error::BadFile {
                path,
                msg: format!("line {line}: {msg}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_and_line() {
        let e = DataError::line(Path::new("sms.tsv"), 17, "empty text");
        assert_eq!(e.to_string(), "sms.tsv line 17: empty text");
        let e = DataError::io(
            Path::new("nope.csv"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.to_string(), "nope.csv: file not found; check the path");
    }

    #[test]
    fn converts_to_core_error_keeping_the_message() {
        let e: tuna_core::Error = DataError::line(Path::new("a.tsv"), 3, "empty text").into();
        assert_eq!(e.to_string(), "a.tsv: line 3: empty text");
        let e: tuna_core::Error = DataError::file(Path::new("a.tsv"), "no examples").into();
        assert_eq!(e.to_string(), "a.tsv: no examples");
    }

    #[test]
    fn bad_rows_are_counted_and_listed_up_to_the_cap() {
        let e = DataError::Rows {
            path: "a.tsv".into(),
            total: 12,
            listed: vec!["line 2: empty text".into(), "line 5: empty text".into()],
        };
        assert_eq!(
            e.to_string(),
            "a.tsv: 12 rows cannot be read: line 2: empty text; line 5: empty text; and 10 \
             more; fix them, or leave them out with `--skip-bad-rows`"
        );
        let e: tuna_core::Error = e.into();
        assert!(
            e.to_string().starts_with("a.tsv: 12 rows cannot be read"),
            "{e}"
        );
    }
}
