//! Everything the CLI prints: human lines to stdout, progress and errors to stderr, and with
//! `--json` one JSON object as the last line of stdout.

use crate::progress::Bar;
use serde_json::Value;

/// Where command output goes, by the global flags.
pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

impl Output {
    pub fn new(json: bool, quiet: bool) -> Self {
        Self { json, quiet }
    }

    /// A human-readable line (suppressed by `--quiet`).
    pub fn line(&self, s: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", s.as_ref());
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

    /// Reports a failure; with `--json` also as a JSON line.
    pub fn error(&self, e: &anyhow::Error) {
        eprintln!("error: {e:#}");
        if self.json {
            println!(
                "{}",
                serde_json::json!({"ok": false, "error": format!("{e:#}")})
            );
        }
    }
}
