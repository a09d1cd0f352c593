//! CSV and TSV files: rows, header detection and the choice of text and label columns.
//!
//! Column rules, in order: a column given in [`ReadOptions`] (name or 0-based index); with a
//! header row, the first of [`TEXT_NAMES`] / [`LABEL_NAMES`] present (ignoring case); with one
//! column, that column is the text and there are no labels; with two columns, a missing role
//! takes the other column, and if neither is known the label column is the one with fewer
//! distinct values (ties: the shorter mean length), as in SMS spam's `ham<TAB>text`.

use crate::example::{collect_rows, make_example, non_blank_lines, Rows};
use crate::format::{looks_like_header, Column, Format, ReadOptions, LABEL_NAMES, TEXT_NAMES};
use crate::quotes::check_quotes;
use crate::DataError;
use std::collections::HashSet;
use std::path::Path;

/// One record with the 1-based line where it starts.
struct Row {
    line: usize,
    fields: Vec<String>,
}

/// Which columns hold the text and the label, and whether they were detected.
struct Columns {
    text: Vec<usize>,
    label: Option<usize>,
    detected: bool,
}

/// Reads a CSV or TSV file into examples (and skipped rows), with a note of how it was read.
pub(crate) fn read_table(
    path: &Path,
    content: &str,
    format: Format,
    opts: &ReadOptions,
) -> Result<(Rows, String), DataError> {
    let (rows, mut bad) = if format == Format::Csv {
        csv_rows(path, content, opts.allow_multiline)?
    } else {
        (tsv_rows(content), Vec::new())
    };
    let Some(first) = rows.first() else {
        return Ok(((Vec::new(), Vec::new()), String::new()));
    };
    let first_cells: Vec<&str> = first.fields.iter().map(String::as_str).collect();
    let has_header = opts
        .header
        .unwrap_or_else(|| looks_like_header(&first_cells, &opts.requested()));
    let (header, data) = if has_header {
        (Some(first.fields.as_slice()), &rows[1..])
    } else {
        (None, &rows[..])
    };
    if has_header && data.is_empty() && bad.is_empty() {
        return Err(DataError::file(path, "no examples; only a header row"));
    }
    let ncols = first.fields.len();
    let cols = choose_columns(path, header, ncols, data, opts)?;
    let layout = describe_layout(format, header, &cols, opts.header.is_none());
    let sep = if format == Format::Csv { "," } else { "\t" };
    let what = if format == Format::Csv {
        "comma"
    } else {
        "tab"
    };
    let examples = data.iter().map(|row| {
        let n = row.fields.len();
        // The text is the last column: extra separators belong to it.
        let extra_in_text = cols.text == [ncols - 1];
        if n < ncols || (n > ncols && !extra_in_text) {
            return Err(DataError::line(
                path,
                row.line,
                format!("{n} {what}-separated fields, expected {ncols} as in the first row"),
            ));
        }
        let text = if n > ncols {
            row.fields[ncols - 1..].join(sep)
        } else {
            join_text(cols.text.iter().map(|&c| row.fields[c].as_str()))
        };
        let label = cols.label.map(|c| row.fields[c].as_str());
        make_example(path, row.line, &text, label, opts.labels_required)
    });
    let rows = bad.drain(..).map(Err).chain(examples).collect::<Vec<_>>();
    Ok((collect_rows(path, rows, opts.skip_bad_rows)?, layout))
}

