//! Errors reported by the scoring crate.

use std::fmt;

/// One problem found in a model configuration, located by a field path.
///
/// The path uses the configuration's JSON names, with indices in brackets:
/// `dimensions[2].weight`, `tiers[1].minScore`, `dimensions[0].params.field`.
/// A problem about a whole list (such as weights that do not sum to 100) has
/// the list's path (`dimensions`). The message is written for a person:
/// "weights must sum to 100, got 95".
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConfigError {
    /// Where the problem is, e.g. `dimensions[2].weight`; empty for the whole document.
    pub path: String,
    /// What is wrong, in plain English.
    pub message: String,
}

impl ConfigError {
    /// Builds an error at `path` with `message`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why the close-probability predictor could not be trained.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Occurs when the training rows do not hold exactly one value per
    /// feature for every example.
    #[error("training rows hold {values} values; {examples} examples of {features} features need {expected}", expected = examples * features)]
    RowLength {
        /// Values given.
        values: usize,
        /// Examples (labels) given.
        examples: usize,
        /// Features in the feature space.
        features: usize,
    },
    /// Occurs when a training option is out of range (a negative or non-finite
    /// regularisation strength, a prior outside (0, 1)).
    #[error("invalid training option {option}: {message}")]
    InvalidOption {
        /// The option's name, e.g. `l2`.
        option: &'static str,
        /// What is wrong with it.
        message: String,
    },
}
