//! Classification prompts: a template with `{text}` and `{label}` slots, verbalisers that turn
//! labels into words, and how demonstrations and the query are put together. Saved and loaded
//! as a small JSON "prompt file".

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tuna_core::{fsutil, Error, Result};

/// A classification prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptTemplate {
    /// One example: `{text}` once, then `{label}` once; `{labels}` lists the label words
    /// ("negative or positive").
    pub template: String,
    /// Label name -> the word the model should produce for it.
    pub verbalizers: BTreeMap<String, String>,
    /// Between demonstrations, and between the last one and the query.
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Text put once before everything else.
    #[serde(default)]
    pub instruction: Option<String>,
}

fn default_separator() -> String {
    "\n\n".into()
}

/// The query's prompt and what each label adds to it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPrompt {
    /// Everything before the label, without trailing spaces.
    pub prompt: String,
    /// Per label (in label-map order): the whitespace before the label, then its word.
    pub continuations: Vec<String>,
}

impl PromptTemplate {
    /// A template over `labels` (label-map order) with `verbalizers` (label -> word; labels not
    /// named use their own name). `\n` and `\t` written as two characters become the control
    /// characters, so templates can be given on one command line.
    pub fn new(
        template: &str,
        labels: &[String],
        verbalizers: &BTreeMap<String, String>,
    ) -> Result<Self> {
        let template = unescape(template);
        let text_at = template.find("{text}");
        let label_at = template.find("{label}");
        match (text_at, label_at) {
            (Some(t), Some(l)) if t < l => {}
            _ => {
                return Err(Error::Invalid(format!(
                    "template `{template}` needs `{{text}}` and then `{{label}}`"
                )))
            }
        }
        if template.matches("{text}").count() != 1 || template.matches("{label}").count() != 1 {
            return Err(Error::Invalid(format!(
                "template `{template}` must have `{{text}}` and `{{label}}` once each"
            )));
        }
        for name in verbalizers.keys() {
            if !labels.contains(name) {
                return Err(Error::Invalid(format!(
                    "verbaliser for `{name}`, which is not a label of the data ({})",
                    labels.join(", ")
                )));
            }
        }
        let words: BTreeMap<String, String> = labels
            .iter()
            .map(|l| {
                (
                    l.clone(),
                    verbalizers.get(l).cloned().unwrap_or_else(|| l.clone()),
                )
            })
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for w in words.values() {
            if w.trim().is_empty() || !seen.insert(w.trim().to_string()) {
                return Err(Error::Invalid(format!(
                    "label words must be distinct and not empty: {words:?}"
                )));
            }
        }
        Ok(Self {
            template,
            verbalizers: words,
            separator: default_separator(),
            instruction: None,
        })
    }

    /// Reads a prompt file.
    pub fn load(path: &Path) -> Result<Self> {
        fsutil::read_json(path)
    }

    /// Writes the prompt file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::write_json(path, self)
    }

    /// Checks the file's labels against the data's (label-map order).
    pub fn check_labels(&self, labels: &[String]) -> Result<()> {
        let mine: Vec<&String> = self.verbalizers.keys().collect();
        let theirs: Vec<&String> = {
            let mut v: Vec<&String> = labels.iter().collect();
            v.sort();
            v
        };
        if mine != theirs {
            return Err(Error::Invalid(format!(
                "the prompt's labels ({}) are not the data's ({})",
                self.verbalizers
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                labels.join(", ")
            )));
        }
        Ok(())
    }

    /// The word of `label`.
    pub fn word<'s>(&'s self, label: &'s str) -> &'s str {
        self.verbalizers.get(label).map_or(label, String::as_str)
    }

    /// `{labels}`: the label words joined as "a, b or c".
    fn label_list(&self, labels: &[String]) -> String {
        let words: Vec<&str> = labels.iter().map(|l| self.word(l)).collect();
        match words.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => words.join(""),
        }
    }

    /// One filled-in example.
    pub fn demo(&self, text: &str, label: &str, labels: &[String]) -> String {
        self.template
            .replace("{labels}", &self.label_list(labels))
            .replace("{text}", text.trim())
            .replace("{label}", self.word(label))
    }

    /// The full prompt for `text` after the demonstrations `demos` (text, label).
    pub fn query(&self, text: &str, demos: &[(&str, &str)], labels: &[String]) -> QueryPrompt {
        let filled = self
            .template
            .replace("{labels}", &self.label_list(labels))
            .replace("{text}", text.trim());
        let head = &filled[..filled.find("{label}").unwrap_or(filled.len())];
        let trimmed = head.trim_end();
        let gap = &head[trimmed.len()..];
        let mut prompt = String::new();
        if let Some(i) = &self.instruction {
            prompt.push_str(i);
            prompt.push_str(&self.separator);
        }
        for (t, l) in demos {
            prompt.push_str(&self.demo(t, l, labels));
            prompt.push_str(&self.separator);
        }
        prompt.push_str(trimmed);
        QueryPrompt {
            prompt,
            continuations: labels
                .iter()
                .map(|l| format!("{gap}{}", self.word(l)))
                .collect(),
        }
    }
}

