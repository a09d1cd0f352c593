//! Stratified train/validation/test splits and class-balanced subsets, both deterministic for a
//! given seed (they use [`tuna_core::Rng`], whose stream never changes).

use crate::DataError;
use std::fmt;
use std::str::FromStr;
use tuna_core::Rng;

/// Fractions of each class that go to train, validation and test; they sum to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitSpec {
    train: f64,
    val: f64,
    test: f64,
}

impl SplitSpec {
    /// Fractions that must each be `>= 0`, sum to 1 (within 1e-6), with `train > 0`.
    pub fn new(train: f64, val: f64, test: f64) -> Result<Self, DataError> {
        let parts = [train, val, test];
        if parts.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(DataError::Invalid(format!(
                "bad split {train}/{val}/{test}: every part must be a number >= 0"
            )));
        }
        if (parts.iter().sum::<f64>() - 1.0).abs() > 1e-6 {
            return Err(DataError::Invalid(format!(
                "bad split {train}/{val}/{test}: the fractions must sum to 1"
            )));
        }
        if train <= 0.0 {
            return Err(DataError::Invalid(format!(
                "bad split {train}/{val}/{test}: the train part must be above 0"
            )));
        }
        Ok(Self { train, val, test })
    }

    /// Fraction of each class for training.
    pub fn train(&self) -> f64 {
        self.train
    }

    /// Fraction of each class for validation.
    pub fn val(&self) -> f64 {
        self.val
    }

    /// Fraction of each class for testing.
    pub fn test(&self) -> f64 {
        self.test
    }
}

impl FromStr for SplitSpec {
    type Err = DataError;

    /// Parses `train/val/test` (or `train/val`, test 0) as percentages summing to 100
    /// (`80/10/10`) or fractions summing to 1 (`0.8/0.1/0.1`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            DataError::Invalid(format!(
                "bad split \"{s}\": {why}; write train/val/test as percentages (80/10/10) \
                 or fractions (0.8/0.1/0.1)"
            ))
        };
        let parts: Vec<f64> = s
            .split('/')
            .map(|p| p.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad("every part must be a number"))?;
        let [train, val, test] = match parts[..] {
            [a, b] => [a, b, 0.0],
            [a, b, c] => [a, b, c],
            _ => return Err(bad("expected 2 or 3 parts")),
        };
        if parts.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(bad("every part must be >= 0"));
        }
        let sum: f64 = parts.iter().sum();
        let scale = if (sum - 100.0).abs() < 1e-6 {
            100.0
        } else if (sum - 1.0).abs() < 1e-6 {
            1.0
        } else {
            return Err(bad(&format!("the parts sum to {sum}, not 100 or 1")));
        };
        if train <= 0.0 {
            return Err(bad("the train part must be above 0"));
        }
        Self::new(train / scale, val / scale, test / scale)
    }
}

impl fmt::Display for SplitSpec {
    /// Percentages, e.g. `80/10/10`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |x: f64| (x * 1e8).round() / 1e6;
        write!(
            f,
            "{}/{}/{}",
            pct(self.train),
            pct(self.val),
            pct(self.test)
        )
    }
}

/// Indices into a dataset for each part of a split, each list ascending.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Splits {
    /// Training examples.
    pub train: Vec<usize>,
    /// Validation examples.
    pub val: Vec<usize>,
    /// Test examples.
    pub test: Vec<usize>,
}

/// Splits example indices class by class: each class (label index) is shuffled with one
/// `Rng::new(seed)` stream, in class order; `round(n * val)` go to validation, `round(n * test)`
/// to test and the rest to training. A class with at least 3 examples gets at least one in each
/// non-zero part; every non-empty class keeps at least one training example.
pub fn stratified_split(labels: &[usize], spec: &SplitSpec, seed: u64) -> Splits {
    let mut rng = Rng::new(seed);
    let mut splits = Splits::default();
    for mut idx in by_class(labels) {
        rng.shuffle(&mut idx);
        let n = idx.len();
        let mut n_val = (n as f64 * spec.val).round() as usize;
        let mut n_test = (n as f64 * spec.test).round() as usize;
        if n >= 3 {
            if spec.val > 0.0 {
                n_val = n_val.max(1);
            }
            if spec.test > 0.0 {
                n_test = n_test.max(1);
            }
        }
        while n_val + n_test >= n && n_val + n_test > 0 {
            if n_test >= n_val {
                n_test -= 1;
            } else {
                n_val -= 1;
            }
        }
        splits.val.extend_from_slice(&idx[..n_val]);
        splits.test.extend_from_slice(&idx[n_val..n_val + n_test]);
        splits.train.extend_from_slice(&idx[n_val + n_test..]);
    }
    splits.train.sort_unstable();
    splits.val.sort_unstable();
    splits.test.sort_unstable();
    splits
}

