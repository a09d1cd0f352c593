//! Running a reader over seeded mutants: every case on its own thread under a time budget and an
//! allocation bound, with panics, hangs and oversized allocations reported as findings.

use crate::alloc;
use crate::mutate::Mutator;
use crate::rng::{case_seed, SplitMix};
use arbitrary::Unstructured;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a reader made of one input.
#[derive(Debug)]
pub enum Outcome {
    /// Read (and used, where the test goes on to use it).
    Accepted,
    /// Refused with this message.
    Refused(String),
}

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A reader under test: takes the mutant's bytes, returns what it made of them.
type Check = Arc<dyn Fn(&[u8]) -> Outcome + Send + Sync>;

/// The figures of a finished campaign.
#[derive(Debug, Default)]
pub struct Report {
    pub cases: usize,
    pub accepted: usize,
    pub refused: usize,
    /// Refusals whose message was empty (a clear error names something).
    pub blank_errors: usize,
    pub findings: Vec<String>,
    /// The first few distinct refusal messages, to see what the mutants reach.
    pub samples: Vec<String>,
    /// Cases that ran past the time budget (also among the findings).
    pub hangs: usize,
    pub slowest: Duration,
    /// The largest number of bytes a case had live at once beyond what was live before it.
    pub peak_bytes: usize,
    pub wall: Duration,
}

/// One reader's fuzz run: how many cases, from which seed, under which limits.
pub struct Campaign {
    pub name: String,
    pub cases: usize,
    pub seed: u64,
    /// Wall time one case may take (a reader that takes longer counts as hung).
    pub budget: Duration,
    /// Bytes one case may have live at once beyond what was live before it.
    pub bound: usize,
    /// Where inputs that once failed are kept; each is replayed before the mutants.
    pub fixtures: PathBuf,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Campaign {
    /// `cases` mutants in release builds (a tenth in debug builds, which run the readers ~10x
    /// slower), unless `TUNA_FUZZ_CASES` says otherwise; 5 s and 256 MiB per case.
    pub fn new(name: impl Into<String>, cases: usize) -> Self {
        let name = name.into();
        let cases = if cfg!(debug_assertions) {
            cases / 10
        } else {
            cases
        };
        Self {
            cases: env_or("TUNA_FUZZ_CASES", cases),
            seed: env_or("TUNA_FUZZ_SEED", 0x7475_6e61),
            budget: Duration::from_secs(5),
            bound: 256 << 20,
            fixtures: Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(&name),
            name,
        }
    }

    /// Replays the fixtures, then runs `cases` mutants of `seeds` through `check`.
    pub fn run(
        &self,
        seeds: &[Vec<u8>],
        mutator: &Mutator,
        check: impl Fn(&[u8]) -> Outcome + Send + Sync + 'static,
    ) -> Report {
        assert!(
            alloc::installed(),
            "install tuna_fuzz::CountingAlloc as the global allocator"
        );
        assert!(
            !seeds.is_empty(),
            "a campaign needs at least one valid input"
        );
        // One campaign at a time per process: the allocation counts are global.
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let check: Check = Arc::new(check);
        for (i, seed) in seeds.iter().enumerate() {
            if let Outcome::Refused(e) = check(seed) {
                panic!(
                    "{}: seed {i} is refused, so its mutants test little: {e}",
                    self.name
                );
            }
        }
        let started = Instant::now();
        let mut report = Report::default();
        for (label, input) in self.fixture_inputs() {
            self.case(&check, label, input, &mut report);
        }
        for i in 0..self.cases {
            let mut rng = SplitMix::new(case_seed(self.seed, &self.name, i));
            let raw = rng.bytes(1024);
            let mut u = Unstructured::new(&raw);
            let seed = &seeds[u.choose_index(seeds.len()).unwrap_or(0)];
            let input = mutator.mutate(seed, &mut u);
            self.case(&check, format!("case {i}"), input, &mut report);
            // A hung case still runs on its thread: stop rather than measure beside it.
            if report.hangs > 0 || report.findings.len() >= 10 {
                break;
            }
        }
        report.wall = started.elapsed();
        report
    }

    fn fixture_inputs(&self) -> Vec<(String, Vec<u8>)> {
        let Ok(dir) = std::fs::read_dir(&self.fixtures) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        paths
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).expect("readable fixture");
                (format!("fixture {}", p.display()), bytes)
            })
            .collect()
    }

    /// Runs one input on its own thread; a panic, a hang or an empty error becomes a finding.
    fn case(&self, check: &Check, label: String, input: Vec<u8>, report: &mut Report) {
        let (tx, rx) = mpsc::channel();
        let (c, bytes) = (Arc::clone(check), input.clone());
        let base = alloc::begin_case(self.bound);
        let t0 = Instant::now();
        let worker = std::thread::spawn(move || {
            let _ = tx.send(c(&bytes));
        });
        let got = rx.recv_timeout(self.budget);
        let elapsed = t0.elapsed();
        let finding = match got {
            Ok(outcome) => {
                let _ = worker.join();
                report.record(outcome);
                None
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                report.hangs += 1;
                Some(format!(
                    "{label} ran past its budget of {:?} (a hang)",
                    self.budget
                ))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let message = worker.join().err().map_or("no message".into(), panic_text);
                Some(format!("{label} panicked: {message}"))
            }
        };
        report.peak_bytes = report.peak_bytes.max(alloc::end_case(base));
        report.slowest = report.slowest.max(elapsed);
        report.cases += 1;
        if let Some(f) = finding {
            let saved = self.save_finding(&label, &input);
            report
                .findings
                .push(format!("{}: {f}; input saved as {saved}", self.name));
        }
    }

    fn save_finding(&self, label: &str, input: &[u8]) -> String {
        let dir = std::env::temp_dir().join("tuna-fuzz-findings");
        let name = format!("{}-{}.bin", self.name, label.replace([' ', '/'], "_"));
        let path = dir.join(name);
        match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, input)) {
            Ok(()) => path.display().to_string(),
            Err(e) => format!("(not saved: {e})"),
        }
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-text panic".into()
    }
}

impl Report {
    fn record(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Accepted => self.accepted += 1,
            Outcome::Refused(msg) => {
                self.refused += 1;
                if msg.trim().is_empty() {
                    self.blank_errors += 1;
                }
                let short: String = msg.chars().take(160).collect();
                if self.samples.len() < 8 && !self.samples.contains(&short) {
                    self.samples.push(short);
                }
            }
        }
    }

    /// One line for the test log (and RELIABILITY.md's figures).
    pub fn summary(&self, name: &str) -> String {
        format!(
            "fuzz {name}: {} cases ({} read, {} refused with an error), {} findings, slowest \
             case {:.1} ms, largest case peak {:.1} MiB, {:.1} s",
            self.cases,
            self.accepted,
            self.refused,
            self.findings.len(),
            self.slowest.as_secs_f64() * 1e3,
            self.peak_bytes as f64 / (1 << 20) as f64,
            self.wall.as_secs_f64()
        )
    }

    /// Panics with every finding, so the test fails and names them.
    pub fn assert_clean(&self, name: &str) {
        eprintln!("{}", self.summary(name));
        if std::env::var_os("TUNA_FUZZ_VERBOSE").is_some() {
            for s in &self.samples {
                eprintln!("  refused: {s}");
            }
        }
        assert!(
            self.findings.is_empty(),
            "{}\n{}",
            self.summary(name),
            self.findings.join("\n")
        );
        assert_eq!(self.blank_errors, 0, "{name}: errors without a message");
        assert!(self.accepted + self.refused == self.cases);
    }
}
