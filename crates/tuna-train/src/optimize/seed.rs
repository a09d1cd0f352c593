//! The one seed derivation of every training run: a seed for each (run seed, epoch, batch),
//! from which the epoch's batch order and each batch's dropout masks are drawn. PPO draws its
//! per-iteration streams (prompt order, sampling, minibatch order) from it too.

use tuna_core::Rng;

/// A seed for (run seed, `epoch`, `batch`); `usize::MAX` as the batch names the epoch itself.
pub fn mix(seed: u64, epoch: usize, batch: usize) -> u64 {
    let mut r = Rng::new(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    r.next_u64() ^ (batch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// The shuffled order of `n` items in epoch `epoch`, a function of the seed and the epoch only.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    Rng::new(mix(seed, epoch, usize::MAX)).shuffle(&mut idx);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_permutations_that_differ_by_epoch() {
        let a = epoch_order(50, 7, 0);
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(50, 7, 0));
        assert_ne!(a, epoch_order(50, 7, 1));
        assert_ne!(mix(7, 0, 0), mix(7, 0, 1));
    }
}
