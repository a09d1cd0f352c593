//! File formats, column choices and reading options, plus the rules that guess a format from a
//! file name or its first lines.

use crate::{DataError, Encoding};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// Column names taken as the text column when none is given, in order of preference.
pub const TEXT_NAMES: &[&str] = &["text", "sentence", "review", "message", "content"];
/// Column names taken as the label column when none is given, in order of preference.
pub const LABEL_NAMES: &[&str] = &["label", "class", "category", "target", "sentiment"];
/// First-row cells that mark a CSV/TSV header row when `header` is left to detection.
pub const HEADER_NAMES: &[&str] = &[
    "text", "label", "sentence", "review", "message", "class", "category", "target", "content",
];

/// How a dataset file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Guess from the extension (`.csv`; `.tsv`/`.tab`; `.jsonl`/`.ndjson`; `.txt` = label-text),
    /// else from the first lines; see [`detect_format`].
    #[default]
    Auto,
    /// Comma-separated values with RFC 4180 quoting (fields may hold commas and newlines).
    Csv,
    /// Tab-separated values, split on every tab literally: quotes are ordinary characters.
    Tsv,
    /// One JSON object per line, e.g. `{"text": "...", "label": "spam"}`.
    Jsonl,
    /// `label<space>text` per line, as in SST-2's `stsa.binary.*` files.
    LabelText,
}

impl FromStr for Format {
    type Err = DataError;

    /// Parses `auto`, `csv`, `tsv`, `jsonl` or `label-text` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Format::Auto),
            "csv" => Ok(Format::Csv),
            "tsv" | "tab" => Ok(Format::Tsv),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            "label-text" | "labeltext" | "label_text" => Ok(Format::LabelText),
            _ => Err(DataError::Invalid(format!(
                "unknown format \"{s}\"; use auto, csv, tsv, jsonl or label-text"
            ))),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Auto => "auto",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Jsonl => "jsonl",
            Format::LabelText => "label-text",
        })
    }
}

/// A column chosen by header name (or JSON key) or by 0-based position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// A header name or JSONL key; matched exactly first, then ignoring ASCII case.
    Name(String),
    /// A 0-based position (CSV/TSV only).
    Index(usize),
}

impl FromStr for Column {
    type Err = DataError;

    /// All digits give [`Column::Index`] (0-based), anything else [`Column::Name`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DataError::Invalid(
                "empty column; give a header name or a 0-based index".into(),
            ));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse()
                .map(Column::Index)
                .map_err(|_| DataError::Invalid(format!("column index {s} is too large")))
        } else {
            Ok(Column::Name(s.to_string()))
        }
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Column::Name(n) => write!(f, "\"{n}\""),
            Column::Index(i) => write!(f, "{i}"),
        }
    }
}

/// How [`crate::read_dataset`] reads a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// File layout; `Auto` guesses it.
    pub format: Format,
    /// How the file's bytes are read as text (UTF-8 unless given).
    pub encoding: Encoding,
    /// Whether a CSV/TSV file starts with a header row; `None` detects it (see [`looks_like_header`]).
    pub header: Option<bool>,
    /// The text column(s); empty picks the first of [`TEXT_NAMES`], else infers it (2 columns).
    /// Several columns (e.g. a title and a description) are joined, one line per column, in
    /// the order given; empty cells are left out.
    pub text_columns: Vec<Column>,
    /// The label column; `None` picks the first of [`LABEL_NAMES`], else infers it (2 columns).
    pub label_column: Option<Column>,
    /// Whether every example must have a label (training, evaluation). Defaults to `true`.
    pub labels_required: bool,
    /// Accept every quoted CSV field that spans lines. By default a quoted field whose lines
    /// read like rows of their own (as many separators as a row has) is refused as an
    /// unbalanced quote; see `quotes.rs`.
    pub allow_multiline: bool,
    /// Leave out rows that cannot be read (empty text, missing label, wrong number of fields,
    /// invalid JSON) instead of stopping; the dataset lists them in `skipped`.
    pub skip_bad_rows: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            format: Format::Auto,
            encoding: Encoding::Utf8,
            header: None,
            text_columns: Vec::new(),
            label_column: None,
            labels_required: true,
            allow_multiline: false,
            skip_bad_rows: false,
        }
    }
}

impl ReadOptions {
    /// The columns asked for by the user (text columns, then the label column).
    pub(crate) fn requested(&self) -> Vec<&Column> {
        self.text_columns
            .iter()
            .chain(self.label_column.as_ref())
            .collect()
    }
}

