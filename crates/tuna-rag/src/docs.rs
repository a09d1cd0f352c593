//! Documents to index: plain text, Markdown, JSONL (one document per line) and SQuAD-style JSON
//! (one document per paragraph), each with a stable source name and a content hash.

use crate::error::{Error, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// One document: where it came from, an optional title, and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Stable name: the path as given, with `#id` for one record of a multi-document file.
    pub source: String,
    /// A title (Markdown's first heading, a JSONL `title`, a SQuAD article title).
    pub title: Option<String>,
    pub text: String,
}

impl Document {
    /// Hex SHA-256 of the title and text: an unchanged document has the same hash.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.title.as_deref().unwrap_or("").as_bytes());
        h.update([0u8]);
        h.update(self.text.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// File extensions read when a directory is given.
const EXTENSIONS: [&str; 6] = ["txt", "md", "markdown", "jsonl", "json", "text"];

/// Reads every document under `paths` (files, or directories walked in name order), skipping
/// empty ones. A source seen twice is kept once.
pub fn load_documents(paths: &[PathBuf]) -> Result<Vec<Document>> {
    let mut files = Vec::new();
    for p in paths {
        collect_files(p, &mut files)?;
    }
    let mut docs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in files {
        for d in read_file(&f)? {
            if !d.text.trim().is_empty() && seen.insert(d.source.clone()) {
                docs.push(d);
            }
        }
    }
    Ok(docs)
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            collect_files(&e, out)?;
        } else if extension(&e).is_some_and(|x| EXTENSIONS.contains(&x.as_str())) {
            out.push(e);
        }
    }
    Ok(())
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
}

/// The source name of a path: as given, without a leading `./`.
pub fn source_name(path: &Path) -> String {
    let s = path.to_string_lossy();
    s.strip_prefix("./").unwrap_or(&s).to_string()
}

/// The documents in one file, by its extension (anything unknown is read as plain text).
pub fn read_file(path: &Path) -> Result<Vec<Document>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| Error::bad_file(path, format!("not UTF-8 text ({e})")))?;
    let source = source_name(path);
    match extension(path).as_deref() {
        Some("jsonl") => read_jsonl(path, &source, &text),
        Some("json") => read_squad(path, &source, &text),
        Some("md") | Some("markdown") => Ok(vec![Document {
            title: markdown_title(&text),
            source,
            text,
        }]),
        _ => Ok(vec![Document {
            source,
            title: None,
            text,
        }]),
    }
}

/// The first `# ` heading of a Markdown text.
fn markdown_title(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("# "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// One document per line: `text` (or `content`, `context`), optional `id` and `title`.
fn read_jsonl(path: &Path, source: &str, text: &str) -> Result<Vec<Document>> {
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| Error::bad_file(path, format!("line {}: {e}", i + 1)))?;
        let body = ["text", "content", "context"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .ok_or_else(|| {
                Error::bad_file(
                    path,
                    format!("line {}: no `text` (or `content`) string", i + 1),
                )
            })?;
        let id = match v.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => (i + 1).to_string(),
        };
        docs.push(Document {
            source: format!("{source}#{id}"),
            title: v.get("title").and_then(Value::as_str).map(str::to_string),
            text: body.to_string(),
        });
    }
    Ok(docs)
}

/// SQuAD v1.1 JSON: one document per paragraph, named `FILE#TITLE/N` (N from 0 per article).
fn read_squad(path: &Path, source: &str, text: &str) -> Result<Vec<Document>> {
    let articles = squad_articles(path, text)?;
    let mut docs = Vec::new();
    for a in articles {
        for (i, p) in a.paragraphs.iter().enumerate() {
            docs.push(Document {
                source: squad_source(source, &a.title, i),
                title: Some(a.title.replace('_', " ")),
                text: p.context.clone(),
            });
        }
    }
    Ok(docs)
}

/// The source name of paragraph `i` of article `title` in a SQuAD file.
pub fn squad_source(file_source: &str, title: &str, i: usize) -> String {
    format!("{file_source}#{title}/{i}")
}

/// The last path component of a source name.
pub fn file_name(source: &str) -> &str {
    let path = source.split('#').next().unwrap_or(source);
    path.rsplit('/').next().unwrap_or(path)
}

/// One SQuAD article: its title and paragraphs.
pub(crate) struct SquadArticle {
    pub title: String,
    pub paragraphs: Vec<SquadParagraph>,
}

/// One SQuAD paragraph: its text and its question/answer records.
pub(crate) struct SquadParagraph {
    pub context: String,
    pub qas: Vec<Value>,
}

/// The articles of a SQuAD-format JSON text (`{"data": [{"title", "paragraphs": [...]}]}`).
pub(crate) fn squad_articles(path: &Path, text: &str) -> Result<Vec<SquadArticle>> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| Error::bad_file(path, format!("JSON: {e}")))?;
    let data = v.get("data").and_then(Value::as_array).ok_or_else(|| {
        Error::bad_file(
            path,
            "a .json document file must be SQuAD-style: {\"data\": [{\"title\", \"paragraphs\"}]}",
        )
    })?;
    data.iter()
        .enumerate()
        .map(|(ai, a)| {
            let title = a
                .get("title")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("article{ai}"));
            let paragraphs = a
                .get("paragraphs")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::bad_file(path, format!("article {title}: no paragraphs")))?
                .iter()
                .map(|p| {
                    let context = p.get("context").and_then(Value::as_str).ok_or_else(|| {
                        Error::bad_file(path, format!("article {title}: paragraph without context"))
                    })?;
                    Ok(SquadParagraph {
                        context: context.to_string(),
                        qas: p
                            .get("qas")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(SquadArticle { title, paragraphs })
        })
        .collect()
}
