//! One example and the checks every format applies to it (empty text, missing label), the
//! blank-line skipping shared by the line-based readers (`read.rs`, `jsonl.rs`, `table.rs`), and
//! the collection of bad rows (all reported, or skipped on request).

use crate::error::LISTED_BAD_ROWS;
use crate::DataError;
use std::path::{Path, PathBuf};

/// One labelled (or unlabelled) text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Example {
    /// The text, with leading and trailing whitespace removed; never empty.
    pub text: String,
    /// The label as written in the file, trimmed; `None` when the file has none for this row.
    pub label: Option<String>,
    /// 1-based line in the file where the example starts, for error messages (1 for a file
    /// of a folder dataset).
    pub line: usize,
    /// The file the text is, for a folder dataset (one file per text); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

impl Example {
    /// An error about this example of the dataset read from `path`: its file (folder
    /// datasets) or its line.
    pub fn error(&self, path: &Path, msg: impl Into<String>) -> DataError {
        match &self.file {
            Some(f) => DataError::file(f, msg),
            None => DataError::line(path, self.line, msg),
        }
    }
}

/// The examples of a file and the rows that could not be read, as messages `line N: ...`.
pub(crate) type Rows = (Vec<Example>, Vec<String>);

/// Splits row results into examples and bad rows. Without `skip_bad_rows` any bad row is an
/// error that counts them all and lists the first few; with it they are returned as skipped.
pub(crate) fn collect_rows(
    path: &Path,
    rows: impl IntoIterator<Item = Result<Example, DataError>>,
    skip_bad_rows: bool,
) -> Result<Rows, DataError> {
    let mut examples = Vec::new();
    let mut bad = Vec::new();
    for r in rows {
        match r {
            Ok(e) => examples.push(e),
            Err(e) => bad.push(e.row_entry(path)),
        }
    }
    bad.sort_by_key(|entry| line_of(entry));
    if !bad.is_empty() && !skip_bad_rows {
        let total = bad.len();
        bad.truncate(LISTED_BAD_ROWS);
        return Err(DataError::Rows {
            path: path.to_path_buf(),
            total,
            listed: bad,
        });
    }
    Ok((examples, bad))
}

/// The non-blank lines of `content` with their 1-based numbers (`\r\n` handled by `lines`).
pub(crate) fn non_blank_lines(content: &str) -> impl Iterator<Item = (usize, &str)> {
    content
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// The 1-based line of a bad-row entry `line N: ...`, 0 for other entries (for ordering).
fn line_of(entry: &str) -> usize {
    entry
        .strip_prefix("line ")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Builds an example, checking that the text is not empty and the label present if required.
pub(crate) fn make_example(
    path: &Path,
    line: usize,
    text: &str,
    label: Option<&str>,
    labels_required: bool,
) -> Result<Example, DataError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DataError::line(path, line, "empty text"));
    }
    let label = label.map(str::trim).filter(|l| !l.is_empty());
    if labels_required && label.is_none() {
        return Err(DataError::line(
            path,
            line,
            "missing label; every example needs one here",
        ));
    }
    Ok(Example {
        text: text.to_string(),
        label: label.map(str::to_string),
        line,
        file: None,
    })
}
