//! Random forest classifier (Breiman 2001): CART trees ([`crate::tree`]) grown on bootstrap
//! samples with a random subset of `sqrt(cols)` features tried at each split; probabilities are
//! the mean of the trees' leaf class frequencies, as scikit-learn's `RandomForestClassifier`.
//!
//! Tree `t` draws its bootstrap sample and its features from `Rng::new(seed + t)` alone, and the
//! trees are grown on `RAYON_NUM_THREADS` (else all available) threads, so a model is identical
//! whatever the thread count.

use crate::error::{ClassicError, Result};
use crate::matrix::{check_training, Features};
use crate::par::{num_threads, par_map};
use crate::tree::{grow, Tree, TreeParams};
use crate::vecops::argmax;
use serde::{Deserialize, Serialize};
use tuna_core::Rng;

/// Settings of [`RandomForest::fit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestParams {
    /// Number of trees.
    pub n_trees: usize,
    /// Deepest a tree may grow; `None` grows until leaves are pure or too small to split.
    pub max_depth: Option<usize>,
    /// A node with fewer samples than this becomes a leaf.
    pub min_samples_split: usize,
    /// Each side of a split keeps at least this many samples.
    pub min_samples_leaf: usize,
    /// Features tried per split; `None` means `floor(sqrt(cols))`.
    pub max_features: Option<usize>,
    /// Tree `t` is grown from `seed + t`.
    pub seed: u64,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            n_trees: 100,
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: None,
            seed: 0,
        }
    }
}

/// A fitted random forest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomForest {
    /// Features per row.
    pub n_features: usize,
    /// Number of classes.
    pub n_classes: usize,
    /// The trees.
    pub trees: Vec<Tree>,
}

impl RandomForest {
    /// Fits on `x` with labels `y` in `0..n_classes`.
    pub fn fit(x: &Features, y: &[usize], n_classes: usize, params: &ForestParams) -> Result<Self> {
        check_training(x, y, n_classes)?;
        Self::fit_checked(x, y, n_classes, params)
    }

    /// [`RandomForest::fit`] on data that [`check_training`] has accepted.
    pub(crate) fn fit_checked(
        x: &Features,
        y: &[usize],
        n_classes: usize,
        params: &ForestParams,
    ) -> Result<Self> {
        let (rows, cols) = (x.rows, x.cols);
        let max_features = params
            .max_features
            .unwrap_or(((cols as f64).sqrt() as usize).max(1));
        if params.n_trees == 0 || params.min_samples_split < 2 || params.min_samples_leaf < 1 {
            return Err(ClassicError::Config(format!(
                "random forest needs n_trees >= 1, min_samples_split >= 2 and \
                 min_samples_leaf >= 1; got {}, {}, {}",
                params.n_trees, params.min_samples_split, params.min_samples_leaf
            )));
        }
        if !(1..=cols).contains(&max_features) {
            return Err(ClassicError::Config(format!(
                "max_features is {max_features}; it must be between 1 and the {cols} columns"
            )));
        }
        // Column-major copy: a split search reads one column at scattered rows.
        let mut xt = vec![0.0f32; rows * cols];
        for i in 0..rows {
            for (f, &v) in x.row(i).iter().enumerate() {
                xt[f * rows + i] = v;
            }
        }
        let y32: Vec<u32> = y.iter().map(|&l| l as u32).collect();
        let tree_params = TreeParams {
            max_depth: params.max_depth,
            min_samples_split: params.min_samples_split,
            min_samples_leaf: params.min_samples_leaf,
            max_features,
        };
        let trees = par_map(params.n_trees, num_threads(), |t| {
            let mut rng = Rng::new(params.seed.wrapping_add(t as u64));
            let sample: Vec<u32> = (0..rows).map(|_| rng.below(rows) as u32).collect();
            grow(&xt, rows, &y32, n_classes, sample, &tree_params, &mut rng)
        });
        tracing::debug!(
            trees = trees.len(),
            nodes = trees.iter().map(Tree::n_nodes).sum::<usize>(),
            "random forest grown"
        );
        Ok(RandomForest {
            n_features: cols,
            n_classes,
            trees,
        })
    }

