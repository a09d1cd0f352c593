//! CSV and TSV files: rows, header detection and the choice of text and label columns.
//!
//! Column rules, in order: a column given in [`ReadOptions`] (name or 0-based index); with a
//! header row, the first of [`TEXT_NAMES`] / [`LABEL_NAMES`] present (ignoring case); with one
//! column, that column is the text and there are no labels; with two columns, a missing role
//! takes the other column, and if neither is known the label column is the one with fewer
//! distinct values (ties: the shorter mean length), as in SMS spam's `ham<TAB>text`.

use crate::example::{make_example, non_blank_lines, Example};
use crate::format::{looks_like_header, Column, Format, ReadOptions, LABEL_NAMES, TEXT_NAMES};
use crate::DataError;
use std::collections::HashSet;
use std::path::Path;

/// One record with the 1-based line where it starts.
struct Row {
    line: usize,
    fields: Vec<String>,
}

/// Reads a CSV or TSV file into examples.
pub(crate) fn read_table(
    path: &Path,
    content: &str,
    format: Format,
    opts: &ReadOptions,
) -> Result<Vec<Example>, DataError> {
    let rows = if format == Format::Csv {
        csv_rows(path, content)?
    } else {
        tsv_rows(content)
    };
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let requested: Vec<&Column> = [&opts.text_column, &opts.label_column]
        .into_iter()
        .flatten()
        .collect();
    let first_cells: Vec<&str> = first.fields.iter().map(String::as_str).collect();
    let has_header = opts
        .header
        .unwrap_or_else(|| looks_like_header(&first_cells, &requested));
    let (header, data) = if has_header {
        (Some(first.fields.as_slice()), &rows[1..])
    } else {
        (None, &rows[..])
    };
    if has_header && data.is_empty() {
        return Err(DataError::file(path, "no examples; only a header row"));
    }
    let ncols = first.fields.len();
    let (text_col, label_col) = choose_columns(path, header, ncols, data, opts)?;
    let sep = if format == Format::Csv { "," } else { "\t" };
    data.iter()
        .map(|row| {
            let n = row.fields.len();
            let text = if n < ncols || (n > ncols && text_col + 1 != ncols) {
                let what = if format == Format::Csv {
                    "comma"
                } else {
                    "tab"
                };
                return Err(DataError::line(
                    path,
                    row.line,
                    format!("{n} {what}-separated fields, expected {ncols} as in the first row"),
                ));
            } else if n > ncols {
                // The text is the last column: extra separators belong to it.
                row.fields[text_col..].join(sep)
            } else {
                row.fields[text_col].clone()
            };
            let label = label_col.map(|c| row.fields[c].as_str());
            make_example(path, row.line, &text, label, opts.labels_required)
        })
        .collect()
}

/// Parses CSV with the `csv` crate (quoted fields may hold commas, quotes and newlines).
fn csv_rows(path: &Path, content: &str) -> Result<Vec<Row>, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(content.as_bytes());
    // csv's own line counter lags behind on `\r\n` ends, so lines come from byte offsets.
    let newlines: Vec<usize> = content.match_indices('\n').map(|(i, _)| i).collect();
    let line_at = |pos: Option<&csv::Position>| {
        let mut b = pos.map_or(0, |p| p.byte() as usize);
        while content
            .as_bytes()
            .get(b)
            .is_some_and(|c| *c == b'\r' || *c == b'\n')
        {
            b += 1;
        }
        1 + newlines.partition_point(|&n| n < b)
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = line_at(e.position());
            let msg = match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => format!(
                    "{len} comma-separated fields, expected {expected_len} as in the first row; \
                     quote fields that contain commas"
                ),
                _ => format!("bad CSV row: {e}"),
            };
            DataError::line(path, line, msg)
        })?;
        let line = line_at(record.position());
        let fields: Vec<String> = record.iter().map(str::to_string).collect();
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        rows.push(Row { line, fields });
    }
    Ok(rows)
}

/// Splits every non-blank line on tabs, literally: quotes are ordinary characters.
fn tsv_rows(content: &str) -> Vec<Row> {
    non_blank_lines(content)
        .map(|(line, l)| Row {
            line,
            fields: l.split('\t').map(str::to_string).collect(),
        })
        .collect()
}

