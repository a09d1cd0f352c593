//! Quoted CSV fields that span lines: legitimate (a review with paragraphs) or an unbalanced
//! quote that silently swallows the rows after it.
//!
//! The rule: a quoted field may hold line breaks, unless one of its lines reads like a row of
//! its own, that is, holds exactly as many separators as a row of the file (`columns - 1`).
//! Such a field is taken as an unbalanced quote, and reading stops with the line where the
//! quote opened and the line that looked like a row. A quote that never closes is always an
//! error. `ReadOptions::allow_multiline` accepts every closed multi-line field as it is.
//!
//! A row swallowed by a stray quote cannot contain a quote (the next quote ends the field),
//! so it is unquoted and has exactly `columns - 1` separators: the rule catches every
//! swallowed row of a file with two or more columns. Its cost is a legitimate multi-line text
//! with one line holding exactly that many separators, for which the error names the way out.

use crate::DataError;
use std::path::Path;

/// A quoted field that holds a line break, or never closes.
struct Spanning<'a> {
    /// 1-based line of the opening quote.
    open_line: usize,
    /// The field's text on each of its lines, with the line's number.
    lines: Vec<(usize, &'a str)>,
    closed: bool,
}

/// The quoted fields of `content` (CSV with separator `sep`, RFC 4180 quoting: a quote opens a
/// field only at its start, `""` inside is a quote) that span lines or never close.
fn spanning_fields(content: &str, sep: u8) -> Vec<Spanning<'_>> {
    let b = content.as_bytes();
    let mut out = Vec::new();
    let (mut line, mut i, mut at_start) = (1, 0, true);
    while i < b.len() {
        match b[i] {
            b'"' if at_start => {
                let (open_line, start) = (line, i + 1);
                i += 1;
                let mut closed = false;
                while i < b.len() {
                    match b[i] {
                        b'"' if b.get(i + 1) == Some(&b'"') => i += 1,
                        b'"' => {
                            closed = true;
                            break;
                        }
                        b'\n' => line += 1,
                        _ => {}
                    }
                    i += 1;
                }
                if line > open_line || !closed {
                    let text = &content[start..i.min(b.len())];
                    let lines = text
                        .split('\n')
                        .enumerate()
                        .map(|(k, l)| (open_line + k, l.trim_end_matches('\r')))
                        .collect();
                    out.push(Spanning {
                        open_line,
                        lines,
                        closed,
                    });
                }
                at_start = false;
            }
            c if c == sep => at_start = true,
            b'\n' => {
                line += 1;
                at_start = true;
            }
            b'\r' => {}
            _ => at_start = false,
        }
        i += 1;
    }
    out
}

/// Refuses quotes that never close and, unless `allow_multiline`, quoted fields with a line
/// that reads like a row of `columns` fields (see the module docs).
pub(crate) fn check_quotes(
    path: &Path,
    content: &str,
    sep: u8,
    columns: usize,
    allow_multiline: bool,
) -> Result<(), DataError> {
    let sep_name = if sep == b',' { "comma" } else { "separator" };
    for f in spanning_fields(content, sep) {
        if !f.closed {
            return Err(DataError::line(
                path,
                f.open_line,
                "a quote opens a field here and never closes (the field would run to the end \
                 of the file); remove the stray quote, or write a quote inside a quoted field \
                 as \"\"",
            ));
        }
        if allow_multiline || columns < 2 {
            continue;
        }
        let row_like = f
            .lines
            .iter()
            .find(|(_, l)| l.bytes().filter(|&c| c == sep).count() == columns - 1);
        if let Some((at, _)) = row_like {
            let n = columns - 1;
            let s = if n == 1 { "" } else { "s" };
            return Err(DataError::line(
                path,
                f.open_line,
                format!(
                    "a quoted field opens here and runs to line {}, and its line {at} reads \
                     like a row of its own ({n} {sep_name}{s}, as the file's {columns} columns \
                     have): an unbalanced quote? Fix the quote (a quote inside a quoted field is \
                     written \"\"), or, if the field really holds those lines, allow multi-line \
                     fields (`--allow-multiline`)",
                    f.lines.last().map_or(f.open_line, |l| l.0)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(content: &str, columns: usize, allow: bool) -> Result<(), String> {
        check_quotes(Path::new("t.csv"), content, b',', columns, allow).map_err(|e| e.to_string())
    }

    #[test]
    fn plain_and_legit_multiline_fields_pass() {
        check(
            "a,b\n\"x, y\",1\n\"two\nlines\",2\n\"say \"\"hi\"\"\nthen go\",3\n",
            2,
            false,
        )
        .unwrap();
        check("a,b\nno \"quote\" at start,1\n", 2, false).unwrap();
    }

    #[test]
    fn a_stray_quote_that_swallows_a_row_names_the_opening_line() {
        let e = check(
            "text,label\ngood,pos\n\"bad,neg\nfine,pos\nsaid \"hi\",neg\n",
            2,
            false,
        )
        .unwrap_err();
        assert!(
            e.starts_with("t.csv line 3: a quoted field opens here and runs to line 5"),
            "{e}"
        );
        assert!(e.contains("1 comma, as the file's 2 columns have"), "{e}");
        check(
            "text,label\ngood,pos\n\"bad,neg\nfine,pos\nsaid \"hi\",neg\n",
            2,
            true,
        )
        .unwrap();
    }

    #[test]
    fn a_quote_that_never_closes_is_always_an_error() {
        for allow in [false, true] {
            let e = check("a,b\nx,1\ny,\"2\nz,3\n", 2, allow).unwrap_err();
            assert!(
                e.starts_with("t.csv line 3: a quote opens a field here and never closes"),
                "{e}"
            );
        }
    }
}
