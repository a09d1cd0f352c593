//! Choosing `C` on a validation set: the starting grid ([`C_GRID`]), widened by factors of 10
//! while the best value sits at an edge of what was tried and beats its neighbour there, up to
//! [`C_RANGE`]; and the note for a choice that is still at an edge.

use crate::config::C_GRID;

/// The smallest and largest `C` the search widens to.
pub const C_RANGE: (f64, f64) = (1e-4, 1e4);

/// The best `(C, accuracy)` of `scores`: the highest accuracy, ties to the smaller `C`.
pub fn best_c(scores: &[(f64, f64)]) -> Option<(f64, f64)> {
    scores
        .iter()
        .copied()
        .fold(None, |best, (c, acc)| match best {
            Some((bc, bacc)) if bacc > acc || (bacc == acc && bc <= c) => Some((bc, bacc)),
            _ => Some((c, acc)),
        })
}

/// Where the best of `scores` sits among the values tried: `Some(-1)` at the small edge and
/// `Some(1)` at the large edge when it beats its neighbour, else `None` (inside, or tied).
fn edge(scores: &[(f64, f64)]) -> Option<i8> {
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (c, acc) = best_c(&sorted)?;
    let n = sorted.len();
    if n < 2 {
        return None;
    }
    if c == sorted[0].0 && acc > sorted[1].1 {
        Some(-1)
    } else if c == sorted[n - 1].0 && acc > sorted[n - 2].1 {
        Some(1)
    } else {
        None
    }
}

/// The next `C` to try after `scores` (starting with [`C_GRID`]): one step of 10 past an edge
/// where the best sits, within [`C_RANGE`]; `None` when the search is done.
pub fn next_c(scores: &[(f64, f64)]) -> Option<f64> {
    if let Some(&c) = C_GRID.iter().find(|c| !scores.iter().any(|s| s.0 == **c)) {
        return Some(c);
    }
    let (c, _) = best_c(scores)?;
    let next = match edge(scores)? {
        -1 => c / 10.0,
        _ => c * 10.0,
    };
    (next >= C_RANGE.0 * 0.999 && next <= C_RANGE.1 * 1.001).then_some(next)
}

/// A warning when the chosen `C` is still at an edge of the values tried and beats its
/// neighbour there: a better value may lie beyond.
pub fn edge_warning(scores: &[(f64, f64)]) -> Option<String> {
    let side = edge(scores)?;
    let (c, acc) = best_c(scores)?;
    let (lo, hi) = scores
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), s| (l.min(s.0), h.max(s.0)));
    let way = if side < 0 { "smaller" } else { "larger" };
    Some(format!(
        "C = {c} (validation accuracy {:.2}%) is at the edge of the values tried ({lo} to {hi}): \
         a {way} C might do better; give --c to try one",
        100.0 * acc
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The search with a validation accuracy that is a function of C.
    fn search(acc: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        let mut scores = Vec::new();
        while let Some(c) = next_c(&scores) {
            scores.push((c, acc(c)));
        }
        scores
    }

    #[test]
    fn the_grid_widens_past_an_edge_that_wins() {
        // Accuracy rising with C up to 1000: the grid's 100 was an edge choice before.
        let s = search(|c| 0.5 + 0.1 * c.log10().min(3.0));
        let cs: Vec<f64> = s.iter().map(|x| x.0).collect();
        assert_eq!(cs, [0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0]);
        assert_eq!(best_c(&s), Some((1000.0, 0.8)));
        assert_eq!(
            edge_warning(&s),
            None,
            "1000 beats 100 and ties 10000: inside"
        );
        // Falling with C: widens down to the range's end and warns there.
        let s = search(|c| 0.9 - 0.01 * c.log10());
        assert_eq!(best_c(&s).unwrap().0, 1e-4);
        let w = edge_warning(&s).unwrap();
        assert!(w.contains("C = 0.0001") && w.contains("a smaller C"), "{w}");
    }

    #[test]
    fn ties_go_to_the_smaller_c_and_do_not_widen() {
        let s = search(|_| 1.0);
        assert_eq!(s.len(), C_GRID.len());
        assert_eq!(best_c(&s), Some((0.01, 1.0)));
        assert_eq!(edge_warning(&s), None);
    }
}