/// The texts of several columns as one: the non-empty cells, trimmed, one line each.
pub(crate) fn join_text<'a>(cells: impl Iterator<Item = &'a str>) -> String {
    cells
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `csv, with a header; text: "title", "description"; label: "category" (detected)`.
fn describe_layout(
    format: Format,
    header: Option<&[String]>,
    cols: &Columns,
    header_detected: bool,
) -> String {
    let name = |c: usize| match header {
        Some(h) => format!("\"{}\"", h[c].trim()),
        None => format!("column {c}"),
    };
    let text: Vec<String> = cols.text.iter().map(|&c| name(c)).collect();
    let label = cols.label.map_or("none".to_string(), name);
    let head = match (header.is_some(), header_detected) {
        (true, true) => "a header row (detected)",
        (true, false) => "a header row",
        (false, true) => "no header row (detected)",
        (false, false) => "no header row",
    };
    let how = if cols.detected {
        "detected"
    } else {
        "as given"
    };
    format!(
        "{format}, {head}; text: {}; label: {label} ({how})",
        text.join(" + ")
    )
}

/// Parses CSV with the `csv` crate (quoted fields may hold commas, quotes and newlines; see
/// `quotes.rs` for the check of fields that span lines). Rows with the wrong number of fields
/// come back as bad rows.
fn csv_rows(
    path: &Path,
    content: &str,
    allow_multiline: bool,
) -> Result<(Vec<Row>, Vec<DataError>), DataError> {
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
    let mut bad = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = line_at(e.position());
                match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => bad.push(DataError::line(
                        path,
                        line,
                        format!(
                            "{len} comma-separated fields, expected {expected_len} as in the \
                             first row; quote fields that contain commas"
                        ),
                    )),
                    _ => return Err(DataError::line(path, line, format!("bad CSV row: {e}"))),
                }
                continue;
            }
        };
        let line = line_at(record.position());
        let fields: Vec<String> = record.iter().map(str::to_string).collect();
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        rows.push(Row { line, fields });
    }
    let columns = rows.first().map_or(0, |r| r.fields.len());
    check_quotes(path, content, b',', columns, allow_multiline)?;
    Ok((rows, bad))
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