/// A class-balanced subset: every class present is downsampled to `per_class` examples (or
/// kept whole if smaller), or, with `None`, to the size of the smallest class. Classes are
/// shuffled with one `Rng::new(seed)` stream, in class order; the result is ascending.
pub fn balanced_subset(labels: &[usize], per_class: Option<usize>, seed: u64) -> Vec<usize> {
    let classes = by_class(labels);
    let k = per_class.unwrap_or_else(|| classes.iter().map(Vec::len).min().unwrap_or(0));
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for mut idx in classes {
        rng.shuffle(&mut idx);
        out.extend_from_slice(&idx[..k.min(idx.len())]);
    }
    out.sort_unstable();
    out
}

/// A seeded subset of `n` examples drawn class by class in proportion to the classes' sizes
/// (largest remainder; ties go to the earlier class), so that a limited evaluation has the
/// label mix of the whole part rather than whatever the file order puts first. Each class is
/// shuffled with one `Rng::new(seed)` stream, in class order; the result is ascending. With
/// `n >= labels.len()` it is every index.
pub fn stratified_subset(labels: &[usize], n: usize, seed: u64) -> Vec<usize> {
    if n >= labels.len() {
        return (0..labels.len()).collect();
    }
    let classes = by_class(labels);
    let total = labels.len();
    let mut quota: Vec<usize> = classes.iter().map(|c| c.len() * n / total).collect();
    let mut order: Vec<usize> = (0..classes.len()).collect();
    // Largest remainder first: remainder of class c is (len_c * n) mod total.
    order.sort_by_key(|&c| std::cmp::Reverse((classes[c].len() * n) % total));
    let short = n - quota.iter().sum::<usize>();
    for &c in order.iter().take(short) {
        quota[c] += 1;
    }
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    for (mut idx, k) in classes.into_iter().zip(quota) {
        rng.shuffle(&mut idx);
        out.extend_from_slice(&idx[..k]);
    }
    out.sort_unstable();
    out
}

/// A seeded subset of `n` of the indices `0..len` (all of them when `n >= len`), ascending:
/// the unlabelled counterpart of [`stratified_subset`].
pub fn seeded_subset(len: usize, n: usize, seed: u64) -> Vec<usize> {
    stratified_subset(&vec![0; len], n, seed)
}

