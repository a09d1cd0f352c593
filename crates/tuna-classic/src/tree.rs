//! One CART classification tree (Breiman et al. 1984) as used inside a random forest: Gini
//! impurity, a random subset of features tried at each node, the best threshold found by sorting
//! the node's values of each tried feature. Mirrors scikit-learn's `BestSplitter`: features are
//! drawn without replacement, and drawing goes on past `max_features` while every feature drawn so
//! far was constant on the node.

use crate::error::{ClassicError, Result};
use serde::{Deserialize, Serialize};
use tuna_core::Rng;

/// Marks a leaf in [`Tree::feature`].
pub const LEAF: u32 = u32::MAX;

/// A fitted tree stored as parallel arrays, one entry per node; node 0 is the root and children
/// always have larger indices than their parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Number of classes.
    pub n_classes: usize,
    /// Feature tested at each node, or [`LEAF`].
    pub feature: Vec<u32>,
    /// Threshold at each split node: rows with `x[feature] <= threshold` go left.
    pub threshold: Vec<f32>,
    /// Left child of a split node; for a leaf, the leaf's row in `leaf_values`.
    pub left: Vec<u32>,
    /// Right child of a split node (0 for a leaf).
    pub right: Vec<u32>,
    /// Class frequencies of the training samples in each leaf, `n_leaves x n_classes`.
    pub leaf_values: Vec<f32>,
}

/// How a tree grows.
#[derive(Debug, Clone)]
pub(crate) struct TreeParams {
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    pub max_features: usize,
}

impl Tree {
    /// Number of nodes.
    pub fn n_nodes(&self) -> usize {
        self.feature.len()
    }

    /// Class frequencies of the leaf that `row` falls into (call [`Tree::validate`] first on a
    /// tree that did not come from fitting).
    pub fn leaf_distribution(&self, row: &[f32]) -> &[f32] {
        let mut node = 0;
        while self.feature[node] != LEAF {
            let f = self.feature[node] as usize;
            node = if row[f] <= self.threshold[node] {
                self.left[node]
            } else {
                self.right[node]
            } as usize;
        }
        let leaf = self.left[node] as usize;
        &self.leaf_values[leaf * self.n_classes..(leaf + 1) * self.n_classes]
    }

    /// Depth of the deepest leaf (0 for a single leaf).
    pub fn depth(&self) -> usize {
        let mut depth = vec![0usize; self.n_nodes()];
        for node in 0..self.n_nodes() {
            if self.feature[node] != LEAF {
                for child in [self.left[node], self.right[node]] {
                    depth[child as usize] = depth[node] + 1;
                }
            }
        }
        depth.into_iter().max().unwrap_or(0)
    }

    /// Checks that a (loaded) tree is well formed for `n_features`, so prediction cannot panic
    /// or loop: equal array lengths, children after parents, features and leaves in range.
    pub fn validate(&self, n_features: usize) -> Result<()> {
        let n = self.n_nodes();
        let bad = |msg: String| Err(ClassicError::Config(format!("malformed tree: {msg}")));
        if n == 0 || [self.threshold.len(), self.left.len(), self.right.len()] != [n; 3] {
            return bad(format!("{n} nodes but arrays of other lengths"));
        }
        let n_leaves = self.leaf_values.len() / self.n_classes.max(1);
        if self.n_classes == 0 || self.leaf_values.len() != n_leaves * self.n_classes {
            return bad("leaf values do not match the class count".into());
        }
        for node in 0..n {
            let (l, r) = (self.left[node] as usize, self.right[node] as usize);
            if self.feature[node] == LEAF {
                if l >= n_leaves {
                    return bad(format!("leaf node {node} points past the leaf values"));
                }
            } else if self.feature[node] as usize >= n_features {
                return bad(format!("node {node} tests feature {}", self.feature[node]));
            } else if l <= node || r <= node || l >= n || r >= n {
                return bad(format!("node {node} has children {l}, {r}"));
            }
        }
        Ok(())
    }
}

