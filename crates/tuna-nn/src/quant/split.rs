//! Work split for the products of decoding steps, which are too small for rayon's usual
//! hand-off: decoding runs on a thread outside the pool, and a parallel iterator called from there
//! queues its work for the pool's workers and waits for them, so each of a token's ~200 products
//! pays a wake-up and the calling thread idles. Here the calling thread does the first share
//! itself and hands each other thread one share at once.

/// Runs `f` on every item: on the calling thread when the pool has one thread, else in
/// `threads` contiguous shares, the first on the calling thread and the rest on the pool.
pub(crate) fn for_each_share<T: Send>(items: &mut [T], f: impl Fn(&mut T) + Sync) {
    let threads = rayon::current_num_threads().min(items.len()).max(1);
    if threads == 1 {
        items.iter_mut().for_each(f);
        return;
    }
    let per = items.len().div_ceil(threads);
    let (first, rest) = items.split_at_mut(per);
    let f = &f;
    rayon::in_place_scope(|s| {
        for share in rest.chunks_mut(per) {
            s.spawn(move |_| share.iter_mut().for_each(f));
        }
        first.iter_mut().for_each(f);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_run_once_whatever_the_threads() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for n in [0, 1, 2, 5, 17] {
                let mut items: Vec<(usize, usize)> = (0..n).map(|i| (i, 0)).collect();
                pool.install(|| for_each_share(&mut items, |(i, hit)| *hit += *i + 1));
                assert!(items.iter().all(|(i, hit)| *hit == i + 1), "{threads} {n}");
            }
        }
    }
}
