//! JSONL files: one JSON object per line, text and label under keys.
//!
//! Keys: the ones given in [`ReadOptions`] (by name; positions are refused), else the first of
//! [`TEXT_NAMES`] / [`LABEL_NAMES`] present in the first object, ignoring case. A label may be
//! a string, an integer or a boolean; `null` or a missing key means "no label".

use crate::example::{collect_rows, make_example, non_blank_lines, Example, Rows};
use crate::format::{Column, ReadOptions, LABEL_NAMES, TEXT_NAMES};
use crate::table::join_text;
use crate::DataError;
use serde_json::{Map, Value};
use std::path::Path;

/// The keys chosen from the first object: the text key(s) and the optional label key.
struct Keys {
    text: Vec<String>,
    label: Option<String>,
}

/// Reads a JSONL file into examples (and skipped rows), with a note of the keys used.
pub(crate) fn read_jsonl(
    path: &Path,
    content: &str,
    opts: &ReadOptions,
) -> Result<(Rows, String), DataError> {
    let mut keys: Option<Keys> = None;
    let mut rows = Vec::new();
    for (line, l) in non_blank_lines(content) {
        let obj = match parse_object(path, line, l) {
            Ok(o) => o,
            Err(e) => {
                rows.push(Err(e));
                continue;
            }
        };
        if keys.is_none() {
            keys = Some(choose_keys(path, line, &obj, opts)?);
        }
        let Some(k) = &keys else { continue };
        rows.push(example_of(path, line, &obj, k, opts.labels_required));
    }
    let layout = keys.as_ref().map_or(String::new(), |k| {
        let text: Vec<String> = k.text.iter().map(|t| format!("\"{t}\"")).collect();
        let label = k
            .label
            .as_ref()
            .map_or("none".into(), |l| format!("\"{l}\""));
        let how = if opts.text_columns.is_empty() || opts.label_column.is_none() {
            "detected"
        } else {
            "as given"
        };
        format!("jsonl; text: {}; label: {label} ({how})", text.join(" + "))
    });
    Ok((collect_rows(path, rows, opts.skip_bad_rows)?, layout))
}

/// One line as a JSON object.
fn parse_object(path: &Path, line: usize, l: &str) -> Result<Map<String, Value>, DataError> {
    let value: Value = serde_json::from_str(l)
        .map_err(|e| DataError::line(path, line, format!("invalid JSON: {e}")))?;
    match value {
        Value::Object(obj) => Ok(obj),
        _ => Err(DataError::line(
            path,
            line,
            "expected a JSON object like {\"text\": \"...\", \"label\": \"...\"}",
        )),
    }
}

/// The example of one object: its text key(s) joined, its label.
fn example_of(
    path: &Path,
    line: usize,
    obj: &Map<String, Value>,
    keys: &Keys,
    labels_required: bool,
) -> Result<Example, DataError> {
    let mut parts = Vec::with_capacity(keys.text.len());
    for key in &keys.text {
        match get(obj, key) {
            Some(Value::String(s)) => parts.push(s.as_str()),
            Some(Value::Null) if keys.text.len() > 1 => {}
            Some(other) => {
                return Err(DataError::line(
                    path,
                    line,
                    format!("key \"{key}\" must be a string, found {other}"),
                ))
            }
            None => {
                return Err(DataError::line(
                    path,
                    line,
                    format!("key \"{key}\" missing; keys are: {}", list(obj)),
                ))
            }
        }
    }
    let label = match keys.label.as_ref().and_then(|k| get(obj, k)) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
        Some(other) => {
            return Err(DataError::line(
                path,
                line,
                format!("label must be a string, number or boolean, found {other}"),
            ))
        }
    };
    let text = join_text(parts.into_iter());
    make_example(path, line, &text, label.as_deref(), labels_required)
}

