//! The error type of `tuna-classic`: every message says which row, column or setting is wrong,
//! what was expected and what was found, e.g. `row 17, column 3: feature is NaN`.

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ClassicError>;

/// Errors raised while fitting, applying, saving or loading a classical classifier.
#[derive(Debug, thiserror::Error)]
pub enum ClassicError {
    /// Fitting was asked for with no training examples.
    #[error("the training set is empty; at least one example is needed to fit a classifier")]
    EmptyTrainingSet,
    /// The feature matrix has a different width from the one the model was fitted on.
    #[error(
        "feature width mismatch: the model was fitted on {expected} features per row, \
         these rows have {actual}; embed with the same model and pooling as for training"
    )]
    WidthMismatch {
        /// Features per row seen at fit time.
        expected: usize,
        /// Features per row given now.
        actual: usize,
    },
    /// A buffer or label list does not have the length its shape says.
    #[error("{what}: expected {expected} values, found {actual}")]
    LengthMismatch {
        /// What was being checked (`"feature buffer (rows x cols)"`, `"labels"`).
        what: &'static str,
        /// Length implied by the shape.
        expected: usize,
        /// Length actually given.
        actual: usize,
    },
    /// A label is not below the number of classes.
    #[error("row {row}: label {label} is out of range for {n_classes} classes (labels are 0..{n_classes})")]
    LabelOutOfRange {
        /// 0-based row of the offending example.
        row: usize,
        /// The label found.
        label: usize,
        /// Number of classes declared.
        n_classes: usize,
    },
    /// A feature is NaN or infinite.
    #[error("row {row}, column {col}: feature is {value}; features must be finite")]
    NonFinite {
        /// 0-based row.
        row: usize,
        /// 0-based column.
        col: usize,
        /// The offending value.
        value: f32,
    },
    /// A setting (C, number of trees, number of classes, ...) is not usable.
    #[error("{0}")]
    Config(String),
    /// Reading or writing a saved model failed.
    #[error(transparent)]
    Core(#[from] tuna_core::Error),
}

impl From<ClassicError> for tuna_core::Error {
    fn from(e: ClassicError) -> Self {
        match e {
            ClassicError::Core(inner) => inner,
            other => tuna_core::Error::Invalid(other.to_string()),
        }
    }
}

/// Checks a regularisation constant `C`: finite and positive.
pub(crate) fn check_c(c: f64) -> Result<()> {
    if c.is_finite() && c > 0.0 {
        Ok(())
    } else {
        Err(ClassicError::Config(format!(
            "C is {c}; it must be a positive number (e.g. 1.0; smaller means stronger regularisation)"
        )))
    }
}

/// Checks the arrays of a loaded linear model.
pub(crate) fn check_linear(
    n_classes: usize,
    n_coef: usize,
    coef: &[f64],
    n_intercept: usize,
    intercept: &[f64],
) -> Result<()> {
    if n_classes < 2 || n_coef == 0 || coef.len() != n_coef || intercept.len() != n_intercept {
        return Err(ClassicError::Config(format!(
            "malformed linear model: {n_classes} classes, {} weights (expected {n_coef}), \
             {} intercepts (expected {n_intercept})",
            coef.len(),
            intercept.len()
        )));
    }
    if coef.iter().chain(intercept).any(|v| !v.is_finite()) {
        return Err(ClassicError::Config(
            "malformed linear model: non-finite weights".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place() {
        let e = ClassicError::NonFinite {
            row: 17,
            col: 3,
            value: f32::NAN,
        };
        assert_eq!(
            e.to_string(),
            "row 17, column 3: feature is NaN; features must be finite"
        );
        let e = ClassicError::WidthMismatch {
            expected: 384,
            actual: 768,
        };
        assert!(e.to_string().contains("384") && e.to_string().contains("768"));
        let core: tuna_core::Error = ClassicError::EmptyTrainingSet.into();
        assert!(core.to_string().contains("empty"));
    }
}
