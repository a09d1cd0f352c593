//! Reading a dataset file into [`Example`]s: the entry points, the label-text format and the
//! file checks shared by every format (encoding, BOM); the per-example checks and the
//! collection of bad rows are in `example.rs`, folders of class folders in `folder.rs`.

use crate::encoding::read_text_file;
use crate::example::{collect_rows, make_example, non_blank_lines, Rows};
use crate::format::{detect_format, Format, ReadOptions};
use crate::{folder, jsonl, table, DataError, Encoding};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::example::Example;

/// The examples of one file (or folder), in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// The file (or folder) the examples were read from.
    pub path: PathBuf,
    /// The examples, in file order.
    pub examples: Vec<Example>,
    /// How the file was read: format, header, the text and label columns and whether they
    /// were given or detected (e.g. `tsv, no header; text: column 1, label: column 0
    /// (detected)`), for the user to check.
    pub layout: String,
    /// Rows left out with `ReadOptions::skip_bad_rows`, each as `line N: what is wrong`.
    pub skipped: Vec<String>,
}

impl Dataset {
    /// A dataset of `examples` read from `path`, with no layout note and nothing skipped.
    pub fn new(path: PathBuf, examples: Vec<Example>) -> Self {
        Self {
            path,
            examples,
            layout: String::new(),
            skipped: Vec::new(),
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no examples (never the case for a dataset that was read from a file).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// What the user should check about how the file was read, one line each: its layout
    /// (format, header, columns) and the bad rows left out, if any.
    pub fn notes(&self) -> Vec<String> {
        let path = self.path.display();
        let mut notes = Vec::new();
        if !self.layout.is_empty() {
            notes.push(format!("read {path}: {}", self.layout));
        }
        if let Some(first) = self.skipped.first() {
            let n = self.skipped.len();
            let rows = if n == 1 { "row" } else { "rows" };
            notes.push(format!(
                "warning: {path}: {n} bad {rows} left out (--skip-bad-rows), the first: {first}"
            ));
        }
        notes
    }

    /// The texts, in order.
    pub fn texts(&self) -> Vec<&str> {
        self.examples.iter().map(|e| e.text.as_str()).collect()
    }

    /// How many examples carry each label (unlabelled examples are not counted).
    pub fn label_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for label in self.examples.iter().filter_map(|e| e.label.as_ref()) {
            *counts.entry(label.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// A dataset of the examples at `indices` (e.g. one part of a split), in the order given.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            examples: indices.iter().map(|&i| self.examples[i].clone()).collect(),
            ..Dataset::new(self.path.clone(), Vec::new())
        }
    }
}

/// Reads a dataset file as described by `opts` (see [`ReadOptions`] and [`Format`]), or a
/// folder with one subfolder per class and one file per text (see `folder.rs`).
///
/// Blank lines are skipped (outside quoted CSV fields); a BOM and `\r\n` line ends are
/// accepted. Errors name the file and line: missing or empty file, bad rows (all counted, the
/// first listed, unless `opts.skip_bad_rows`), invalid JSON, empty text, missing label when
/// `opts.labels_required`, unknown column (listing the columns), an unbalanced CSV quote.
pub fn read_dataset(path: &Path, opts: &ReadOptions) -> Result<Dataset, DataError> {
    if path.is_dir() {
        let ((examples, skipped), layout) = folder::read_folder(path, opts)?;
        return Ok(Dataset {
            layout,
            skipped,
            ..Dataset::new(path.to_path_buf(), examples)
        });
    }
    let content = read_text_file(path, opts.encoding)?;
    let format = detect_format(opts.format, path, &content);
    let ((examples, skipped), layout) = match format {
        Format::Csv | Format::Tsv => table::read_table(path, &content, format, opts)?,
        Format::Jsonl => jsonl::read_jsonl(path, &content, opts)?,
        Format::LabelText | Format::Auto => (
            read_label_text(path, &content, opts.skip_bad_rows)?,
            "label-text (`label text` per line)".to_string(),
        ),
    };
    if examples.is_empty() {
        let why = if skipped.is_empty() {
            "no examples; the file is empty".to_string()
        } else {
            format!(
                "no examples; all {} rows were bad and skipped",
                skipped.len()
            )
        };
        return Err(DataError::file(path, why));
    }
    Ok(Dataset {
        path: path.to_path_buf(),
        examples,
        layout,
        skipped,
    })
}

/// Reads a plain text file with one text per line and no labels (input for prediction).
///
/// Every non-blank line is one example (trimmed, `label: None`); blank lines are skipped. Use
/// [`read_dataset`] for files with labels or columns.
pub fn read_texts(path: &Path, encoding: Encoding) -> Result<Dataset, DataError> {
    let content = read_text_file(path, encoding)?;
    let examples: Vec<Example> = non_blank_lines(&content)
        .map(|(line, text)| Example {
            text: text.trim().to_string(),
            label: None,
            line,
            file: None,
        })
        .collect();
    if examples.is_empty() {
        return Err(DataError::file(path, "no texts; the file is empty"));
    }
    Ok(Dataset {
        layout: "lines (one text per line)".into(),
        ..Dataset::new(path.to_path_buf(), examples)
    })
}

/// Parses `label<whitespace>text` lines (SST-2 style).
fn read_label_text(path: &Path, content: &str, skip_bad_rows: bool) -> Result<Rows, DataError> {
    let rows = non_blank_lines(content).map(|(line, l)| {
        let l = l.trim();
        match l.split_once(char::is_whitespace) {
            Some((label, text)) => make_example(path, line, text, Some(label), true),
            None => Err(DataError::line(
                path,
                line,
                format!("empty text: only \"{l}\", expected `label text`"),
            )),
        }
    });
    collect_rows(path, rows, skip_bad_rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(name: &str, content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(content)
            .unwrap();
        (dir, p)
    }

    fn shared(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data")
            .join(rel)
    }

    #[test]
    fn label_text_with_bom_crlf_and_blank_lines() {
        let (_d, p) = file("a.dev", b"\xef\xbb\xbf1 good  film \r\n\r\n0 bad\tfilm\r\n");
        let ds = read_dataset(&p, &ReadOptions::default()).unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.examples[0].label.as_deref(), Some("1"));
        assert_eq!(ds.examples[0].text, "good  film");
        assert_eq!(ds.examples[1].line, 3);
        assert_eq!(ds.examples[1].text, "bad\tfilm");
    }

    #[test]
    fn label_text_errors_name_the_line() {
        let (_d, p) = file("a.txt", b"1 fine\n0\n");
        let e = read_dataset(&p, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("a.txt: 1 row cannot be read: line 2: empty text: only \"0\", expected `label text`"), "{e}");
    }

    #[test]
    fn missing_empty_and_non_utf8_files() {
        let e = read_dataset(Path::new("/no/such/file.tsv"), &ReadOptions::default());
        assert!(matches!(e, Err(DataError::NotFound { .. })));
        let (_d, p) = file("empty.txt", b"\n  \n");
        let e = read_dataset(&p, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("empty.txt: no examples; the file is empty"),
            "{e}"
        );
        let (_d2, p) = file("bad.txt", b"1 ok\n0 caf\xe9\n");
        let e = read_dataset(&p, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "{} line 2: not valid UTF-8 (byte 0xE9)",
                p.display()
            )) && e.contains("--encoding windows-1252"),
            "{e}"
        );
    }

