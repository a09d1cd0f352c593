//! The memory allocator of every tuna program (mimalloc), tuned for training loops.
//!
//! A training step allocates and frees the same large activation buffers over and over. glibc's
//! allocator serves them with fresh `mmap`s and returns them on free, so every step faults the
//! same memory in again and the kernel zeroes it; in a profile of a MiniLM step that was over a
//! tenth of the time. mimalloc with purging off keeps freed memory for reuse; what loading
//! freed is returned once, after the load ([`return_freed_memory`]).
//!
//! Every allocation and free is also reported to [`tuna_core::memory_cap`], which caps what
//! untrusted code (a chat template) may take on its thread.

use std::alloc::{GlobalAlloc, Layout};
use tuna_core::memory_cap::{on_alloc, on_free};

/// mimalloc, with each allocation counted against the thread's memory cap when one is set.
pub struct Allocator;

#[global_allocator]
static GLOBAL: Allocator = Allocator;

// SAFETY: every call is forwarded to mimalloc with the same arguments; the cap only counts
// (and stops the process before forwarding a request past it).
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        mimalloc::MiMalloc.alloc(layout)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        mimalloc::MiMalloc.alloc_zeroed(layout)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        mimalloc::MiMalloc.dealloc(ptr, layout)
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            on_alloc(new_size - layout.size());
        } else {
            on_free(layout.size() - new_size);
        }
        mimalloc::MiMalloc.realloc(ptr, layout, new_size)
    }
}

/// mimalloc's `mi_option_purge_delay` (see its `mimalloc.h`).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory in the process for reuse (call once at start).
pub fn keep_freed_memory() {
    // SAFETY: setting an allocator option is allowed at any time; -1 disables purging.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, -1) };
}

/// Returns the memory freed so far to the system, once, then keeps freed memory again (call
/// after loading a model). Reading a GGUF's vocabulary and building its tokenizer free tens of
/// megabytes of small blocks that the training loop's large buffers never reuse; while
/// purging is off they would stay resident for the whole run (SmolLM2-135M: about 50 MB of a
/// LoRA run's peak).
pub fn return_freed_memory() {
    // SAFETY: allocator options may be set at any time; `mi_collect` only frees what is free.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        libmimalloc_sys::mi_collect(true);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
}
