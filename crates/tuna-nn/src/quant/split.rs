//! Work split for the products of decoding steps, which are too small for rayon's usual
//! hand-off: decoding runs on a thread outside the pool, and a parallel iterator called from there
//! queues its work for the pool's workers and waits for them, so each of a token's ~200 products
//! pays a wake-up and the calling thread idles. Here the calling thread does the first share
//! itself and hands each other thread one share at once: to a helper that spins for it
//! (`team`), or to rayon's pool while another caller uses the helpers.

use super::team;
use std::sync::Mutex;

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
    // The shares on spinning helpers (`team`), else on rayon's pool.
    let shares: Vec<Mutex<&mut [T]>> = rest.chunks_mut(per).map(Mutex::new).collect();
    let jobs: Vec<Box<dyn Fn() + Sync + '_>> = (shares.iter())
        .map(|share| {
            Box::new(move || {
                if let Ok(mut s) = share.lock() {
                    s.iter_mut().for_each(f)
                }
            }) as Box<dyn Fn() + Sync + '_>
        })
        .collect();
    let refs: Vec<&(dyn Fn() + Sync)> = jobs.iter().map(|j| j.as_ref()).collect();
    let mut first = Some(first);
    let mut run_first = || {
        if let Some(first) = first.take() {
            first.iter_mut().for_each(f)
        }
    };
    if team::run(&refs, &mut run_first) {
        return;
    }
    drop(refs);
    drop(jobs);
    let rest: Vec<&mut [T]> = shares
        .into_iter()
        .map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect();
    rayon::in_place_scope(|s| {
        for share in rest {
            s.spawn(move |_| share.iter_mut().for_each(f));
        }
        run_first();
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
