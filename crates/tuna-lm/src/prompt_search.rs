//! Hard prompt tuning: score candidate templates on a labelled dev set with in-context
//! classification and rank them by accuracy.

use serde::Serialize;

/// One template's result on the dev set.
#[derive(Debug, Clone, Serialize)]
pub struct Ranked {
    pub template: String,
    pub accuracy: f64,
    pub macro_f1: f64,
}

/// Sorts results best first: accuracy, then macro-F1, then the earlier template.
pub fn rank(mut results: Vec<(usize, Ranked)>) -> Vec<Ranked> {
    results.sort_by(|a, b| {
        b.1.accuracy
            .total_cmp(&a.1.accuracy)
            .then(b.1.macro_f1.total_cmp(&a.1.macro_f1))
            .then(a.0.cmp(&b.0))
    });
    results.into_iter().map(|(_, r)| r).collect()
}

/// The ranking as a Markdown table.
pub fn markdown(ranking: &[Ranked]) -> String {
    let mut s = String::from("| rank | template | accuracy | macro-F1 |\n|---:|---|---:|---:|\n");
    for (i, r) in ranking.iter().enumerate() {
        s.push_str(&format!(
            "| {} | `{}` | {:.2}% | {:.2}% |\n",
            i + 1,
            r.template.replace('\n', "\\n").replace('|', "\\|"),
            100.0 * r.accuracy,
            100.0 * r.macro_f1
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_accuracy_then_f1_then_order() {
        let r = |t: &str, a, f| Ranked {
            template: t.into(),
            accuracy: a,
            macro_f1: f,
        };
        let out = rank(vec![
            (0, r("a", 0.7, 0.6)),
            (1, r("b", 0.8, 0.5)),
            (2, r("c", 0.7, 0.7)),
            (3, r("d", 0.7, 0.6)),
        ]);
        let names: Vec<&str> = out.iter().map(|r| r.template.as_str()).collect();
        assert_eq!(names, vec!["b", "c", "a", "d"]);
        assert!(markdown(&out).contains("| 1 | `b` | 80.00% | 50.00% |"));
    }
}