/// Picks the text column and the optional label column (see the module docs for the rules).
fn choose_columns(
    path: &Path,
    header: Option<&[String]>,
    ncols: usize,
    data: &[Row],
    opts: &ReadOptions,
) -> Result<(usize, Option<usize>), DataError> {
    let find = |col: &Column, role: &str| resolve(path, col, header, ncols, role);
    let by_names = |names: &[&str]| {
        let h = header?;
        names
            .iter()
            .find_map(|n| h.iter().position(|c| c.trim().eq_ignore_ascii_case(n)))
    };
    let mut text = match &opts.text_column {
        Some(c) => Some(find(c, "text")?),
        None => by_names(TEXT_NAMES),
    };
    let mut label = match &opts.label_column {
        Some(c) => Some(find(c, "label")?),
        None => by_names(LABEL_NAMES),
    };
    match (ncols, text, label) {
        (1, None, _) => text = Some(0),
        (2, Some(t), None) => label = Some(1 - t),
        (2, None, Some(l)) => text = Some(1 - l),
        (2, None, None) => {
            let l = guess_label_column(data);
            (text, label) = (Some(1 - l), Some(l));
        }
        _ => {}
    }
    let Some(text) = text else {
        return Err(DataError::file(
            path,
            format!(
                "no text column found; {}; pass the text column (name or 0-based index)",
                describe(header, ncols)
            ),
        ));
    };
    if label == Some(text) {
        return Err(DataError::file(
            path,
            format!("text and label are the same column ({text}); pass distinct columns"),
        ));
    }
    if opts.labels_required && label.is_none() {
        return Err(DataError::file(
            path,
            format!(
                "no label column found; {}; pass the label column (name or 0-based index)",
                describe(header, ncols)
            ),
        ));
    }
    Ok((text, label))
}

/// The column with fewer distinct values (ties: shorter mean length) among 2-field rows.
fn guess_label_column(data: &[Row]) -> usize {
    let stats = |c: usize| {
        let values: Vec<&str> = data
            .iter()
            .filter(|r| r.fields.len() == 2)
            .map(|r| r.fields[c].trim())
            .collect();
        let distinct = values.iter().collect::<HashSet<_>>().len();
        let total: usize = values.iter().map(|v| v.chars().count()).sum();
        (distinct, total)
    };
    if stats(1) < stats(0) {
        1
    } else {
        0
    }
}

/// Finds a requested column, or says which columns exist.
fn resolve(
    path: &Path,
    col: &Column,
    header: Option<&[String]>,
    ncols: usize,
    role: &str,
) -> Result<usize, DataError> {
    let found = match (col, header) {
        (Column::Index(i), _) => (*i < ncols).then_some(*i),
        (Column::Name(n), Some(h)) => h
            .iter()
            .position(|c| c.trim() == n)
            .or_else(|| h.iter().position(|c| c.trim().eq_ignore_ascii_case(n))),
        (Column::Name(n), None) => {
            return Err(DataError::file(
                path,
                format!(
                    "{role} column \"{n}\" not found: the first row is not a header; \
                     pass a 0-based column index (rows have {ncols} columns) or say the file has a header"
                ),
            ))
        }
    };
    found.ok_or_else(|| {
        DataError::file(
            path,
            format!("{role} column {col} not found; {}", describe(header, ncols)),
        )
    })
}

