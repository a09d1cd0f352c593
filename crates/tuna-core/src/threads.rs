//! How a tuna program uses its threads.
//!
//! Two pools would otherwise share the cores: rayon's, which runs the matrix products and
//! tuna's fused kernels, and candle's own pool for its elementwise maps, whose workers spin for
//! a while after every map before they sleep. On a 2-core machine the spinning worker took a
//! tenth of a MiniLM training step's samples from the products' threads, and when anything else
//! ran beside tuna, a step took twice as long. With candle's maps on the calling thread
//! (`CANDLE_NUM_THREADS=1`) rayon's pool is the only one: measured at 2 threads, alternating,
//! MiniLM `lora` step 0.86 -> 0.82 s, `full` 1.01 -> 0.98 s, `tuna embed` of 2,000 SST-2
//! sentences 9.8 -> 7.9 s; under load from another process, `lora` 2.07 -> 1.28 s or better.

/// The variable candle reads (once, at its first elementwise map) for its pool's size.
pub const CANDLE_THREADS_VAR: &str = "CANDLE_NUM_THREADS";

/// Runs candle's elementwise maps on the calling thread unless the environment already says
/// otherwise. Call at the start of `main`, before any other thread exists.
pub fn one_pool() {
    if std::env::var_os(CANDLE_THREADS_VAR).is_none() {
        std::env::set_var(CANDLE_THREADS_VAR, "1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_the_variable_once_and_keeps_a_users_choice() {
        // The only test in this crate that touches the variable.
        std::env::remove_var(CANDLE_THREADS_VAR);
        one_pool();
        assert_eq!(std::env::var(CANDLE_THREADS_VAR).as_deref(), Ok("1"));
        std::env::set_var(CANDLE_THREADS_VAR, "3");
        one_pool();
        assert_eq!(std::env::var(CANDLE_THREADS_VAR).as_deref(), Ok("3"));
        std::env::remove_var(CANDLE_THREADS_VAR);
    }
}
