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

    /// The final result: a JSON line with `--json`, else nothing more.
    pub fn result(&self, v: Value) {
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