    /// Mean over trees of the class frequencies in the leaf each row reaches.
    pub fn predict_proba(&self, x: &Features) -> Result<Vec<Vec<f32>>> {
        x.check_for_model(self.n_features)?;
        let scale = 1.0 / self.trees.len().max(1) as f64;
        Ok((0..x.rows)
            .map(|i| {
                let mut acc = vec![0.0f64; self.n_classes];
                for tree in &self.trees {
                    let dist = tree.leaf_distribution(x.row(i));
                    acc.iter_mut().zip(dist).for_each(|(a, &p)| *a += p as f64);
                }
                acc.iter().map(|a| (a * scale) as f32).collect()
            })
            .collect())
    }

    /// The most probable class of each row.
    pub fn predict(&self, x: &Features) -> Result<Vec<usize>> {
        Ok(self.predict_proba(x)?.iter().map(|p| argmax(p)).collect())
    }

    /// Checks a (loaded) forest: at least one tree, each well formed for these classes.
    pub fn validate(&self) -> Result<()> {
        if self.trees.is_empty() {
            return Err(ClassicError::Config("random forest has no trees".into()));
        }
        for (t, tree) in self.trees.iter().enumerate() {
            if tree.n_classes != self.n_classes {
                return Err(ClassicError::Config(format!(
                    "tree {t} has {} classes, the forest {}",
                    tree.n_classes, self.n_classes
                )));
            }
            tree.validate(self.n_features)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata;

    fn small(seed: u64) -> ForestParams {
        ForestParams {
            n_trees: 30,
            seed,
            ..ForestParams::default()
        }
    }

    #[test]
    fn learns_xor_and_blobs() {
        let (x, y) = testdata::xor(600, 5);
        let (train, test) = (Features::new(&x[..800], 400, 2).unwrap(), &x[800..]);
        let m = RandomForest::fit(&train, &y[..400], 2, &small(1)).unwrap();
        let pred = m.predict(&Features::new(test, 200, 2).unwrap()).unwrap();
        let acc = testdata::accuracy(&pred, &y[400..]);
        assert!(acc > 0.95, "held-out XOR accuracy {acc}");
        let (x, y) = testdata::blobs(200, 6, 3, 2);
        let f = Features::new(&x, 200, 6).unwrap();
        let m = RandomForest::fit(&f, &y, 3, &small(2)).unwrap();
        assert_eq!(testdata::accuracy(&m.predict(&f).unwrap(), &y), 1.0);
        let p = m.predict_proba(&f).unwrap();
        assert!(p.iter().all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5));
    }

    #[test]
    fn same_seed_same_forest_whatever_the_threads() {
        let (x, y) = testdata::xor(300, 8);
        let f = Features::new(&x, 300, 2).unwrap();
        let a = RandomForest::fit(&f, &y, 2, &small(3)).unwrap();
        a.validate().unwrap();
        // Growing sequentially gives the very same trees.
        let xt: Vec<f32> = (0..2)
            .flat_map(|c| (0..300).map(move |i| (i, c)))
            .map(|(i, c)| x[i * 2 + c])
            .collect();
        let y32: Vec<u32> = y.iter().map(|&l| l as u32).collect();
        let p = TreeParams {
            max_depth: None,
            min_samples_split: 2,
            min_samples_leaf: 1,
            max_features: 1,
        };
        let seq = par_map(30, 1, |t| {
            let mut rng = Rng::new(3 + t as u64);
            let sample: Vec<u32> = (0..300).map(|_| rng.below(300) as u32).collect();
            grow(&xt, 300, &y32, 2, sample, &p, &mut rng)
        });
        assert_eq!(a.trees, seq);
        assert_ne!(a, RandomForest::fit(&f, &y, 2, &small(4)).unwrap());
    }

    #[test]
    fn depth_limit_is_respected() {
        let (x, y) = testdata::xor(300, 9);
        let f = Features::new(&x, 300, 2).unwrap();
        let p = ForestParams {
            max_depth: Some(3),
            ..small(0)
        };
        let m = RandomForest::fit(&f, &y, 2, &p).unwrap();
        assert!(m.trees.iter().all(|t| t.depth() <= 3));
        let bad = ForestParams {
            n_trees: 0,
            ..small(0)
        };
        assert!(RandomForest::fit(&f, &y, 2, &bad).is_err());
    }
}
