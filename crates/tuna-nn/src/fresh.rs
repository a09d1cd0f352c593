//! Output buffers that a kernel writes in full, without zero-filling them first.
//!
//! `vec![0f32; n]` is one more pass over memory: the allocator clears the reused pages before the
//! kernel overwrites them. For the activation-sized outputs of the fused kernels (GELU and its
//! backward, the norms, softmax's backward, dropout masks) that pass was about 4% of a MiniLM
//! training step on an Intel Xeon, where a single core's memory bandwidth is the limit for such
//! loops. candle allocates its own CPU outputs the same way (`alloc_uninit`).

/// A buffer of `n` values handed to `fill` before anything has been written to it.
///
/// # Safety
/// `fill` must write every one of the `n` values and read none it has not written.
pub(crate) unsafe fn filled_by(n: usize, fill: impl FnOnce(&mut [f32])) -> Vec<f32> {
    // SAFETY: passed on to the caller.
    unsafe { filled_with_room(n, 0, fill) }
}

/// A buffer of `n` values with room for `extra` more, handed to `fill` unwritten (as
/// [`filled_by`]); what is appended later does not move the buffer.
///
/// # Safety
/// As for [`filled_by`].
pub(crate) unsafe fn filled_with_room(
    n: usize,
    extra: usize,
    fill: impl FnOnce(&mut [f32]),
) -> Vec<f32> {
    let mut out: Vec<f32> = Vec::with_capacity(n + extra);
    // SAFETY: the allocation holds at least n values; f32 has no invalid bit patterns and the
    // caller guarantees that `fill` writes each value before reading it.
    fill(unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr(), n) });
    // SAFETY: `fill` wrote all n values.
    unsafe { out.set_len(n) };
    out
}
