//! Data-parallel helpers on `std::thread::scope`: work items are numbered and each result lands
//! in its own slot, so what a caller computes never depends on how many threads ran it.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads to use: `RAYON_NUM_THREADS` when set to a positive number (the usual knob for Rust
/// numeric code), else the machine's available parallelism.
pub fn num_threads() -> usize {
    if let Some(n) = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return n;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `(0..n).map(f).collect()`, with items handed out to up to `threads` scoped threads.
/// The output order is always `0..n`; a panic in `f` is re-raised on the caller's thread.
pub(crate) fn par_map<T, F>(n: usize, threads: usize, f: F) -> Vec<T>
where
    T: Send,
    F: Fn(usize) -> T + Sync,
{
    let threads = threads.min(n);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut parts: Vec<(usize, T)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break done;
                        }
                        done.push((i, f(i)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    parts.sort_by_key(|(i, _)| *i);
    parts.into_iter().map(|(_, v)| v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_independent_of_threads() {
        let one = par_map(37, 1, |i| i * i);
        let four = par_map(37, 4, |i| i * i);
        assert_eq!(one, four);
        assert_eq!(four[36], 1296);
        assert!(par_map(0, 4, |i| i).is_empty());
        assert!(num_threads() >= 1);
    }
}