/// Grows a tree on the samples `sample` (row indices, repeats allowed) of the column-major
/// matrix `xt` (`cols x rows`, column `f` is `xt[f * rows..(f + 1) * rows]`).
pub(crate) fn grow(
    xt: &[f32],
    rows: usize,
    y: &[u32],
    n_classes: usize,
    mut sample: Vec<u32>,
    params: &TreeParams,
    rng: &mut Rng,
) -> Tree {
    let cols = xt.len() / rows.max(1);
    let mut b = Builder {
        xt,
        rows,
        y,
        k: n_classes,
        params,
        rng,
        features: (0..cols).collect(),
        buf: Vec::with_capacity(sample.len()),
        tree: Tree {
            n_classes,
            feature: vec![],
            threshold: vec![],
            left: vec![],
            right: vec![],
            leaf_values: vec![],
        },
    };
    b.new_node();
    // (node, start, end, depth): the node's samples are sample[start..end].
    let mut stack = vec![(0usize, 0usize, sample.len(), 0usize)];
    while let Some((node, lo, hi, depth)) = stack.pop() {
        let idx = &mut sample[lo..hi];
        let mut counts = vec![0u64; n_classes];
        idx.iter()
            .for_each(|&s| counts[y[s as usize] as usize] += 1);
        let n = idx.len();
        let pure = counts.iter().filter(|&&c| c > 0).count() <= 1;
        let stop = pure
            || n < params.min_samples_split
            || n < 2 * params.min_samples_leaf
            || params.max_depth.is_some_and(|m| depth >= m);
        match if stop {
            None
        } else {
            b.best_split(idx, &counts)
        } {
            None => b.make_leaf(node, &counts, n),
            Some((f, thr)) => {
                let col = &xt[f * rows..(f + 1) * rows];
                let mid = lo + partition(idx, |s| col[s as usize] <= thr);
                let (l, r) = (b.new_node(), b.new_node());
                b.tree.feature[node] = f as u32;
                b.tree.threshold[node] = thr;
                b.tree.left[node] = l as u32;
                b.tree.right[node] = r as u32;
                stack.push((r, mid, hi, depth + 1));
                stack.push((l, lo, mid, depth + 1));
            }
        }
    }
    b.tree
}

/// Maps a float to an integer with the same order (`-0.0` sorts just below `0.0`).
fn sort_key(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The float whose [`sort_key`] is in the upper half of `key`.
fn key_value(key: u64) -> f32 {
    let k = (key >> 32) as u32;
    f32::from_bits(if k >> 31 == 1 { k & 0x7FFF_FFFF } else { !k })
}

/// Moves the entries satisfying `goes_left` to the front; returns how many there are.
fn partition(idx: &mut [u32], goes_left: impl Fn(u32) -> bool) -> usize {
    let mut mid = 0;
    for i in 0..idx.len() {
        if goes_left(idx[i]) {
            idx.swap(i, mid);
            mid += 1;
        }
    }
    mid
}

struct Builder<'a> {
    xt: &'a [f32],
    rows: usize,
    y: &'a [u32],
    k: usize,
    params: &'a TreeParams,
    rng: &'a mut Rng,
    /// A permutation of the feature ids, partially reshuffled at each node.
    features: Vec<usize>,
    /// `sort_key(value) << 32 | class` of the node's samples for the feature being tried:
    /// sorting plain integers is several times faster than sorting pairs by a float.
    buf: Vec<u64>,
    tree: Tree,
}

