//! Instruction and preference data: Alpaca-style JSON (`instruction`, `input`, `output`, and
//! `chosen` / `rejected` for pairs) and HH-RLHF dialogues (`chosen` / `rejected` transcripts,
//! JSONL, optionally gzipped), read into prompts with responses.

use flate2::read::GzDecoder;
use serde_json::Value;
use std::io::Read;
use std::path::Path;
use tuna_core::{Error, Rng};

/// What the model is asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// An instruction with an optional input (Alpaca style).
    Task { instruction: String, input: String },
    /// Earlier turns of a dialogue, alternating user and assistant, ending with a user turn.
    Dialogue(Vec<String>),
}

/// A prompt with its demonstrated response (supervised finetuning).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub prompt: Prompt,
    pub response: String,
}

/// A prompt with a preferred and a rejected response.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub prompt: Prompt,
    pub chosen: String,
    pub rejected: String,
}

type Result<T> = std::result::Result<T, Error>;

/// The JSON records of `path`: a JSON list, or JSONL (either optionally gzipped, `.gz`).
fn read_records(path: &Path) -> Result<Vec<Value>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut text = String::new();
    let gz = path.extension().is_some_and(|x| x == "gz");
    let read = if gz {
        GzDecoder::new(file).read_to_string(&mut text)
    } else {
        std::io::BufReader::new(file).read_to_string(&mut text)
    };
    read.map_err(|e| Error::io(path, e))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return match serde_json::from_str::<Value>(trimmed) {
            Ok(Value::Array(v)) => Ok(v),
            Ok(_) => Err(Error::bad_file(path, "expected a JSON list of records")),
            Err(e) => Err(Error::bad_file(path, format!("invalid JSON: {e}"))),
        };
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::bad_file(path, format!("line {}: invalid JSON: {e}", i + 1)))
        })
        .collect()
}

fn field<'a>(r: &'a Value, key: &str) -> Option<&'a str> {
    r.get(key).and_then(|v| v.as_str())
}

fn task(r: &Value) -> Option<Prompt> {
    Some(Prompt::Task {
        instruction: field(r, "instruction")?.to_string(),
        input: field(r, "input").unwrap_or("").to_string(),
    })
}

fn need<'a>(path: &Path, i: usize, r: &'a Value, key: &str) -> Result<&'a str> {
    field(r, key).ok_or_else(|| {
        Error::bad_file(
            path,
            format!("record {}: no `{key}` text (keys: {})", i + 1, keys(r)),
        )
    })
}

fn keys(r: &Value) -> String {
    r.as_object()
        .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "not an object".into())
}

/// Instruction examples: `instruction`, optional `input`, and `output` (or `response`).
pub fn read_examples(path: &Path) -> Result<Vec<Example>> {
    let recs = read_records(path)?;
    let mut out = Vec::with_capacity(recs.len());
    for (i, r) in recs.iter().enumerate() {
        let prompt = task(r).ok_or_else(|| {
            Error::bad_file(path, format!("record {}: no `instruction` text", i + 1))
        })?;
        let response = field(r, "output")
            .or_else(|| field(r, "response"))
            .ok_or_else(|| Error::bad_file(path, format!("record {}: no `output` text", i + 1)))?;
        out.push(Example {
            prompt,
            response: response.to_string(),
        });
    }
    if out.is_empty() {
        return Err(Error::bad_file(path, "no records"));
    }
    Ok(out)
}

