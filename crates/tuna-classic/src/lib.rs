//! Classical classifiers on dense features, for tuna's feature-based method: a frozen
//! transformer embeds each example, and one of these models is fitted on the embeddings.
//!
//! - [`LogisticRegression`]: multinomial, L2 penalty with scikit-learn's `C`, fitted by L-BFGS
//!   ([`lbfgs`]); matches scikit-learn's `LogisticRegression` coefficients.
//! - [`LinearSvm`]: one-vs-rest squared-hinge linear SVM by dual coordinate descent, as
//!   LIBLINEAR / scikit-learn's `LinearSVC`.
//! - [`RandomForest`]: bagged CART trees with Gini and `sqrt(cols)` features per split.
//!
//! [`Classifier`] wraps all three behind one [`ClassifierConfig`], standardises features for the
//! linear models ([`Standardizer`]), can choose `C` on a validation set
//! ([`Classifier::fit_select`]), and saves to / loads from JSON. Everything is deterministic for a
//! given seed, including across thread counts (`RAYON_NUM_THREADS` caps the threads used).
//!
//! ```
//! use tuna_classic::{Classifier, ClassifierConfig, Features};
//! let x = [0.0f32, 0.1, 0.2, 1.0, 1.1, 1.2];
//! let y = [0, 0, 0, 1, 1, 1];
//! let train = Features::new(&x, 6, 1)?;
//! let model = Classifier::fit(&train, &y, 2, &ClassifierConfig::default())?;
//! assert_eq!(model.predict(&train)?, y);
//! # Ok::<(), tuna_classic::ClassicError>(())
//! ```

#![warn(missing_docs)]

pub mod c_search;
pub mod classifier;
pub mod config;
pub mod error;
pub mod forest;
pub mod lbfgs;
pub mod logreg;
pub mod matrix;
pub mod par;
pub mod svm;
pub mod tree;
mod vecops;

#[cfg(test)]
mod testdata;

pub use c_search::{edge_warning, C_RANGE};
pub use classifier::{accuracy, Classifier, Fitted};
pub use config::{ClassifierConfig, ClassifierKind, C_GRID, DEFAULT_C};
pub use error::{ClassicError, Result};
pub use forest::{ForestParams, RandomForest};
pub use logreg::{LogisticRegression, LogregParams};
pub use matrix::{check_training, Features, Standardizer};
pub use svm::{LinearSvm, SvmParams};
pub use tree::Tree;