impl Builder<'_> {
    fn new_node(&mut self) -> usize {
        let t = &mut self.tree;
        t.feature.push(LEAF);
        t.threshold.push(0.0);
        t.left.push(0);
        t.right.push(0);
        t.feature.len() - 1
    }

    fn make_leaf(&mut self, node: usize, counts: &[u64], n: usize) {
        let t = &mut self.tree;
        t.left[node] = (t.leaf_values.len() / self.k) as u32;
        t.leaf_values
            .extend(counts.iter().map(|&c| (c as f64 / n as f64) as f32));
    }

    /// Best (feature, threshold) by Gini over the features drawn, or `None` if no feature
    /// separates the samples under the leaf-size limit.
    fn best_split(&mut self, idx: &[u32], counts: &[u64]) -> Option<(usize, f32)> {
        let n = idx.len();
        let cols = self.features.len();
        let min_leaf = self.params.min_samples_leaf;
        // Maximising sum_k nl_k^2 / nl + sum_k nr_k^2 / nr minimises the weighted Gini impurity.
        let total_sq: u64 = counts.iter().map(|c| c * c).sum();
        let mut best: Option<(f64, usize, f32)> = None;
        let mut left = vec![0u64; self.k];
        let mut found_varying = false;
        for t in 0..cols {
            if t >= self.params.max_features && found_varying {
                break;
            }
            let j = t + self.rng.below(cols - t);
            self.features.swap(t, j);
            let f = self.features[t];
            let col = &self.xt[f * self.rows..(f + 1) * self.rows];
            self.buf.clear();
            let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
            for &s in idx {
                let v = col[s as usize];
                lo = lo.min(v);
                hi = hi.max(v);
                self.buf
                    .push(((sort_key(v) as u64) << 32) | self.y[s as usize] as u64);
            }
            if lo >= hi {
                continue; // constant on this node
            }
            found_varying = true;
            self.buf.sort_unstable();
            left.iter_mut().for_each(|c| *c = 0);
            let (mut sq_l, mut sq_r) = (0u64, total_sq);
            for i in 0..n - 1 {
                let c = (self.buf[i] & 0xFFFF_FFFF) as usize;
                let right_c = counts[c] - left[c];
                sq_l += 2 * left[c] + 1;
                sq_r -= 2 * right_c - 1;
                left[c] += 1;
                let (a, b) = (key_value(self.buf[i]), key_value(self.buf[i + 1]));
                let nl = i + 1;
                if a == b || nl < min_leaf || n - nl < min_leaf {
                    continue;
                }
                let score = sq_l as f64 / nl as f64 + sq_r as f64 / (n - nl) as f64;
                if best.is_none_or(|(s, _, _)| score > s) {
                    let mut thr = a * 0.5 + b * 0.5;
                    if !(thr >= a && thr < b) {
                        thr = a;
                    }
                    best = Some((score, f, thr));
                }
            }
        }
        best.map(|(_, f, thr)| (f, thr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> TreeParams {
        TreeParams {
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: 2,
        }
    }

    #[test]
    fn fits_xor_exactly_and_validates() {
        // Column-major 2 x 4: the four corners of a square, XOR labels.
        let xt = [0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0];
        let y = [0, 1, 1, 0];
        let tree = grow(&xt, 4, &y, 2, vec![0, 1, 2, 3], &params(), &mut Rng::new(1));
        tree.validate(2).unwrap();
        assert_eq!(tree.depth(), 2);
        for (i, &label) in y.iter().enumerate() {
            let row = [xt[i], xt[4 + i]];
            let dist = tree.leaf_distribution(&row);
            assert_eq!(dist[label as usize], 1.0, "row {i}: {dist:?}");
        }
        assert!(tree.validate(1).is_err());
    }

    #[test]
    fn depth_limit_and_constant_features() {
        // Feature 0 constant, feature 1 separates; max_features 1 must still find feature 1.
        let xt = [3.0, 3.0, 3.0, 3.0, 0.0, 1.0, 2.0, 3.0];
        let y = [0, 0, 1, 1];
        let p = TreeParams {
            max_features: 1,
            ..params()
        };
        for seed in 0..8 {
            let t = grow(&xt, 4, &y, 2, vec![0, 1, 2, 3], &p, &mut Rng::new(seed));
            assert_eq!((t.n_nodes(), t.feature[0], t.threshold[0]), (3, 1, 1.5));
        }
        let stump = TreeParams {
            max_depth: Some(0),
            ..params()
        };
        let t = grow(&xt, 4, &y, 2, vec![0, 1, 2, 3], &stump, &mut Rng::new(0));
        assert_eq!(t.leaf_distribution(&[0.0, 0.0]), &[0.5, 0.5]);
    }

    #[test]
    fn sort_keys_keep_float_order() {
        let vals = [-f32::MAX, -2.5, -1e-30, -0.0, 0.0, 1e-30, 3.0, f32::MAX];
        for w in vals.windows(2) {
            assert!(sort_key(w[0]) < sort_key(w[1]), "{w:?}");
        }
        for v in vals {
            let back = key_value(((sort_key(v) as u64) << 32) | 7);
            assert_eq!(back.to_bits(), v.to_bits());
        }
    }

    #[test]
    fn malformed_trees_are_rejected() {
        let t = Tree {
            n_classes: 2,
            feature: vec![0, LEAF],
            threshold: vec![0.0, 0.0],
            left: vec![0, 0],
            right: vec![1, 0],
            leaf_values: vec![1.0, 0.0],
        };
        assert!(t.validate(1).is_err(), "a self-loop must be caught");
    }
}
