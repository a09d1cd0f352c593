//! The memory allocator of every tuna program (mimalloc), tuned for training loops.
//!
//! A training step allocates and frees the same large activation buffers over and over. glibc's
//! allocator serves them with fresh `mmap`s and returns them on free, so every step faults the
//! same memory in again and the kernel zeroes it; in a profile of a MiniLM step that was over a
//! tenth of the time. mimalloc with purging off keeps freed memory for reuse.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (see its `mimalloc.h`).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory in the process for reuse (call once at start).
pub fn keep_freed_memory() {
    // SAFETY: setting an allocator option is allowed at any time; -1 disables purging.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}
