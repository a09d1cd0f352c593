//! Texts shared between the parts of a task: an exact duplicate of a training text in the test
//! part is a leak that makes the test score look better than it is.

use std::collections::HashSet;

/// How many texts of `other` occur, exactly (after the readers' trimming), in `reference`.
pub fn shared_texts(reference: &[&str], other: &[&str]) -> usize {
    let seen: HashSet<&str> = reference.iter().copied().collect();
    other.iter().filter(|t| seen.contains(*t)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_row_of_the_other_part() {
        assert_eq!(shared_texts(&["a", "b"], &["b", "c", "b"]), 2);
        assert_eq!(shared_texts(&[], &["x"]), 0);
        assert_eq!(shared_texts(&["A"], &["a"]), 0, "exact: case matters");
    }
}
