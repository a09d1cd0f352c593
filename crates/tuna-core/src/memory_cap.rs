//! A cap on the memory one piece of untrusted code may take on its thread, such as a chat
//! template from a model's files rendering a prompt.
//!
//! A template can grow a value without bound in a few instructions (a string doubled in a loop
//! reaches gigabytes within 40 turns, far inside any instruction budget), and Rust's
//! allocation failure cannot be turned into an error: it aborts. So the process's allocator
//! (tuna's, in `tuna_train::alloc`) reports every allocation and free on the thread here
//! ([`on_alloc`], [`on_free`]); while [`with_memory_cap`] runs, going past the cap stops the
//! process at once with the caller's message, instead of taking the machine's memory first.

use std::cell::{Cell, RefCell};
use std::io::Write;

thread_local! {
    /// (bytes allocated on this thread since the cap began, less those freed; the cap).
    static METER: Cell<Option<(isize, isize)>> = const { Cell::new(None) };
    static MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Runs `f` with at most `cap` bytes allocated on this thread beyond what was live at the start;
/// past it the process stops with `message`. Without an allocator that reports here (tests of
/// single crates), `f` runs uncapped.
pub fn with_memory_cap<T>(cap: usize, message: &str, f: impl FnOnce() -> T) -> T {
    MESSAGE.with(|m| {
        let mut m = m.borrow_mut();
        m.clear();
        m.push_str(message);
    });
    let outer = METER.with(|c| c.replace(Some((0, cap.min(isize::MAX as usize) as isize))));
    let out = f();
    METER.with(|c| c.set(outer));
    out
}

/// Called by the allocator for each allocation of `n` bytes on this thread. Must not allocate.
#[inline]
pub fn on_alloc(n: usize) {
    METER.with(|c| {
        if let Some((used, cap)) = c.get() {
            let used = used.saturating_add(n as isize);
            c.set(Some((used, cap)));
            if used > cap {
                c.set(None);
                stop(cap);
            }
        }
    });
}

/// Called by the allocator for each free of `n` bytes on this thread. Must not allocate.
#[inline]
pub fn on_free(n: usize) {
    METER.with(|c| {
        if let Some((used, cap)) = c.get() {
            c.set(Some((used.saturating_sub(n as isize), cap)));
        }
    });
}

#[cold]
fn stop(cap: isize) -> ! {
    // Written without allocating: the message was formatted when the cap began.
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(b"error: ");
    MESSAGE.with(|m| {
        if let Ok(m) = m.try_borrow() {
            let _ = err.write_all(m.as_bytes());
        }
    });
    let mib = (cap >> 20) as u64;
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = mib;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let _ = err.write_all(b" (memory cap: ");
    let _ = err.write_all(&digits[i..]);
    let _ = err.write_all(b" MiB)\n");
    let _ = err.flush();
    std::process::exit(70);
}
