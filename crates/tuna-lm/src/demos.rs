//! Choosing the demonstrations of a k-shot prompt from a labelled pool: at random (seeded, per
//! query), balanced over the classes, or the pool examples nearest to the query in an encoder's
//! embedding space.

use serde::{Deserialize, Serialize};
use tuna_core::{Error, Result, Rng};

/// How demonstrations are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// k pool examples drawn at random for each query.
    Random,
    /// The same number from every class (classes take turns when k is not a multiple),
    /// drawn at random for each query and shuffled.
    Balanced,
    /// The k pool examples most similar to the query (cosine of embeddings); the most similar
    /// comes last, next to the query.
    Nearest,
}

/// Picks demonstrations for the queries of one run.
pub struct DemoPicker<'a> {
    selection: Selection,
    k: usize,
    seed: u64,
    pool_labels: &'a [usize],
    num_classes: usize,
    /// Nearest: L2-normalised pool embeddings (N, H) row-major, and the width H.
    pool_vectors: Option<(&'a [f32], usize)>,
}

impl<'a> DemoPicker<'a> {
    /// A picker over a pool with labels `pool_labels` (class indices below `num_classes`).
    pub fn new(
        selection: Selection,
        k: usize,
        seed: u64,
        pool_labels: &'a [usize],
        num_classes: usize,
    ) -> Result<Self> {
        if k > pool_labels.len() {
            return Err(Error::Invalid(format!(
                "{k} shots but the demonstration pool has only {} examples",
                pool_labels.len()
            )));
        }
        Ok(Self {
            selection,
            k,
            seed,
            pool_labels,
            num_classes,
            pool_vectors: None,
        })
    }

    /// Gives the pool's embeddings (needed for [`Selection::Nearest`]); rows are normalised here.
    pub fn with_vectors(mut self, vectors: &'a mut [f32], width: usize) -> Result<Self> {
        if vectors.len() != width * self.pool_labels.len() {
            return Err(Error::Invalid(
                "pool embeddings do not match the pool".into(),
            ));
        }
        vectors.chunks_mut(width).for_each(normalise);
        self.pool_vectors = Some((vectors, width));
        Ok(self)
    }

    /// Pool indices of the demonstrations for query number `query` (embedding `vector` for
    /// nearest-neighbour selection), in prompt order.
    pub fn pick(&self, query: usize, vector: Option<&[f32]>) -> Result<Vec<usize>> {
        if self.k == 0 {
            return Ok(Vec::new());
        }
        let mut rng = Rng::new(self.seed ^ (query as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        match self.selection {
            Selection::Random => {
                let mut all: Vec<usize> = (0..self.pool_labels.len()).collect();
                // Partial Fisher-Yates: the first k are a uniform sample.
                for i in 0..self.k {
                    let j = i + rng.below(all.len() - i);
                    all.swap(i, j);
                }
                all.truncate(self.k);
                Ok(all)
            }
            Selection::Balanced => {
                let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); self.num_classes];
                for (i, &c) in self.pool_labels.iter().enumerate() {
                    by_class[c].push(i);
                }
                by_class.retain(|v| !v.is_empty());
                for v in &mut by_class {
                    rng.shuffle(v);
                }
                let mut start: Vec<usize> = (0..by_class.len()).collect();
                rng.shuffle(&mut start); // which classes get the extra shots
                let mut out = Vec::with_capacity(self.k);
                let mut round = 0;
                while out.len() < self.k {
                    for &c in &start {
                        if out.len() < self.k && round < by_class[c].len() {
                            out.push(by_class[c][round]);
                        }
                    }
                    round += 1;
                }
                rng.shuffle(&mut out);
                Ok(out)
            }
            Selection::Nearest => {
                let (pool, width) = self.pool_vectors.ok_or_else(|| {
                    Error::Invalid(
                        "nearest-neighbour demonstrations need an encoder's embeddings".into(),
                    )
                })?;
                let mut q = vector
                    .ok_or_else(|| Error::Invalid("no embedding for the query".into()))?
                    .to_vec();
                normalise(&mut q);
                let mut sims: Vec<(f32, usize)> = pool
                    .chunks(width)
                    .enumerate()
                    .map(|(i, row)| (row.iter().zip(&q).map(|(a, b)| a * b).sum(), i))
                    .collect();
                let k = self.k;
                sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                sims.truncate(k);
                // Least similar first: the nearest sits next to the query.
                sims.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
                Ok(sims.into_iter().map(|(_, i)| i).collect())
            }
        }
    }
}

fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_is_seeded_distinct_and_varies_by_query() {
        let labels = vec![0; 50];
        let p = DemoPicker::new(Selection::Random, 4, 1, &labels, 1).unwrap();
        let a = p.pick(0, None).unwrap();
        assert_eq!(a, p.pick(0, None).unwrap());
        assert_ne!(a, p.pick(1, None).unwrap());
        let mut s = a.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 4);
        assert!(DemoPicker::new(Selection::Random, 51, 1, &labels, 1).is_err());
    }

    #[test]
    fn balanced_takes_each_class_equally() {
        let labels: Vec<usize> = (0..30).map(|i| usize::from(i % 3 == 0)).collect();
        let p = DemoPicker::new(Selection::Balanced, 4, 3, &labels, 2).unwrap();
        for q in 0..20 {
            let d = p.pick(q, None).unwrap();
            let ones = d.iter().filter(|&&i| labels[i] == 1).count();
            assert_eq!(ones, 2, "{d:?}");
        }
    }

    #[test]
    fn nearest_orders_by_similarity() {
        let labels = vec![0, 1, 0];
        let mut vecs = vec![1.0, 0.0, 0.0, 1.0, 0.7, 0.7];
        let p = DemoPicker::new(Selection::Nearest, 2, 0, &labels, 2)
            .unwrap()
            .with_vectors(&mut vecs, 2)
            .unwrap();
        // Query along x: pool 0 (cos 1) nearest, then pool 2 (cos 0.71).
        assert_eq!(p.pick(0, Some(&[2.0, 0.0])).unwrap(), vec![2, 0]);
    }
}