/// The built-in templates of `tuna prompt-search`: the three styles of hard prompt tuning (an
/// instruction sentence, a `Key: '…' | Label:` form, an arrow form) and three common variants.
pub fn builtin_templates() -> Vec<&'static str> {
    vec![
        "Classify the text '{text}' as {labels}: {label}",
        "Text: '{text}' | Label: {label}",
        "'{text}' -> {label}",
        "Text: {text}\nAnswer ({labels}): {label}",
        "{text}\nQuestion: Is this {labels}?\nAnswer: {label}",
        "Input: {text}\nOutput: {label}",
    ]
}

/// Reads templates from a file: one per line (`\n` written as two characters), `#` comments
/// and blank lines skipped.
pub fn read_templates(path: &Path) -> Result<Vec<String>> {
    let raw = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let out: Vec<String> = raw
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(String::from)
        .collect();
    if out.is_empty() {
        return Err(Error::bad_file(path, "no templates in the file"));
    }
    Ok(out)
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["0".into(), "1".into()]
    }

    fn words() -> BTreeMap<String, String> {
        [("0", "negative"), ("1", "positive")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn query_moves_the_space_into_the_continuation() {
        let t = PromptTemplate::new("Review: {text}\\nSentiment: {label}", &labels(), &words())
            .unwrap();
        let q = t.query(" fine film ", &[("awful", "0")], &labels());
        assert_eq!(
            q.prompt,
            "Review: awful\nSentiment: negative\n\nReview: fine film\nSentiment:"
        );
        assert_eq!(q.continuations, vec![" negative", " positive"]);
    }

    #[test]
    fn label_list_and_arrow_form() {
        let t = PromptTemplate::new("'{text}' is {labels}? {label}", &labels(), &words()).unwrap();
        let q = t.query("ok", &[], &labels());
        assert_eq!(q.prompt, "'ok' is negative or positive?");
        let t = PromptTemplate::new("'{text}' -> {label}", &labels(), &BTreeMap::new()).unwrap();
        assert_eq!(t.query("x", &[], &labels()).continuations, vec![" 0", " 1"]);
    }

    #[test]
    fn rejects_bad_templates_and_verbalisers() {
        let l = labels();
        assert!(PromptTemplate::new("{label} {text}", &l, &words()).is_err());
        assert!(PromptTemplate::new("{text}", &l, &words()).is_err());
        let mut w = words();
        w.insert("1".into(), "negative".into());
        assert!(PromptTemplate::new("{text} {label}", &l, &w).is_err());
        let mut w = words();
        w.insert("7".into(), "seven".into());
        assert!(PromptTemplate::new("{text} {label}", &l, &w).is_err());
    }

    #[test]
    fn prompt_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let t = PromptTemplate::new("{text} => {label}", &labels(), &words()).unwrap();
        let p = dir.path().join("prompt.json");
        t.save(&p).unwrap();
        let back = PromptTemplate::load(&p).unwrap();
        assert_eq!(back, t);
        back.check_labels(&labels()).unwrap();
        assert!(back.check_labels(&["a".into(), "b".into()]).is_err());
    }

    #[test]
    fn builtins_are_valid_templates() {
        for b in builtin_templates() {
            PromptTemplate::new(b, &labels(), &words()).unwrap();
        }
    }
}
