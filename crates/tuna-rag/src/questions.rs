//! Question sets for evaluation: questions with their relevant sources and reference answers,
//! from JSONL or straight from a SQuAD-style JSON file.

use crate::docs::{file_name, source_name, squad_articles, squad_source};
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// One evaluation question.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub id: String,
    pub question: String,
    /// Sources that hold the answer (matched as in [`source_matches`]).
    pub relevant: Vec<String>,
    /// Reference answers (any one counts), possibly empty.
    pub answers: Vec<String>,
}

/// Reads questions: SQuAD JSON (`.json`: relevant source = the question's paragraph, named as
/// `tuna index add` names it) or JSONL with `question`, `relevant` (or `sources`) and `answers`.
pub fn load_questions(path: &Path) -> Result<Vec<Question>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let qs = if is_json {
        squad_questions(path, &text)?
    } else {
        jsonl_questions(path, &text)?
    };
    if qs.is_empty() {
        return Err(Error::bad_file(path, "no questions"));
    }
    Ok(qs)
}

fn squad_questions(path: &Path, text: &str) -> Result<Vec<Question>> {
    let name = source_name(path);
    let source = file_name(&name);
    let mut out = Vec::new();
    for a in squad_articles(path, text)? {
        for (i, p) in a.paragraphs.iter().enumerate() {
            for qa in &p.qas {
                let question = qa.get("question").and_then(Value::as_str).ok_or_else(|| {
                    Error::bad_file(path, format!("article {}: question without text", a.title))
                })?;
                let answers = qa
                    .get("answers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.get("text").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect();
                out.push(Question {
                    id: qa
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{}/{i}/{}", a.title, out.len())),
                    question: question.to_string(),
                    relevant: vec![squad_source(source, &a.title, i)],
                    answers,
                });
            }
        }
    }
    Ok(out)
}

fn jsonl_questions(path: &Path, text: &str) -> Result<Vec<Question>> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => vec![],
        }
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| Error::bad_file(path, format!("line {}: {e}", i + 1)))?;
        let question = v.get("question").and_then(Value::as_str).ok_or_else(|| {
            Error::bad_file(path, format!("line {}: no `question` string", i + 1))
        })?;
        let mut relevant = strings(v.get("relevant"));
        relevant.extend(strings(v.get("sources")));
        out.push(Question {
            id: v
                .get("id")
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .unwrap_or_else(|| (i + 1).to_string()),
            question: question.to_string(),
            relevant,
            answers: strings(v.get("answers")),
        });
    }
    Ok(out)
}

/// A stored source counts for a relevant one when equal, or when the relevant name is a tail of
/// it at a path boundary (`data.json#T/3` matches `../data/data.json#T/3`), so questions need
/// not repeat the directory the documents were indexed from.
pub fn source_matches(stored: &str, relevant: &str) -> bool {
    stored == relevant
        || stored
            .strip_suffix(relevant)
            .is_some_and(|head| head.ends_with('/'))
}
