//! Texts cut at a token limit, counted for the whole process, so that a run can say once, at
//! its end, how many texts lost their ends and at which limit (instead of cutting silently).
//! [`crate::Model::encode`] records every cut; so do other places that cut to a limit.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Limit -> number of texts cut to it since the last [`take`].
static CUTS: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());

/// Records that one text was cut to `limit` tokens.
pub fn record(limit: usize) {
    let mut cuts = CUTS.lock().unwrap_or_else(|e| e.into_inner());
    *cuts.entry(limit).or_insert(0) += 1;
}

/// `(limit, texts cut to it)` recorded so far, smallest limit first; resets the counts.
pub fn take() -> Vec<(usize, usize)> {
    let mut cuts = CUTS.lock().unwrap_or_else(|e| e.into_inner());
    std::mem::take(&mut *cuts).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_limit_and_resets() {
        take();
        record(8);
        record(128);
        record(8);
        assert_eq!(take(), vec![(8, 2), (128, 1)]);
        assert!(take().is_empty());
    }
}
