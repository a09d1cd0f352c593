//! Everything the CLI prints: human lines to stdout, progress and errors to stderr, and with
//! `--json` one JSON object as the last line of stdout.

use crate::progress::Bar;
use serde_json::Value;

/// Where command output goes, by the global flags.
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    /// `-v`: errors with their causes and, when captured, their backtrace.
    pub verbose: bool,
}

impl Output {
    pub fn new(json: bool, quiet: bool, verbose: bool) -> Self {
        Self {
            json,
            quiet,
            verbose,
        }
    }

    /// A human-readable line (suppressed by `--quiet`).
    pub fn line(&self, s: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", s.as_ref());
        }
    }

    /// A side note on stderr, so that stdout stays the command's output (suppressed by
    /// `--quiet`).
    pub fn note(&self, s: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", s.as_ref());
        }
    }

    /// The final result: a JSON line with `--json`, else nothing more. Before it, once per
    /// run, how many texts were cut at a token limit (also in the JSON as `truncated`).
    pub fn result(&self, mut v: Value) {
        let cuts = tuna_models::truncation::take();
        for &(limit, n) in &cuts {
            let texts = if n == 1 { "text was" } else { "texts were" };
            self.line(format!(
                "note: {n} {texts} longer than {limit} tokens and cut to {limit} (the token \
                 limit: --max-len, or the model's positions)"
            ));
        }
        if let (false, Some(obj)) = (cuts.is_empty(), v.as_object_mut()) {
            let list: Vec<Value> = cuts
                .iter()
                .map(|(limit, n)| serde_json::json!({"limit": limit, "texts": n}))
                .collect();
            obj.insert("truncated".into(), Value::Array(list));
        }
        if self.json {
            println!("{v}");
        }
    }

    /// A progress reporter (silent with `--quiet`).
    pub fn bar(&self) -> Bar {
        Bar::new(self.quiet)
    }

    /// Reports a failure in one message (with `-v`: its causes and any backtrace); with
    /// `--json` also as a JSON line.
    pub fn error(&self, e: &anyhow::Error) {
        if self.verbose {
            eprintln!("error: {e:?}");
        } else {
            eprintln!("error: {e:#}");
        }
        if self.json {
            println!(
                "{}",
                serde_json::json!({"ok": false, "error": format!("{e:#}")})
            );
        }
    }
}