/// Picks the text key(s) and the optional label key from the first object.
fn choose_keys(
    path: &Path,
    line: usize,
    obj: &Map<String, Value>,
    opts: &ReadOptions,
) -> Result<Keys, DataError> {
    let find = |col: Option<&Column>, names: &[&str], role: &str| match col {
        Some(Column::Name(n)) => obj
            .keys()
            .find(|k| *k == n)
            .or_else(|| obj.keys().find(|k| k.eq_ignore_ascii_case(n)))
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                DataError::line(
                    path,
                    line,
                    format!("{role} key \"{n}\" not found; keys are: {}", list(obj)),
                )
            }),
        Some(Column::Index(i)) => Err(DataError::file(
            path,
            format!(
                "{role} column {i}: JSONL keys have no positions; pass a key name (keys are: {})",
                list(obj)
            ),
        )),
        None => Ok(names
            .iter()
            .find_map(|n| obj.keys().find(|k| k.eq_ignore_ascii_case(n)))
            .cloned()),
    };
    let mut text = Vec::new();
    for c in &opts.text_columns {
        text.extend(find(Some(c), TEXT_NAMES, "text")?);
    }
    if text.is_empty() {
        text.extend(find(None, TEXT_NAMES, "text")?);
    }
    if text.is_empty() {
        return Err(DataError::line(
            path,
            line,
            format!(
                "no text key found; keys are: {}; pass the text key",
                list(obj)
            ),
        ));
    }
    let label = find(opts.label_column.as_ref(), LABEL_NAMES, "label")?;
    if opts.labels_required && label.is_none() {
        return Err(DataError::line(
            path,
            line,
            format!(
                "no label key found; keys are: {}; pass the label key",
                list(obj)
            ),
        ));
    }
    Ok(Keys { text, label })
}

/// The value under `key`, matched exactly first, then ignoring ASCII case.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The keys of an object, comma-separated.
fn list(obj: &Map<String, Value>) -> String {
    obj.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use crate::{read_dataset, Column, ReadOptions};
    use std::io::Write;

    fn read(content: &str, opts: &ReadOptions) -> Result<crate::Dataset, crate::DataError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        std::fs::File::create(&p)
            .unwrap()
            .write_all(content.as_bytes())
            .unwrap();
        read_dataset(&p, opts)
    }

    #[test]
    fn reads_default_keys_and_label_types() {
        let ds = read(
            "{\"Sentence\": \" hi \", \"label\": 1}\n\n{\"sentence\": \"yo\", \"Label\": \"neg\"}\r\n{\"text\": \"x\", \"sentence\": \"b\", \"label\": true}\n",
            &ReadOptions::default(),
        )
        .unwrap();
        let labels: Vec<_> = ds
            .examples
            .iter()
            .map(|e| e.label.clone().unwrap())
            .collect();
        assert_eq!(labels, ["1", "neg", "true"]);
        assert_eq!(ds.examples[0].text, "hi");
        assert_eq!(ds.examples[1].line, 3);
    }

    #[test]
    fn errors_name_line_and_keys() {
        let opts = ReadOptions::default();
        let e = read("{\"text\": \"a\", \"label\": 0}\n{oops\n", &opts)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("d.jsonl: 1 row cannot be read: line 2: invalid JSON"),
            "{e}"
        );
        let e = read("[1, 2]\n", &opts).unwrap_err().to_string();
        assert!(e.contains("line 1: expected a JSON object"), "{e}");
        let e = read("{\"body\": \"a\", \"label\": 0}\n", &opts)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("line 1: no text key found; keys are: body, label; pass the text key"),
            "{e}"
        );
        let e = read(
            "{\"text\": \"a\", \"label\": 0}\n{\"text\": \"b\"}\n",
            &opts,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 2: missing label; every example needs one here;"),
            "{e}"
        );
        let e = read(
            "{\"text\": \"a\", \"label\": 0}\n{\"body\": \"b\"}\n",
            &opts,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 2: key \"text\" missing; keys are: body;"),
            "{e}"
        );
        let idx = ReadOptions {
            text_columns: vec![Column::Index(0)],
            ..Default::default()
        };
        let e = read("{\"text\": \"a\", \"label\": 0}\n", &idx)
            .unwrap_err()
            .to_string();
        assert!(e.contains("JSONL keys have no positions"), "{e}");
    }

    #[test]
    fn custom_keys_and_optional_labels() {
        let opts = ReadOptions {
            text_columns: vec![Column::Name("body".into())],
            labels_required: false,
            ..Default::default()
        };
        let ds = read(
            "{\"body\": \"a\", \"y\": 0}\n{\"body\": \"b\", \"label\": null}\n",
            &opts,
        )
        .unwrap();
        assert_eq!(ds.texts(), vec!["a", "b"]);
        assert!(ds.examples.iter().all(|e| e.label.is_none()));
    }

    #[test]
    fn several_text_keys_are_joined_and_the_keys_are_described() {
        let opts = ReadOptions {
            text_columns: vec![Column::Name("title".into()), Column::Name("body".into())],
            ..Default::default()
        };
        let ds = read(
            "{\"title\": \"T\", \"body\": \"b\", \"label\": 1}\n{\"title\": \"U\", \"body\": null, \"label\": 0}\n",
            &opts,
        )
        .unwrap();
        assert_eq!(ds.texts(), ["T\nb", "U"]);
        assert_eq!(
            ds.layout,
            "jsonl; text: \"title\" + \"body\"; label: \"label\" (detected)"
        );
    }
}
