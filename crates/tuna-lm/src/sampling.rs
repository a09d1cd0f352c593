//! Choosing the next token from logits: greedy, or temperature sampling restricted by top-k and
//! top-p (nucleus), seeded.

use serde::{Deserialize, Serialize};
use tuna_core::Rng;

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// 0 picks the most likely token (greedy); above 0 divides the logits before sampling.
    pub temperature: f64,
    /// Sample among the `k` most likely tokens only.
    pub top_k: Option<usize>,
    /// Sample among the most likely tokens whose probabilities add up to `p`.
    pub top_p: Option<f64>,
    /// Seed of the sampling stream.
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 42,
        }
    }
}

impl Sampling {
    /// Checks the settings, with a message naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            ));
        }
        if self.top_k == Some(0) {
            return Err("top-k must be at least 1".into());
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(format!("top-p must be in (0, 1], got {p}"));
            }
        }
        Ok(())
    }
}

/// A seeded token chooser.
pub struct Sampler {
    cfg: Sampling,
    rng: Rng,
}

impl Sampler {
    /// A sampler whose stream is fixed by `cfg.seed` and `stream` (the row of a batch), so a
    /// prompt samples the same tokens alone or in a batch.
    pub fn new(cfg: &Sampling, stream: u64) -> Self {
        Self {
            cfg: cfg.clone(),
            rng: Rng::new(
                cfg.seed
                    .wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            ),
        }
    }

    /// The next token for `logits` (one row over the vocabulary).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.cfg.temperature <= 0.0 || self.cfg.top_k == Some(1) {
            return argmax(logits);
        }
        let t = self.cfg.temperature as f32;
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let k = self.cfg.top_k.unwrap_or(logits.len()).min(logits.len());
        // Partial sort: the k largest first, in descending order (ties by lower id).
        let cmp = |a: &u32, b: &u32| {
            logits[*b as usize]
                .total_cmp(&logits[*a as usize])
                .then(a.cmp(b))
        };
        if k < order.len() {
            order.select_nth_unstable_by(k - 1, cmp);
            order.truncate(k);
        }
        order.sort_by(cmp);
        let max = logits[order[0] as usize];
        let mut probs: Vec<f64> = order
            .iter()
            .map(|&i| (((logits[i as usize] - max) / t) as f64).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if let Some(top_p) = self.cfg.top_p {
            // Keep the smallest head of the ranking whose mass reaches top_p (at least one).
            let mut mass = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                mass += p;
                if mass >= top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
            order.truncate(keep);
        }
        let total: f64 = probs.iter().sum();
        let mut r = self.rng.next_f64() * total;
        for (i, p) in probs.iter().enumerate() {
            r -= p;
            if r < 0.0 {
                return order[i];
            }
        }
        order[order.len() - 1]
    }
}

/// Index of the largest value (the first on ties).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(temperature: f64, top_k: Option<usize>, top_p: Option<f64>) -> Sampling {
        Sampling {
            temperature,
            top_k,
            top_p,
            seed: 7,
        }
    }

    #[test]
    fn greedy_takes_the_largest() {
        let mut s = Sampler::new(&cfg(0.0, None, None), 0);
        assert_eq!(s.sample(&[0.1, 3.0, 2.9, -1.0]), 1);
    }

    #[test]
    fn top_k_and_top_p_restrict_the_choice() {
        let logits = [2.0, 1.9, 1.8, -5.0, 0.0];
        let mut s = Sampler::new(&cfg(1.0, Some(2), None), 0);
        for _ in 0..200 {
            assert!(s.sample(&logits) <= 1);
        }
        // p(0) ~ 0.37, p(0) + p(1) ~ 0.70: top-p 0.5 keeps two tokens.
        let mut s = Sampler::new(&cfg(1.0, None, Some(0.5)), 0);
        for _ in 0..200 {
            assert!(s.sample(&logits) <= 1);
        }
    }

    #[test]
    fn same_seed_same_tokens_and_frequencies_follow_probabilities() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = 1/4, 3/4
        let draw = |stream| {
            let mut s = Sampler::new(&cfg(1.0, None, None), stream);
            (0..4000).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(0), draw(0));
        assert_ne!(draw(0), draw(1));
        let ones = draw(0).iter().filter(|&&t| t == 1).count() as f64 / 4000.0;
        assert!((ones - 0.75).abs() < 0.03, "{ones}");
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(cfg(-1.0, None, None).validate().is_err());
        assert!(cfg(1.0, Some(0), None).validate().is_err());
        assert!(cfg(1.0, None, Some(1.5)).validate().is_err());
        assert!(cfg(0.7, Some(40), Some(0.9)).validate().is_ok());
    }
}