/// Resolves [`Format::Auto`]: by extension (case-insensitive) `.csv`, `.tsv`/`.tab`,
/// `.jsonl`/`.ndjson`, `.txt` (label-text); otherwise by sniffing the first 20 non-empty lines of
/// `content`: a first line that parses as a JSON object means JSONL; tabs on all lines mean TSV;
/// a first line of comma-separated cells, one of them in [`HEADER_NAMES`], means CSV; anything
/// else is label-text. Other formats are returned unchanged.
pub fn detect_format(format: Format, path: &Path, content: &str) -> Format {
    if format != Format::Auto {
        return format;
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => return Format::Csv,
        Some("tsv") | Some("tab") => return Format::Tsv,
        Some("jsonl") | Some("ndjson") => return Format::Jsonl,
        Some("txt") => return Format::LabelText,
        _ => {}
    }
    let lines: Vec<&str> = content
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(20)
        .collect();
    let Some(first) = lines.first() else {
        return Format::LabelText;
    };
    if first.trim_start().starts_with('{')
        && serde_json::from_str::<serde_json::Value>(first).is_ok_and(|v| v.is_object())
    {
        return Format::Jsonl;
    }
    if lines.iter().all(|l| l.contains('\t')) {
        return Format::Tsv;
    }
    let cells: Vec<&str> = first
        .split(',')
        .map(|c| c.trim().trim_matches('"'))
        .collect();
    if cells.len() > 1 && looks_like_header(&cells, &[]) {
        return Format::Csv;
    }
    Format::LabelText
}

/// The header rule used when `header` is `None`: the first row is a header if one of its cells
/// equals a column asked for by name, or equals one of [`HEADER_NAMES`], ignoring ASCII case.
pub fn looks_like_header(first_row: &[&str], requested: &[&Column]) -> bool {
    first_row.iter().any(|cell| {
        let cell = cell.trim();
        HEADER_NAMES.iter().any(|n| cell.eq_ignore_ascii_case(n))
            || requested
                .iter()
                .any(|c| matches!(c, Column::Name(n) if cell.eq_ignore_ascii_case(n)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_from_str() {
        assert_eq!("2".parse::<Column>().unwrap(), Column::Index(2));
        assert_eq!(
            "sentence".parse::<Column>().unwrap(),
            Column::Name("sentence".into())
        );
        assert_eq!("v2".parse::<Column>().unwrap(), Column::Name("v2".into()));
        assert!("".parse::<Column>().is_err());
    }

    #[test]
    fn format_from_str_and_display_round_trip() {
        for f in [
            Format::Auto,
            Format::Csv,
            Format::Tsv,
            Format::Jsonl,
            Format::LabelText,
        ] {
            assert_eq!(f.to_string().parse::<Format>().unwrap(), f);
        }
        let e = "xml".parse::<Format>().unwrap_err().to_string();
        assert!(e.contains("label-text"), "{e}");
    }

    #[test]
    fn detects_by_extension_then_content() {
        let d = |p: &str, c: &str| detect_format(Format::Auto, Path::new(p), c);
        assert_eq!(d("a.CSV", ""), Format::Csv);
        assert_eq!(d("a.tab", ""), Format::Tsv);
        assert_eq!(d("a.ndjson", ""), Format::Jsonl);
        assert_eq!(d("a.txt", "x\ty\n"), Format::LabelText);
        assert_eq!(
            d("SMSSpamCollection", "ham\thi\n\nspam\twin\n"),
            Format::Tsv
        );
        assert_eq!(d("x.train", "{\"text\": \"a\"}\n"), Format::Jsonl);
        assert_eq!(d("x.dev", "1 good film\n0 bad\tfilm\n"), Format::LabelText);
        assert_eq!(d("data", "\"text\",label\n\"a, b\",1\n"), Format::Csv);
        assert_eq!(d("data", ""), Format::LabelText);
        assert_eq!(
            detect_format(Format::Tsv, Path::new("a.csv"), ""),
            Format::Tsv
        );
    }

    #[test]
    fn header_rule() {
        assert!(looks_like_header(&["Label", "x"], &[]));
        assert!(!looks_like_header(&["ham", "hello"], &[]));
        let c = Column::Name("v2".into());
        assert!(looks_like_header(&["v1", "v2"], &[&c]));
        assert!(!looks_like_header(&["v1", "v2"], &[&Column::Index(1)]));
    }
}
