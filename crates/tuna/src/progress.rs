//! indicatif progress bars behind the library's `Progress` trait. When stderr is not a
//! terminal (a log file, `nohup`), a plain line is written instead, at most every 30 seconds.

use indicatif::{ProgressBar, ProgressStyle};
use std::cell::{Cell, RefCell};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tuna_train::Progress;

/// A progress bar on stderr, one phase at a time.
pub struct Bar {
    hidden: bool,
    bar: RefCell<Option<ProgressBar>>,
    /// Plain lines for a stderr that is not a terminal.
    log: Option<LineLog>,
}

/// Progress as occasional plain lines.
struct LineLog {
    phase: RefCell<String>,
    msg: RefCell<String>,
    pos: Cell<u64>,
    total: Cell<u64>,
    last: Cell<Instant>,
}

const LINE_EVERY: Duration = Duration::from_secs(30);

impl LineLog {
    fn print(&self) {
        let total = match self.total.get() {
            0 => String::new(),
            t => format!("/{t}"),
        };
        eprintln!(
            "{}: {}{total} {}",
            self.phase.borrow(),
            self.pos.get(),
            self.msg.borrow()
        );
        self.last.set(Instant::now());
    }
}

impl Bar {
    pub fn new(hidden: bool) -> Self {
        let log = (!hidden && !std::io::stderr().is_terminal()).then(|| LineLog {
            phase: RefCell::new(String::new()),
            msg: RefCell::new(String::new()),
            pos: Cell::new(0),
            total: Cell::new(0),
            last: Cell::new(Instant::now()),
        });
        Self {
            hidden: hidden || log.is_some(),
            bar: RefCell::new(None),
            log,
        }
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: u64) {
        if let Some(l) = &self.log {
            *l.phase.borrow_mut() = phase.to_string();
            l.msg.borrow_mut().clear();
            l.pos.set(0);
            l.total.set(total);
            l.last.set(Instant::now());
        }
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
        if let Some(l) = &self.log {
            l.pos.set(l.pos.get() + n);
            if l.last.get().elapsed() >= LINE_EVERY {
                l.print();
            }
        }
        if let Some(b) = self.bar.borrow().as_ref() {
            b.inc(n);
        }
    }

    fn message(&self, msg: &str) {
        if let Some(l) = &self.log {
            *l.msg.borrow_mut() = msg.to_string();
        }
        if let Some(b) = self.bar.borrow().as_ref() {
            b.set_message(msg.to_string());
        }
    }

    fn finish(&self) {
        if let Some(l) = &self.log {
            if l.last.get().elapsed() >= LINE_EVERY / 6 {
                l.print();
            }
        }
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
}
