//! JSONL files: one JSON object per line, text and label under keys.
//!
//! Keys: the ones given in [`ReadOptions`] (by name; positions are refused), else the first of
//! [`TEXT_NAMES`] / [`LABEL_NAMES`] present in the first object, ignoring case. A label may be
//! a string, an integer or a boolean; `null` or a missing key means "no label".

use crate::example::{make_example, non_blank_lines, Example};
use crate::format::{Column, ReadOptions, LABEL_NAMES, TEXT_NAMES};
use crate::DataError;
use serde_json::{Map, Value};
use std::path::Path;

/// Reads a JSONL file into examples.
pub(crate) fn read_jsonl(
    path: &Path,
    content: &str,
    opts: &ReadOptions,
) -> Result<Vec<Example>, DataError> {
    let mut keys: Option<(String, Option<String>)> = None;
    let mut examples = Vec::new();
    for (line, l) in non_blank_lines(content) {
        let value: Value = serde_json::from_str(l)
            .map_err(|e| DataError::line(path, line, format!("invalid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(DataError::line(
                path,
                line,
                "expected a JSON object like {\"text\": \"...\", \"label\": \"...\"}",
            ));
        };
        if keys.is_none() {
            keys = Some(choose_keys(path, line, &obj, opts)?);
        }
        let Some((text_key, label_key)) = &keys else {
            continue;
        };
        let text = match get(&obj, text_key) {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(DataError::line(
                    path,
                    line,
                    format!("key \"{text_key}\" must be a string, found {other}"),
                ))
            }
            None => {
                return Err(DataError::line(
                    path,
                    line,
                    format!("key \"{text_key}\" missing; keys are: {}", list(&obj)),
                ))
            }
        };
        let label = match label_key.as_ref().and_then(|k| get(&obj, k)) {
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
        examples.push(make_example(
            path,
            line,
            text,
            label.as_deref(),
            opts.labels_required,
        )?);
    }
    Ok(examples)
}

/// Picks the text key and the optional label key from the first object.
fn choose_keys(
    path: &Path,
    line: usize,
    obj: &Map<String, Value>,
    opts: &ReadOptions,
) -> Result<(String, Option<String>), DataError> {
    let find = |col: &Option<Column>, names: &[&str], role: &str| match col {
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
    let text = find(&opts.text_column, TEXT_NAMES, "text")?.ok_or_else(|| {
        DataError::line(
            path,
            line,
            format!(
                "no text key found; keys are: {}; pass the text key",
                list(obj)
            ),
        )
    })?;
    let label = find(&opts.label_column, LABEL_NAMES, "label")?;
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
    Ok((text, label))
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
        assert!(e.contains("d.jsonl line 2: invalid JSON"), "{e}");
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
            e.ends_with("line 2: missing label; every example needs one here"),
            "{e}"
        );
        let e = read(
            "{\"text\": \"a\", \"label\": 0}\n{\"body\": \"b\"}\n",
            &opts,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.ends_with("line 2: key \"text\" missing; keys are: body"),
            "{e}"
        );
        let idx = ReadOptions {
            text_column: Some(Column::Index(0)),
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
            text_column: Some(Column::Name("body".into())),
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
}