/// "columns are: a, b" or "rows have 3 columns (0-based indices 0-2), no header row".
fn describe(header: Option<&[String]>, ncols: usize) -> String {
    match header {
        Some(h) => format!("columns are: {}", h.join(", ")),
        None => format!(
            "rows have {ncols} columns (0-based indices 0-{}), no header row",
            ncols.saturating_sub(1)
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::{read_dataset, Column, DataError, Format, ReadOptions};
    use std::io::Write;
    use std::path::PathBuf;

    fn file(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::File::create(&p)
            .unwrap()
            .write_all(content.as_bytes())
            .unwrap();
        (dir, p)
    }

    fn read(name: &str, content: &str, opts: &ReadOptions) -> Result<crate::Dataset, DataError> {
        let (_d, p) = file(name, content);
        read_dataset(&p, opts)
    }

    fn err(name: &str, content: &str, opts: &ReadOptions) -> String {
        read(name, content, opts).unwrap_err().to_string()
    }

    #[test]
    fn csv_with_header_quotes_and_newlines() {
        let csv = "\u{feff}id,Sentence,label\r\n1,\"a, b \"\"c\"\"\",pos\r\n2,\"two\nlines\",neg\r\n\r\n3,x,pos\r\n";
        let ds = read("t.csv", csv, &ReadOptions::default()).unwrap();
        assert_eq!(ds.texts(), vec!["a, b \"c\"", "two\nlines", "x"]);
        assert_eq!(ds.examples[1].label.as_deref(), Some("neg"));
        assert_eq!(
            ds.examples.iter().map(|e| e.line).collect::<Vec<_>>(),
            [2, 3, 6]
        );
    }

    #[test]
    fn csv_bad_row_names_line() {
        let e = err("t.csv", "text,label\na,1\nb,c,1\n", &ReadOptions::default());
        assert!(e.ends_with("t.csv line 3: 3 comma-separated fields, expected 2 as in the first row; quote fields that contain commas"), "{e}");
    }

    #[test]
    fn unknown_column_lists_columns() {
        let opts = ReadOptions {
            text_column: Some(Column::Name("sentence".into())),
            header: Some(true),
            ..Default::default()
        };
        let e = err("train.csv", "text,label\na,1\n", &opts);
        assert!(
            e.ends_with("train.csv: text column \"sentence\" not found; columns are: text, label"),
            "{e}"
        );
        let opts = ReadOptions {
            label_column: Some(Column::Index(5)),
            ..Default::default()
        };
        let e = err("a.tsv", "x\ty\n", &opts);
        assert!(
            e.contains("label column 5 not found; rows have 2 columns"),
            "{e}"
        );
        let opts = ReadOptions {
            text_column: Some(Column::Name("body".into())),
            ..Default::default()
        };
        let e = err("a.tsv", "ham\thi\n", &opts);
        assert!(e.contains("the first row is not a header"), "{e}");
    }

    #[test]
    fn tsv_keeps_quotes_and_detects_label_column() {
        let ds = read(
            "a.tsv",
            "ham\t\"quoted\" text\nspam\tWIN \"now\nham\tok\n",
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(ds.examples[0].text, "\"quoted\" text");
        assert_eq!(ds.examples[1].text, "WIN \"now");
        assert_eq!(ds.examples[2].label.as_deref(), Some("ham"));
        // Label second, no header.
        let ds = read(
            "b.tsv",
            "great film\tpos\nawful\tneg\nfine film\tpos\n",
            &ReadOptions::default(),
        )
        .unwrap();
        assert_eq!(ds.examples[1].label.as_deref(), Some("neg"));
        assert_eq!(ds.examples[1].text, "awful");
    }

    #[test]
    fn tsv_header_by_requested_name_and_extra_tabs_in_last_text() {
        let opts = ReadOptions {
            text_column: Some("v2".parse().unwrap()),
            label_column: Some("v1".parse().unwrap()),
            ..Default::default()
        };
        let ds = read("a.tsv", "v1\tv2\nham\ta\tb\n", &opts).unwrap();
        assert_eq!(ds.examples[0].text, "a\tb");
        assert_eq!(ds.examples[0].line, 2);
    }

    #[test]
    fn tsv_row_errors() {
        let e = err("sms.tsv", "ham\thi\nspam\n", &ReadOptions::default());
        assert!(
            e.ends_with("sms.tsv line 2: 1 tab-separated fields, expected 2 as in the first row"),
            "{e}"
        );
        let e = err(
            "sms.tsv",
            "ham\thi\nham\tyo\nspam\t  \n",
            &ReadOptions::default(),
        );
        assert!(e.ends_with("sms.tsv line 3: empty text"), "{e}");
        let e = err("sms.tsv", "text\tlabel\nhi\t\n", &ReadOptions::default());
        assert!(e.contains("line 2: missing label"), "{e}");
        let e = err("h.tsv", "text\tlabel\n", &ReadOptions::default());
        assert!(e.ends_with("h.tsv: no examples; only a header row"), "{e}");
    }

    #[test]
    fn optional_labels_and_single_column() {
        let opts = ReadOptions {
            labels_required: false,
            ..Default::default()
        };
        let ds = read("a.csv", "text,label\nhi,\nyo,1\n", &opts).unwrap();
        assert_eq!(ds.examples[0].label, None);
        assert_eq!(ds.examples[1].label.as_deref(), Some("1"));
        let ds = read("one.csv", "text\nhello\n", &opts).unwrap();
        assert_eq!(ds.texts(), vec!["hello"]);
        let e = err("one.csv", "text\nhello\n", &ReadOptions::default());
        assert!(
            e.contains("no label column found; columns are: text"),
            "{e}"
        );
        let e = err("three.csv", "a,b,c\n1,2,3\n", &ReadOptions::default());
        assert!(
            e.contains("no text column found; rows have 3 columns"),
            "{e}"
        );
    }

    #[test]
    fn explicit_format_and_header_override() {
        let opts = ReadOptions {
            format: Format::Csv,
            header: Some(false),
            text_column: Some(Column::Index(1)),
            label_column: Some(Column::Index(0)),
            ..Default::default()
        };
        let ds = read("data.dat", "label,text\n1,\"x, y\"\n", &opts).unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.examples[1].text, "x, y");
    }
}