/// Example indices of each class that occurs, in class order.
fn by_class(labels: &[usize]) -> Vec<Vec<usize>> {
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut classes = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        classes[l].push(i);
    }
    classes.retain(|c| !c.is_empty());
    classes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{read_dataset, LabelMap, ReadOptions};
    use std::path::Path;

    #[test]
    fn parses_percentages_and_fractions() {
        let a: SplitSpec = "80/10/10".parse().unwrap();
        let b: SplitSpec = " 0.8 / 0.1 / 0.1 ".parse().unwrap();
        assert!((a.train() - b.train()).abs() < 1e-12 && (a.test() - 0.1).abs() < 1e-12);
        assert_eq!(a.to_string(), "80/10/10");
        let c: SplitSpec = "90/10".parse().unwrap();
        assert_eq!((c.val(), c.test()), (0.1, 0.0));
        for (bad, why) in [
            ("80/10", "sum to 90"),
            ("0/50/50", "train part must be above 0"),
            ("110/-10/0", ">= 0"),
            ("80/ten/10", "must be a number"),
            ("100", "2 or 3 parts"),
        ] {
            let e = bad.parse::<SplitSpec>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("80/10/10"), "{bad}: {e}");
        }
    }

    fn labels_with(counts: &[usize]) -> Vec<usize> {
        // Interleave classes so that indices of one class are not contiguous.
        let mut labels = Vec::new();
        let mut left = counts.to_vec();
        while left.iter().any(|&c| c > 0) {
            for (class, c) in left.iter_mut().enumerate() {
                if *c > 0 {
                    labels.push(class);
                    *c -= 1;
                }
            }
        }
        labels
    }

    #[test]
    fn stratified_proportions_disjoint_and_deterministic() {
        let counts = [100, 37, 9, 3, 1];
        let labels = labels_with(&counts);
        let spec: SplitSpec = "80/10/10".parse().unwrap();
        let s = stratified_split(&labels, &spec, 42);
        assert_eq!(s, stratified_split(&labels, &spec, 42));
        assert_ne!(s, stratified_split(&labels, &spec, 43));
        let mut all: Vec<usize> = [&s.train[..], &s.val[..], &s.test[..]].concat();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..labels.len()).collect::<Vec<_>>(),
            "disjoint and covering"
        );
        for part in [&s.train, &s.val, &s.test] {
            assert!(part.windows(2).all(|w| w[0] < w[1]), "ascending");
        }
        for (class, &n) in counts.iter().enumerate() {
            let count = |part: &[usize]| part.iter().filter(|&&i| labels[i] == class).count();
            let (tr, va, te) = (count(&s.train), count(&s.val), count(&s.test));
            if n >= 9 {
                for (got, frac) in [(tr, 0.8), (va, 0.1), (te, 0.1)] {
                    assert!((got as f64 - n as f64 * frac).abs() <= 1.0, "class {class}");
                }
            }
            match n {
                3 => assert_eq!((tr, va, te), (1, 1, 1)),
                1 => assert_eq!((tr, va, te), (1, 0, 0)),
                _ => {}
            }
        }
    }

    #[test]
    fn zero_parts_stay_empty() {
        let labels = labels_with(&[10, 10]);
        let s = stratified_split(&labels, &"80/20/0".parse().unwrap(), 1);
        assert_eq!((s.train.len(), s.val.len(), s.test.len()), (16, 4, 0));
        assert_eq!(
            stratified_split(&[], &"80/20".parse().unwrap(), 1),
            Splits::default()
        );
    }

    #[test]
    fn balanced_subsets() {
        let labels = labels_with(&[10, 4, 7]);
        let sub = balanced_subset(&labels, None, 3);
        assert_eq!(sub.len(), 12);
        assert_eq!(sub, balanced_subset(&labels, None, 3));
        let sub = balanced_subset(&labels, Some(5), 3);
        let per: Vec<usize> = (0..3)
            .map(|c| sub.iter().filter(|&&i| labels[i] == c).count())
            .collect();
        assert_eq!(per, [5, 4, 5]);
        assert!(balanced_subset(&[], None, 0).is_empty());
    }

    #[test]
    fn stratified_subsets_keep_the_label_mix_whatever_the_file_order() {
        // 300 rows sorted by class (200 of class 0 first, then 100 of class 1): the first
        // 150 rows were all class 0.
        let labels: Vec<usize> = (0..300).map(|i| usize::from(i >= 200)).collect();
        let sub = stratified_subset(&labels, 150, 7);
        assert_eq!(sub.len(), 150);
        let ones = sub.iter().filter(|&&i| labels[i] == 1).count();
        assert_eq!(ones, 50, "one third, as in the whole part");
        assert!(sub.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sub, stratified_subset(&labels, 150, 7));
        assert_ne!(sub, stratified_subset(&labels, 150, 8));
        // Remainders: 3 classes of 5, 3, 2 rows, 5 drawn -> 2.5, 1.5, 1.0 -> 3, 1, 1.
        let l = labels_with(&[5, 3, 2]);
        let per = |sub: &[usize]| {
            (0..3)
                .map(|c| sub.iter().filter(|&&i| l[i] == c).count())
                .collect::<Vec<_>>()
        };
        assert_eq!(per(&stratified_subset(&l, 5, 1)), [3, 1, 1]);
        assert_eq!(stratified_subset(&l, 99, 1), (0..10).collect::<Vec<_>>());
        assert_eq!(seeded_subset(10, 3, 1).len(), 3);
    }

    #[test]
    fn sms_spam_balanced_subset_is_747_each() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/data/sms_spam/SMSSpamCollection");
        let ds = read_dataset(&path, &ReadOptions::default()).unwrap();
        let map = LabelMap::from_dataset(&ds).unwrap();
        let labels = map.encode(&ds, "train").unwrap();
        let sub = balanced_subset(&labels, None, 0);
        let spam = map.index("spam").unwrap();
        assert_eq!(sub.len(), 1494);
        assert_eq!(sub.iter().filter(|&&i| labels[i] == spam).count(), 747);
        let s = stratified_split(&labels, &"80/10/10".parse().unwrap(), 0);
        let spam_val = s.val.iter().filter(|&&i| labels[i] == spam).count();
        assert_eq!((s.val.len(), spam_val), (558, 75), "483 ham + 75 spam");
    }
}