/// Prompts alone: the `instruction` (and `input`) of each record; other fields are ignored.
pub fn read_prompts(path: &Path) -> Result<Vec<Prompt>> {
    let recs = read_records(path)?;
    let out = recs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            task(r).ok_or_else(|| {
                Error::bad_file(path, format!("record {}: no `instruction` text", i + 1))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if out.is_empty() {
        return Err(Error::bad_file(path, "no records"));
    }
    Ok(out)
}

/// Preference pairs: Alpaca-style records with `chosen` and `rejected` responses, or HH-RLHF
/// records whose `chosen` and `rejected` are whole `\n\nHuman: … \n\nAssistant: …` transcripts
/// that differ in the last assistant turn.
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let recs = read_records(path)?;
    let mut out = Vec::with_capacity(recs.len());
    let mut skipped = vec![];
    for (i, r) in recs.iter().enumerate() {
        let chosen = need(path, i, r, "chosen")?;
        let rejected = need(path, i, r, "rejected")?;
        match task(r) {
            Some(prompt) => out.push(Pair {
                prompt,
                chosen: chosen.to_string(),
                rejected: rejected.to_string(),
            }),
            None => match split_transcripts(chosen, rejected) {
                Some(p) => out.push(p),
                None => skipped.push(i + 1),
            },
        }
    }
    if out.is_empty() {
        return Err(Error::bad_file(
            path,
            "no usable pairs: `chosen` and `rejected` must be responses to an `instruction`, or \
             dialogues that differ only after their last `\\n\\nAssistant:`",
        ));
    }
    if !skipped.is_empty() {
        tracing::warn!(
            "{}: skipped {} dialogue pair(s) that differ before their last assistant turn (records {:?})",
            path.display(),
            skipped.len(),
            skipped
        );
    }
    Ok(out)
}

const HUMAN: &str = "\n\nHuman:";
const ASSISTANT: &str = "\n\nAssistant:";

/// Splits two transcripts at their last shared `\n\nAssistant:`.
fn split_transcripts(chosen: &str, rejected: &str) -> Option<Pair> {
    let cut = chosen.rfind(ASSISTANT)? + ASSISTANT.len();
    if !rejected.starts_with(&chosen[..cut]) {
        return None;
    }
    let turns = dialogue_turns(&chosen[..cut - ASSISTANT.len()])?;
    Some(Pair {
        prompt: Prompt::Dialogue(turns),
        chosen: chosen[cut..].trim().to_string(),
        rejected: rejected[cut..].trim().to_string(),
    })
}

/// `\n\nHuman: a\n\nAssistant: b\n\nHuman: c` -> [a, b, c]; None unless it alternates from a
/// human turn to a human turn.
fn dialogue_turns(text: &str) -> Option<Vec<String>> {
    let mut turns = vec![];
    let mut rest = text;
    let mut human = true;
    while !rest.is_empty() {
        let tag = if human { HUMAN } else { ASSISTANT };
        rest = rest.strip_prefix(tag)?;
        let other = if human { ASSISTANT } else { HUMAN };
        let end = rest.find(other).unwrap_or(rest.len());
        turns.push(rest[..end].trim().to_string());
        rest = &rest[end..];
        human = !human;
    }
    (turns.len() % 2 == 1).then_some(turns)
}

/// Splits `n` items into (train, held-out) indices: a seeded shuffle, the last `held_out` share
/// held out (at least one item each when `n >= 2`).
pub fn split_indices(n: usize, held_out: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    Rng::new(seed).shuffle(&mut idx);
    let mut k = (n as f64 * held_out).round() as usize;
    if n >= 2 {
        k = k.clamp(1, n - 1);
    } else {
        k = 0;
    }
    let held = idx.split_off(n - k);
    (idx, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hh_transcripts_split_at_the_last_assistant_turn() {
        let c = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant: Sure, gladly.";
        let r = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: help me\n\nAssistant: No.";
        let p = split_transcripts(c, r).unwrap();
        assert_eq!(
            p.prompt,
            Prompt::Dialogue(vec!["hi".into(), "hello".into(), "help me".into()])
        );
        assert_eq!(
            (p.chosen.as_str(), p.rejected.as_str()),
            ("Sure, gladly.", "No.")
        );
        assert!(split_transcripts(c, "\n\nHuman: other\n\nAssistant: x").is_none());
    }

    #[test]
    fn dialogues_that_differ_earlier_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hh.jsonl");
        let good = serde_json::json!({"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go"});
        let bad = serde_json::json!({"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d", "rejected": "\n\nHuman: a\n\nAssistant: x"});
        std::fs::write(&p, format!("{good}\n{bad}\n")).unwrap();
        let pairs = read_pairs(&p).unwrap();
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].rejected, "go");
        std::fs::write(&p, format!("{bad}\n")).unwrap();
        assert!(read_pairs(&p)
            .unwrap_err()
            .to_string()
            .contains("no usable pairs"));
    }

    #[test]
    fn split_is_seeded_and_disjoint() {
        let (a, b) = split_indices(100, 0.1, 7);
        assert_eq!((a.len(), b.len()), (90, 10));
        assert_eq!(split_indices(100, 0.1, 7), (a.clone(), b.clone()));
        let mut all: Vec<usize> = a.into_iter().chain(b).collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(split_indices(5, 0.0, 1).1.len(), 1);
    }
}
