//! Helper threads that wait for work by spinning, for the products of a decoding step.
//!
//! A decoding step runs about two hundred products of a few hundred microseconds each. Handed
//! to rayon's workers, each one pays two thread wake-ups (the worker's, then the caller's),
//! which cost tens of microseconds on a virtual machine: at two threads the kernel's
//! scheduler took a fifth of the step. Here each helper spins for its next share for a few
//! milliseconds before it sleeps, and the caller spins for the helpers' results, so shares
//! within a step reach a running thread. One caller uses the team at a time; another caller
//! meanwhile is told so and uses rayon instead.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long an idle helper spins for its next share before it sleeps.
const SPIN: Duration = Duration::from_millis(2);

/// A share of work for one helper, its lifetime erased: `run` waits until every helper has
/// finished its share before it returns, so the share outlives every use of it.
struct Job(*const (dyn Fn() + Sync + 'static));

// SAFETY: the closure behind the pointer is `Sync`, so calling it from another thread is sound;
// see `Job` for its lifetime.
unsafe impl Send for Job {}

/// One helper thread and what it shares with the caller.
struct Helper {
    /// Shares posted so far (raised after `job` is set).
    posted: AtomicUsize,
    /// Shares finished so far.
    done: AtomicUsize,
    /// The share posted last, taken by the helper.
    job: Mutex<Option<Job>>,
    /// Set when a share panicked (the panic is reported to the caller).
    panicked: AtomicBool,
    thread: Thread,
}

static TEAM: Mutex<Vec<Arc<Helper>>> = Mutex::new(Vec::new());

/// The helper's loop: spin (then sleep) until a share is posted, run it, report it done.
fn serve(h: &Helper) {
    let mut seen = 0;
    loop {
        let idle = Instant::now();
        while h.posted.load(Ordering::Acquire) == seen {
            if idle.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                thread::park_timeout(Duration::from_millis(100));
            }
        }
        seen += 1;
        let job = h.job.lock().map(|mut j| j.take()).unwrap_or(None);
        if let Some(Job(f)) = job {
            // SAFETY: see `Job`: the caller waits for `done` before the closure goes away.
            let f = unsafe { &*f };
            if catch_unwind(AssertUnwindSafe(f)).is_err() {
                h.panicked.store(true, Ordering::Relaxed);
            }
        }
        h.done.store(seen, Ordering::Release);
    }
}

/// A new helper thread, waiting for its first share.
fn spawn_helper(i: usize) -> std::io::Result<Arc<Helper>> {
    let (tx, rx) = std::sync::mpsc::channel::<Arc<Helper>>();
    let handle = thread::Builder::new()
        .name(format!("tuna-share-{i}"))
        .spawn(move || {
            if let Ok(h) = rx.recv() {
                serve(&h)
            }
        })?;
    let h = Arc::new(Helper {
        posted: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        job: Mutex::new(None),
        panicked: AtomicBool::new(false),
        thread: handle.thread().clone(),
    });
    tx.send(h.clone()).expect("the helper waits for its state");
    Ok(h)
}

/// The team with at least `n` helpers, or `None` when another caller holds it (or a helper
/// cannot be started): the caller then runs its shares another way.
fn team(n: usize) -> Option<MutexGuard<'static, Vec<Arc<Helper>>>> {
    let mut team = TEAM.try_lock().ok()?;
    while team.len() < n {
        let h = spawn_helper(team.len()).ok()?;
        team.push(h);
    }
    Some(team)
}

/// Runs `first` on this thread while helper i runs `jobs[i]`, and returns when all are done
/// (a panic in any of them is raised here, after all have finished). `false`, with nothing
/// run, when the team is in use by another caller.
pub(crate) fn run(jobs: &[&(dyn Fn() + Sync)], first: impl FnOnce()) -> bool {
    let Some(team) = team(jobs.len()) else {
        return false;
    };
    let helpers = &team[..jobs.len()];
    for (h, job) in helpers.iter().zip(jobs) {
        let ptr: *const (dyn Fn() + Sync + '_) = *job;
        // SAFETY: only the lifetime changes; see `Job`.
        let ptr: *const (dyn Fn() + Sync + 'static) = unsafe { std::mem::transmute(ptr) };
        if let Ok(mut slot) = h.job.lock() {
            *slot = Some(Job(ptr));
        }
        h.posted.fetch_add(1, Ordering::Release);
        h.thread.unpark();
    }
    let mine = catch_unwind(AssertUnwindSafe(first));
    for h in helpers {
        let want = h.posted.load(Ordering::Relaxed);
        let mut spins = 0u32;
        while h.done.load(Ordering::Acquire) != want {
            // A helper that lost its core (more threads than cores) gets it back sooner.
            spins += 1;
            if spins < 1 << 16 {
                std::hint::spin_loop();
            } else {
                thread::yield_now();
            }
        }
    }
    let theirs = helpers
        .iter()
        .any(|h| h.panicked.swap(false, Ordering::Relaxed));
    drop(team);
    if let Err(e) = mine {
        resume_unwind(e);
    }
    assert!(!theirs, "a share of a product panicked on a helper thread");
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_job_runs_once_and_panics_reach_the_caller() {
        let sum = AtomicU64::new(0);
        for round in 0..200u64 {
            let jobs: Vec<Box<dyn Fn() + Sync>> = (1..=3u64)
                .map(|i| {
                    let sum = &sum;
                    Box::new(move || {
                        sum.fetch_add(i * round, Ordering::Relaxed);
                    }) as Box<dyn Fn() + Sync>
                })
                .collect();
            let refs: Vec<&(dyn Fn() + Sync)> = jobs.iter().map(|j| j.as_ref()).collect();
            // Another test may hold the team: then nothing runs, and the sum must not move.
            let before = sum.load(Ordering::Relaxed);
            let ran = run(&refs, || {
                sum.fetch_add(round, Ordering::Relaxed);
            });
            let want = if ran { before + 7 * round } else { before };
            assert_eq!(sum.load(Ordering::Relaxed), want);
        }
        let boom: &(dyn Fn() + Sync) = &|| panic!("boom");
        let caught = catch_unwind(AssertUnwindSafe(|| run(&[boom], || {})));
        if let Err(e) = caught {
            let msg = e.downcast_ref::<&str>().copied().unwrap_or_default();
            assert!(msg.contains("helper thread"), "{msg}");
        }
        // The team still works after a panic.
        let one = AtomicU64::new(0);
        let job: &(dyn Fn() + Sync) = &|| {
            one.fetch_add(1, Ordering::Relaxed);
        };
        if run(&[job], || {}) {
            assert_eq!(one.load(Ordering::Relaxed), 1);
        }
    }
}
