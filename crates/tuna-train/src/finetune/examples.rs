//! The tokenised labelled examples of one part of the data, with the frozen states a method
//! that starts past the input computes once for them.

use candle_core::Tensor;

/// One labelled example, tokenised.
#[derive(Debug, Clone)]
pub struct Example {
    pub ids: Vec<u32>,
    pub label: usize,
}

/// A part of the data (train, validation, test), with the frozen states when the method
/// starts past the input.
pub struct PartData {
    pub examples: Vec<Example>,
    pub(crate) states: Option<Vec<Tensor>>,
}

impl PartData {
    pub fn new(examples: Vec<Example>) -> Self {
        Self {
            examples,
            states: None,
        }
    }

    pub(crate) fn labels(&self) -> Vec<usize> {
        self.examples.iter().map(|e| e.label).collect()
    }
}