/// Picks the text column(s) and the optional label column (see the module docs for the rules).
fn choose_columns(
    path: &Path,
    header: Option<&[String]>,
    ncols: usize,
    data: &[Row],
    opts: &ReadOptions,
) -> Result<Columns, DataError> {
    let find = |col: &Column, role: &str| resolve(path, col, header, ncols, role);
    let by_names = |names: &[&str]| {
        let h = header?;
        names
            .iter()
            .find_map(|n| h.iter().position(|c| c.trim().eq_ignore_ascii_case(n)))
    };
    let mut text: Vec<usize> = opts
        .text_columns
        .iter()
        .map(|c| find(c, "text"))
        .collect::<Result<_, _>>()?;
    if text.is_empty() {
        text.extend(by_names(TEXT_NAMES));
    }
    let mut label = match &opts.label_column {
        Some(c) => Some(find(c, "label")?),
        None => by_names(LABEL_NAMES),
    };
    let detected = opts.text_columns.is_empty() || opts.label_column.is_none();
    match (ncols, text.as_slice(), label) {
        (1, [], _) => text = vec![0],
        (2, [t], None) => label = Some(1 - t),
        (2, [], Some(l)) => text = vec![1 - l],
        (2, [], None) => {
            let l = guess_label_column(data);
            (text, label) = (vec![1 - l], Some(l));
        }
        _ => {}
    }
    if text.is_empty() {
        return Err(DataError::file(
            path,
            format!(
                "no text column found; {}; pass the text column (name or 0-based index)",
                describe(header, ncols)
            ),
        ));
    }
    if let Some(l) = label.filter(|l| text.contains(l)) {
        return Err(DataError::file(
            path,
            format!("text and label are the same column ({l}); pass distinct columns"),
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
    Ok(Columns {
        text,
        label,
        detected,
    })
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
        assert!(e.contains("t.csv: 1 row cannot be read: line 3: 3 comma-separated fields, expected 2 as in the first row; quote fields that contain commas"), "{e}");
    }

    #[test]
    fn unknown_column_lists_columns() {
        let opts = ReadOptions {
            text_columns: vec![Column::Name("sentence".into())],
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
            text_columns: vec![Column::Name("body".into())],
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
            text_columns: vec!["v2".parse().unwrap()],
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
            e.contains("sms.tsv: 1 row cannot be read: line 2: 1 tab-separated fields, expected 2 as in the first row;"),
            "{e}"
        );
        let e = err(
            "sms.tsv",
            "ham\thi\nham\tyo\nspam\t  \n",
            &ReadOptions::default(),
        );
        assert!(
            e.contains("sms.tsv: 1 row cannot be read: line 3: empty text;"),
            "{e}"
        );
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
            text_columns: vec![Column::Index(1)],
            label_column: Some(Column::Index(0)),
            ..Default::default()
        };
        let ds = read("data.dat", "label,text\n1,\"x, y\"\n", &opts).unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.examples[1].text, "x, y");
    }

    /// 300 rows `text,label`; line `stray` opens a quote that never closed on its own line.
    fn with_stray_quote(stray: usize) -> String {
        let mut csv = String::from("text,label\n");
        for line in 2..=301 {
            let label = if line % 2 == 0 { "pos" } else { "neg" };
            match line {
                l if l == stray => csv.push_str(&format!("\"row {l},{label}\n")),
                // A later row with a quoted text: it closes the stray field.
                l if l == stray + 2 => csv.push_str(&format!("he said \"hi\" {l},{label}\n")),
                l => csv.push_str(&format!("row {l},{label}\n")),
            }
        }
        csv
    }

    #[test]
    fn a_stray_quote_is_an_error_naming_its_line_not_a_lost_row() {
        // Before the check this file read as 299 examples without a word.
        let e = err("t.csv", &with_stray_quote(50), &ReadOptions::default());
        assert!(
            e.contains("t.csv line 50: a quoted field opens here and runs to line 52"),
            "{e}"
        );
        assert!(e.contains("--allow-multiline"), "{e}");
        let allow = ReadOptions {
            allow_multiline: true,
            ..Default::default()
        };
        // Allowed, rows 50-52 make one example: the silent loss the check prevents.
        assert_eq!(
            read("t.csv", &with_stray_quote(50), &allow).unwrap().len(),
            298
        );
        let clean = with_stray_quote(0);
        assert_eq!(
            read("t.csv", &clean, &ReadOptions::default())
                .unwrap()
                .len(),
            300
        );
    }

    #[test]
    fn several_text_columns_are_joined_one_line_each() {
        let csv = "title,description,category\nCup final,The team won.,sport\nNew phone,,tech\n";
        let opts = ReadOptions {
            text_columns: vec![
                Column::Name("title".into()),
                Column::Name("description".into()),
            ],
            ..Default::default()
        };
        let ds = read("news.csv", csv, &opts).unwrap();
        assert_eq!(ds.texts(), ["Cup final\nThe team won.", "New phone"]);
        assert_eq!(ds.examples[0].label.as_deref(), Some("sport"));
        assert_eq!(
            ds.layout,
            "csv, a header row (detected); text: \"title\" + \"description\"; label: \"category\" (detected)"
        );
        let opts = ReadOptions {
            text_columns: vec![Column::Index(0), Column::Index(2)],
            label_column: Some(Column::Index(2)),
            ..Default::default()
        };
        let e = err("news.csv", csv, &opts);
        assert!(e.contains("text and label are the same column (2)"), "{e}");
    }

    #[test]
    fn every_bad_row_is_reported_and_can_be_skipped() {
        let mut tsv = String::new();
        for i in 0..40 {
            let text = if i % 3 == 0 { "  " } else { "some text" };
            tsv.push_str(&format!(
                "{}\t{text}\n",
                if i % 2 == 0 { "ham" } else { "spam" }
            ));
        }
        let e = err("sms.tsv", &tsv, &ReadOptions::default());
        // Before, only the first (line 1) was reported.
        assert!(
            e.contains("sms.tsv: 14 rows cannot be read: line 1: empty text; line 4: empty text;"),
            "{e}"
        );
        assert!(
            e.contains("; and 4 more; fix them, or leave them out with `--skip-bad-rows`"),
            "{e}"
        );
        let skip = ReadOptions {
            skip_bad_rows: true,
            ..Default::default()
        };
        let ds = read("sms.tsv", &tsv, &skip).unwrap();
        assert_eq!((ds.len(), ds.skipped.len()), (26, 14));
        assert_eq!(ds.skipped[1], "line 4: empty text");
        assert_eq!(
            ds.layout,
            "tsv, no header row (detected); text: column 1; label: column 0 (detected)"
        );
    }
}