    #[test]
    fn read_texts_keeps_line_numbers() {
        let (_d, p) = file("in.txt", b"first text\n\n 1 second \n");
        let ds = read_texts(&p, Encoding::Utf8).unwrap();
        assert_eq!(ds.texts(), vec!["first text", "1 second"]);
        assert_eq!(ds.examples[1].line, 3);
        assert!(ds.examples.iter().all(|e| e.label.is_none()));
        let (_d2, p) = file("none.txt", b"");
        assert!(read_texts(&p, Encoding::Utf8).is_err());
    }

    #[test]
    fn subset_and_counts() {
        let (_d, p) = file("a.txt", b"a x\nb y\na z\n");
        let ds = read_dataset(&p, &ReadOptions::default()).unwrap();
        assert_eq!(ds.label_counts().get("a"), Some(&2));
        assert_eq!(ds.subset(&[2, 0]).texts(), vec!["z", "x"]);
    }

    #[test]
    fn real_sst2_files() {
        for (name, n, neg, pos) in [
            ("stsa.binary.train", 6920, 3310, 3610),
            ("stsa.binary.dev", 872, 428, 444),
            ("stsa.binary.test", 1821, 912, 909),
        ] {
            let ds =
                read_dataset(&shared(&format!("sst2/{name}")), &ReadOptions::default()).unwrap();
            assert_eq!(ds.len(), n, "{name}");
            let counts = ds.label_counts();
            assert_eq!(
                (counts["0"], counts["1"], counts.len()),
                (neg, pos, 2),
                "{name}"
            );
        }
    }

    #[test]
    fn real_sms_spam_file() {
        let ds = read_dataset(
            &shared("sms_spam/SMSSpamCollection"),
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(ds.len(), 5574);
        let counts = ds.label_counts();
        assert_eq!(
            (counts["ham"], counts["spam"], counts.len()),
            (4827, 747, 2)
        );
        assert!(ds.examples[0].text.starts_with("Go until jurong point"));
    }
}
