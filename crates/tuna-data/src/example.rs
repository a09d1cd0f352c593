//! One example and the checks every format applies to it (empty text, missing label), with the
//! blank-line skipping shared by the line-based readers (`read.rs`, `jsonl.rs`, `table.rs`).

use crate::DataError;
use std::path::Path;

/// One labelled (or unlabelled) text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Example {
    /// The text, with leading and trailing whitespace removed; never empty.
    pub text: String,
    /// The label as written in the file, trimmed; `None` when the file has none for this row.
    pub label: Option<String>,
    /// 1-based line in the file where the example starts, for error messages.
    pub line: usize,
}

/// The non-blank lines of `content` with their 1-based numbers (`\r\n` handled by `lines`).
pub(crate) fn non_blank_lines(content: &str) -> impl Iterator<Item = (usize, &str)> {
    content
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty())
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
    })
}
