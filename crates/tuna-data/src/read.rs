//! Reading a dataset file into [`Example`]s: the entry points, the label-text format and the
//! file checks shared by every format (UTF-8, BOM); the per-example checks are in `example.rs`.

use crate::example::{make_example, non_blank_lines};
use crate::format::{detect_format, Format, ReadOptions};
use crate::{jsonl, table, DataError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::example::Example;

/// The examples of one file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// The file the examples were read from.
    pub path: PathBuf,
    /// The examples, in file order.
    pub examples: Vec<Example>,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no examples (never the case for a dataset that was read from a file).
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
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
            path: self.path.clone(),
            examples: indices.iter().map(|&i| self.examples[i].clone()).collect(),
        }
    }
}

/// Reads a dataset file as described by `opts` (see [`ReadOptions`] and [`Format`]).
///
/// Blank lines are skipped (outside quoted CSV fields); a UTF-8 BOM and `\r\n` line ends are
/// accepted. Errors name the file and line: missing or empty file, bad row, invalid JSON,
/// empty text, missing label when `opts.labels_required`, unknown column (listing the columns).
pub fn read_dataset(path: &Path, opts: &ReadOptions) -> Result<Dataset, DataError> {
    let content = read_text_file(path)?;
    let format = detect_format(opts.format, path, &content);
    let examples = match format {
        Format::Csv | Format::Tsv => table::read_table(path, &content, format, opts)?,
        Format::Jsonl => jsonl::read_jsonl(path, &content, opts)?,
        Format::LabelText | Format::Auto => read_label_text(path, &content)?,
    };
    if examples.is_empty() {
        return Err(DataError::file(path, "no examples; the file is empty"));
    }
    Ok(Dataset {
        path: path.to_path_buf(),
        examples,
    })
}

/// Reads a plain text file with one text per line and no labels (input for prediction).
///
/// Every non-blank line is one example (trimmed, `label: None`); blank lines are skipped. Use
/// [`read_dataset`] for files with labels or columns.
pub fn read_texts(path: &Path) -> Result<Dataset, DataError> {
    let content = read_text_file(path)?;
    let examples: Vec<Example> = non_blank_lines(&content)
        .map(|(line, text)| Example {
            text: text.trim().to_string(),
            label: None,
            line,
        })
        .collect();
    if examples.is_empty() {
        return Err(DataError::file(path, "no texts; the file is empty"));
    }
    Ok(Dataset {
        path: path.to_path_buf(),
        examples,
    })
}

/// Reads `path` as UTF-8, dropping a leading BOM; invalid UTF-8 is reported with its line.
pub(crate) fn read_text_file(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let bad = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..bad].iter().filter(|&&b| b == b'\n').count();
        DataError::line(path, line, "not valid UTF-8; save the file as UTF-8")
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Parses `label<whitespace>text` lines (SST-2 style).
fn read_label_text(path: &Path, content: &str) -> Result<Vec<Example>, DataError> {
    non_blank_lines(content)
        .map(|(line, l)| {
            let l = l.trim();
            match l.split_once(char::is_whitespace) {
                Some((label, text)) => make_example(path, line, text, Some(label), true),
                None => Err(DataError::line(
                    path,
                    line,
                    format!(
                        "expected `label text`, found one word \"{l}\"; \
                         for unlabelled texts read the file as plain lines"
                    ),
                )),
            }
        })
        .collect()
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
        assert!(e.ends_with("a.txt line 2: expected `label text`, found one word \"0\"; for unlabelled texts read the file as plain lines"), "{e}");
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
            e.ends_with("bad.txt line 2: not valid UTF-8; save the file as UTF-8"),
            "{e}"
        );
    }

    #[test]
    fn read_texts_keeps_line_numbers() {
        let (_d, p) = file("in.txt", b"first text\n\n 1 second \n");
        let ds = read_texts(&p).unwrap();
        assert_eq!(ds.texts(), vec!["first text", "1 second"]);
        assert_eq!(ds.examples[1].line, 3);
        assert!(ds.examples.iter().all(|e| e.label.is_none()));
        let (_d2, p) = file("none.txt", b"");
        assert!(read_texts(&p).is_err());
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
