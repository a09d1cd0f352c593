//! indicatif progress bars behind the library's `Progress` trait.

use indicatif::{ProgressBar, ProgressStyle};
use std::cell::RefCell;
use std::time::Duration;
use tuna_train::Progress;

/// A progress bar on stderr, one phase at a time.
pub struct Bar {
    hidden: bool,
    bar: RefCell<Option<ProgressBar>>,
}

impl Bar {
    pub fn new(hidden: bool) -> Self {
        Self {
            hidden,
            bar: RefCell::new(None),
        }
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: u64) {
        if self.hidden {
            return;
        }
        let bar = if total > 0 {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template("{prefix:>20} [{bar:30}] {pos}/{len} eta {eta} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b
        } else {
            let b = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix} {msg}") {
                b.set_style(style);
            }
            b.enable_steady_tick(Duration::from_millis(120));
            b
        };
        bar.set_prefix(phase.to_string());
        *self.bar.borrow_mut() = Some(bar);
    }

    fn advance(&self, n: u64) {
        if let Some(b) = self.bar.borrow().as_ref() {
            b.inc(n);
        }
    }

    fn message(&self, msg: &str) {
        if let Some(b) = self.bar.borrow().as_ref() {
            b.set_message(msg.to_string());
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
}
