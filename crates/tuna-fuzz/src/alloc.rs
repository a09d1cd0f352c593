//! A global allocator that counts live bytes and refuses to go past a bound while a case runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The system allocator with a count of live bytes. Install it in a test binary with
/// `#[global_allocator] static A: CountingAlloc = CountingAlloc;`. While a case runs, a request
/// that would take the live bytes past the case's limit fails (Rust then aborts the process
/// with "memory allocation of N bytes failed", which fails the test run: a reader that sizes a
/// buffer from a header it did not check is caught here rather than by the machine running out
/// of memory).
pub struct CountingAlloc;

fn reserve(n: usize) -> bool {
    let live = LIVE.fetch_add(n, Relaxed).saturating_add(n);
    if live > LIMIT.load(Relaxed) {
        LIVE.fetch_sub(n, Relaxed);
        return false;
    }
    PEAK.fetch_max(live, Relaxed);
    true
}

// SAFETY: every call is forwarded to `System` with the same layout; the counters only decide
// whether to forward an allocation at all.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !reserve(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc(layout);
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !reserve(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !reserve(new_size - old) {
            return std::ptr::null_mut();
        }
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            if new_size > old {
                LIVE.fetch_sub(new_size - old, Relaxed);
            }
        } else if new_size < old {
            LIVE.fetch_sub(old - new_size, Relaxed);
        }
        p
    }
}

/// Starts counting a case: the peak restarts from the live bytes now, and no more than
/// `bound` bytes beyond them may be live until [`end_case`].
pub(crate) fn begin_case(bound: usize) -> usize {
    let live = LIVE.load(Relaxed);
    PEAK.store(live, Relaxed);
    LIMIT.store(live.saturating_add(bound), Relaxed);
    live
}

/// Ends a case begun when `base` bytes were live: lifts the limit and returns the case's peak
/// above `base`.
pub(crate) fn end_case(base: usize) -> usize {
    LIMIT.store(usize::MAX, Relaxed);
    PEAK.load(Relaxed).saturating_sub(base)
}

/// Whether the allocator is installed (live bytes are being counted) in this binary.
pub(crate) fn installed() -> bool {
    let probe = vec![0u8; 64];
    let live = LIVE.load(Relaxed);
    drop(std::hint::black_box(probe));
    live > 0
}
