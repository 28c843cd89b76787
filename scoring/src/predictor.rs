//! The learned close-probability predictor.
//!
//! **Model.** A blend of two models over binned features: gradient-boosted
//! trees ([`boost`]), with shrinkage, an L2 penalty on leaf values and
//! early stopping, and naive Bayes (each feature's smoothed log-likelihood
//! ratio of won against lost, per bin). The trees learn interactions and
//! follow drift (recency weighting); naive Bayes estimates each feature's
//! effect on its own, over all history, a low-variance model that holds up
//! when the mix of leads shifts. Training is time-aware: the most recent
//! fifth of the closed leads is held out, candidate models (additive
//! depth-1 trees, the analogue of a logistic regression over binned
//! features, and depth-3 trees that learn interactions; with and without
//! recency weighting of the rows; naive Bayes lightly or heavily smoothed)
//! are trained on the older leads and judged on the held-out recent ones,
//! never on a random split of the future into the past. A candidate must
//! beat a simpler one by more than the held-out slice's noise (one
//! standard error of the paired per-lead log-losses) to be chosen. The
//! weights of the blend and its offset are fitted on the held-out slice
//! (stacking, which calibrates it too); the chosen models are refitted on
//! every lead, the recent ones included, and the offset set again so the
//! refit's mean probability on the recent slice is the blend's. Its
//! out-of-sample AUC, Brier score and reliability table are kept in
//! [`TrainingMetadata::validation`].
//!
//! It is trained per tenant from closed leads (won = 1, lost = 0), and per
//! team as a correction of the tenant's model ([`Predictor::train_team`]),
//! shrunk towards it, so a team with few closed leads gets nearly the
//! tenant's model and one with many gets its own.
//!
//! **Little data.** The base rate carries a prior: `prior_strength`
//! pseudo-leads at the `prior` close rate. With no closed leads the predictor
//! answers the prior; as leads accumulate the data takes over, and trees are
//! grown only once there are enough closed leads of each outcome to hold
//! some out. One class only (all won or all lost) gives finite, sane
//! probabilities, never NaN.
//!
//! **Leakage.** Features are field values and inbound signal counts only; the
//! stage, the close date and the deal's final state are never features. Build
//! a closed lead's training facts from what was known before it closed (for
//! activities: [`crate::ActivityState::from_activities`] over the activities
//! before the close), and leave out fields filled in at closing
//! ([`FeatureSpace::new`] takes the field list).
//!
//! **Features.** One column per field: RATING and NUMBER fields as their
//! value, BOOLEAN fields as 0/1, inbound signals as `ln(1 + count)`, and
//! CATEGORY fields as the index of their option, spelling normalised
//! (`Google`, `google ` and `GOOGLE` are one option). A missing value stays
//! missing (NaN) and gets a bin of its own, so the trees learn what it
//! means instead of it being imputed. Numbers are binned at their quantiles,
//! so a heavy tail or a scale changes nothing; rare options are pooled.
//!
//! Version 1 predictors (an L2 logistic regression over one-hot and
//! standardised features) still load and predict as they did.

use serde::{Deserialize, Serialize};

use crate::UnixSeconds;
use crate::error::TrainError;
use crate::evaluate::ReliabilityBin;
use crate::facts::LeadFacts;
use crate::model::{Catalog, Direction, FieldDef, FieldType};

pub mod boost;

use boost::{Binned, Binning, Params, Tree, sigmoid, softplus};

/// One model input, derived from a lead field or a signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Feature {
    /// A RATING value (1–5).
    Rating {
        /// Field key.
        field: String,
    },
    /// A NUMBER value as `sign(x)·ln(1+|x|)`.
    Number {
        /// Field key.
        field: String,
    },
    /// 1 when the BOOLEAN field is true.
    Boolean {
        /// Field key.
        field: String,
    },
    /// 1 when the field has no value.
    Missing {
        /// Field key.
        field: String,
    },
    /// 1 when the CATEGORY field equals `option`.
    Category {
        /// Field key.
        field: String,
        /// The option.
        option: String,
    },
    /// A CATEGORY field as the index of its value among `levels` (the
    /// options, spelling normalised, sorted); `levels.len()` for a value
    /// that is not one of them, NaN when missing.
    Level {
        /// Field key.
        field: String,
        /// The normalised options.
        levels: Vec<String>,
    },
    /// `ln(1 + occurrences)` of an inbound signal.
    SignalCount {
        /// Signal key.
        signal: String,
    },
}

impl Feature {
    /// A readable name: `budget`, `source=referral`, `budget (missing)`,
    /// `signal:inbound_inquiry`.
    pub fn name(&self) -> String {
        match self {
            Feature::Rating { field }
            | Feature::Number { field }
            | Feature::Boolean { field }
            | Feature::Level { field, .. } => field.clone(),
            Feature::Missing { field } => format!("{field} (missing)"),
            Feature::Category { field, option } => format!("{field}={option}"),
            Feature::SignalCount { signal } => format!("signal:{signal}"),
        }
    }

    /// The raw (unstandardised) value for `facts`; NaN for a missing value
    /// that the training mean replaces.
    fn value(&self, facts: &LeadFacts) -> f64 {
        match self {
            Feature::Rating { field } => facts
                .attribute(field)
                .and_then(|v| v.as_number())
                .unwrap_or(f64::NAN),
            Feature::Number { field } => facts
                .attribute(field)
                .and_then(|v| v.as_number())
                .map_or(f64::NAN, |x| x.signum() * x.abs().ln_1p()),
            Feature::Boolean { field } => facts
                .attribute(field)
                .and_then(|v| v.as_bool())
                .map_or(f64::NAN, |b| f64::from(u8::from(b))),
            Feature::Missing { field } => f64::from(u8::from(facts.attribute(field).is_none())),
            Feature::Category { field, option } => f64::from(u8::from(
                facts.attribute(field).and_then(|v| v.as_text()) == Some(option.as_str()),
            )),
            Feature::Level { field, levels } => match facts.attribute(field) {
                Some(v) => match v.as_text().map(normalise_option) {
                    Some(text) if text.is_empty() => f64::NAN,
                    Some(text) => levels
                        .binary_search_by(|l| l.as_str().cmp(&text))
                        .map_or(levels.len() as f64, |k| k as f64),
                    None => levels.len() as f64,
                },
                None => f64::NAN,
            },
            Feature::SignalCount { signal } => facts
                .activity
                .signals
                .get(signal)
                .map_or(0.0, |a| (a.count as f64).ln_1p()),
        }
    }
}

/// The features a predictor uses, in column order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpace {
    /// The features.
    pub features: Vec<Feature>,
}

impl FeatureSpace {
    /// Features for `fields` (TEXT and DATE fields are skipped) and the inbound
    /// `signals` given by key: one column per field or signal, a CATEGORY
    /// field as its normalised option's index ([`Feature::Level`]).
    pub fn new(fields: &[FieldDef], signals: &[String]) -> Self {
        let mut features = Vec::new();
        for f in fields {
            let field = f.key.clone();
            match f.field_type {
                FieldType::Rating => features.push(Feature::Rating { field }),
                FieldType::Number => features.push(Feature::Number { field }),
                FieldType::Boolean => features.push(Feature::Boolean { field }),
                FieldType::Category => {
                    let mut levels: Vec<String> = f
                        .options
                        .iter()
                        .map(|o| normalise_option(o).into_owned())
                        .filter(|o| !o.is_empty())
                        .collect();
                    levels.sort_unstable();
                    levels.dedup();
                    features.push(Feature::Level { field, levels });
                }
                // A date means something only against the time it is read
                // at, which a trained weight cannot hold.
                FieldType::Text | FieldType::Date => {}
            }
        }
        features.extend(
            signals
                .iter()
                .map(|s| Feature::SignalCount { signal: s.clone() }),
        );
        Self { features }
    }

    /// The layout of version 1 predictors, for a linear model: a CATEGORY
    /// field one-hot per option, and a "missing" indicator beside every
    /// other field.
    pub fn one_hot(fields: &[FieldDef], signals: &[String]) -> Self {
        let mut features = Vec::new();
        for f in fields {
            let field = f.key.clone();
            match f.field_type {
                FieldType::Rating => {
                    features.push(Feature::Rating {
                        field: field.clone(),
                    });
                    features.push(Feature::Missing { field });
                }
                FieldType::Number => {
                    features.push(Feature::Number {
                        field: field.clone(),
                    });
                    features.push(Feature::Missing { field });
                }
                FieldType::Boolean => {
                    features.push(Feature::Boolean {
                        field: field.clone(),
                    });
                    features.push(Feature::Missing { field });
                }
                FieldType::Category => {
                    features.extend(f.options.iter().map(|o| Feature::Category {
                        field: field.clone(),
                        option: o.clone(),
                    }));
                }
                // A date means something only against the time it is read
                // at, which a trained weight cannot hold.
                FieldType::Text | FieldType::Date => {}
            }
        }
        features.extend(
            signals
                .iter()
                .map(|s| Feature::SignalCount { signal: s.clone() }),
        );
        Self { features }
    }

    /// Every non-TEXT field and every inbound, non-retired signal of `catalog`.
    pub fn from_catalog(catalog: &Catalog) -> Self {
        let signals: Vec<String> = catalog
            .signals
            .iter()
            .filter(|s| s.direction == Direction::Inbound && !s.retired)
            .map(|s| s.key.clone())
            .collect();
        Self::new(&catalog.fields, &signals)
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// Whether there are no features.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The columns of `rows` (`n` rows of this space) worth training on,
    /// at most `max` of them: every field value and signal, and the
    /// category options taken by at least `min_count` rows, the most common
    /// first. An option left out is pooled with the field's other rare
    /// options as "none of the kept ones", the baseline every one-hot
    /// column is measured against.
    ///
    /// Training is cubic in the number of columns, so a tenant with many
    /// fields of hundreds of options must not get a column for each: 4,000
    /// took over two minutes.
    pub fn kept_columns(&self, rows: &[f64], n: usize, max: usize, min_count: usize) -> Vec<usize> {
        let p = self.len();
        let mut taken = vec![0usize; p];
        for row in rows.chunks_exact(p.max(1)).take(n) {
            for (count, value) in taken.iter_mut().zip(row) {
                *count += usize::from(*value == 1.0);
            }
        }
        let (mut kept, mut options): (Vec<usize>, Vec<usize>) =
            (0..p).partition(|i| !matches!(self.features[*i], Feature::Category { .. }));
        options.retain(|i| taken[*i] >= min_count);
        // The most common options first; ties in column order, so the
        // same data keeps the same columns.
        options.sort_by(|a, b| taken[*b].cmp(&taken[*a]).then(a.cmp(b)));
        kept.truncate(max);
        options.truncate(max.saturating_sub(kept.len()));
        kept.extend(options);
        kept.sort_unstable();
        kept
    }

    /// The space of the columns `kept` (from [`FeatureSpace::kept_columns`]).
    #[must_use]
    pub fn select(&self, kept: &[usize]) -> Self {
        Self {
            features: kept
                .iter()
                .filter_map(|i| self.features.get(*i).cloned())
                .collect(),
        }
    }

    /// `rows` of this space cut down to the columns `kept`.
    pub fn project(&self, rows: &[f64], kept: &[usize]) -> Vec<f64> {
        let p = self.len().max(1);
        let mut out = Vec::with_capacity(rows.len() / p * kept.len());
        for row in rows.chunks_exact(p) {
            out.extend(kept.iter().filter_map(|i| row.get(*i)));
        }
        out
    }

    /// The raw feature row of `facts` (NaN where a value is missing), in
    /// feature order, appended to `row`.
    pub fn encode_into(&self, facts: &LeadFacts, row: &mut Vec<f64>) {
        row.extend(self.features.iter().map(|f| f.value(facts)));
    }

    /// The raw feature row of `facts`.
    pub fn encode(&self, facts: &LeadFacts) -> Vec<f64> {
        let mut row = Vec::with_capacity(self.len());
        self.encode_into(facts, &mut row);
        row
    }
}

/// A category option's spelling as compared: trimmed, lower case, runs of
/// white space and underscores as one space. Borrows when already so.
pub fn normalise_option(option: &str) -> std::borrow::Cow<'_, str> {
    let trimmed = option.trim();
    let clean = !trimmed
        .chars()
        .any(|c| c.is_uppercase() || c == '_' || (c.is_whitespace() && c != ' '))
        && !trimmed.contains("  ");
    if clean {
        return std::borrow::Cow::Borrowed(trimmed);
    }
    let mut out = String::with_capacity(trimmed.len());
    let mut space = false;
    for c in trimmed.chars() {
        if c.is_whitespace() || c == '_' {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.extend(c.to_lowercase());
    }
    std::borrow::Cow::Owned(out)
}

/// Which model [`Predictor::train_rows`] fits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Family {
    /// Gradient-boosted trees over binned features, chosen and calibrated
    /// on the most recent closed leads (the default).
    #[default]
    Boosted,
    /// The version 1 model: an L2 logistic regression over standardised
    /// features, for a [`FeatureSpace::one_hot`] space. Kept as a baseline.
    Linear,
}

/// Training options. Defaults: `l2` 1, `prior` 0.2, `prior_strength` 10,
/// `team_strength` 50, `max_iterations` 50, `family` boosted, `max_trees`
/// 400, `validation_fraction` 0.2. Stored options lacking a field take its
/// default.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrainOptions {
    /// L2 penalty on leaf values in units of hessian (about a quarter of a
    /// closed lead each), or on the standardised coefficients of the linear
    /// family (`l2/2 · Σβ²`); larger shrinks more. Must be ≥ 0.
    pub l2: f64,
    /// Close rate (0–1, exclusive) assumed before any data.
    pub prior: f64,
    /// How many closed leads the prior is worth; must be ≥ 0.
    pub prior_strength: f64,
    /// For [`Predictor::train_team`]: how strongly a team's model is pulled
    /// towards the tenant's (a penalty like `l2` on its corrections); must
    /// be ≥ 0.
    pub team_strength: f64,
    /// Newton iterations at most (the linear family and the calibration).
    pub max_iterations: u32,
    /// The model fitted.
    pub family: Family,
    /// Most trees; validation usually stops well before.
    pub max_trees: u32,
    /// Share of the closed leads, the most recent, held out to choose the
    /// model, stop the boosting and calibrate; in (0, 0.5].
    pub validation_fraction: f64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            l2: 1.0,
            prior: 0.2,
            prior_strength: 10.0,
            team_strength: 50.0,
            max_iterations: 50,
            family: Family::Boosted,
            max_trees: 400,
            validation_fraction: 0.2,
        }
    }
}

impl TrainOptions {
    fn check(&self) -> Result<(), TrainError> {
        let bad = |option: &'static str, message: &str| {
            Err(TrainError::InvalidOption {
                option,
                message: message.into(),
            })
        };
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            return bad("l2", "must be a finite number ≥ 0");
        }
        if !(self.prior > 0.0 && self.prior < 1.0) {
            return bad("prior", "must be strictly between 0 and 1");
        }
        if !(self.prior_strength.is_finite() && self.prior_strength >= 0.0) {
            return bad("priorStrength", "must be a finite number ≥ 0");
        }
        if !(self.team_strength.is_finite() && self.team_strength >= 0.0) {
            return bad("teamStrength", "must be a finite number ≥ 0");
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction <= 0.5) {
            return bad("validationFraction", "must be in (0, 0.5]");
        }
        Ok(())
    }
}

/// How the model did on the held-out most recent closed leads, before they
/// were added to its training: out of sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Validation {
    /// Held-out closed leads.
    pub rows: usize,
    /// Of which won.
    pub won: usize,
    /// ROC AUC of the calibrated probabilities, or None with one class.
    pub auc: Option<f64>,
    /// Brier score of the calibrated probabilities (0 best, 0.25 a coin).
    pub brier: Option<f64>,
    /// Mean log-loss of the calibrated probabilities.
    pub log_loss: f64,
    /// Predicted against observed won rate in 10 bins of probability.
    pub reliability: Vec<ReliabilityBin>,
    /// Depth of the trees chosen (1: additive).
    pub depth: u32,
    /// Trees the early stopping kept.
    pub trees: usize,
    /// Half-life of the recency weighting chosen, in the unit of the close
    /// times (seconds), or None for equal weights.
    pub recency_half_life: Option<f64>,
    /// Weight of the trees' log-odds in the blend fitted on these leads
    /// (with the offset, their Platt calibration).
    pub calibration_slope: f64,
    /// Weight of the naive Bayes log-odds in that blend; 0: trees alone.
    pub naive_bayes_weight: f64,
}

/// What a predictor was trained on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainingMetadata {
    /// Closed leads used.
    pub rows: usize,
    /// Of which won.
    pub won: usize,
    /// Of which lost.
    pub lost: usize,
    /// When it was trained, Unix seconds (passed in by the caller).
    pub trained_at: UnixSeconds,
    /// Newton iterations run (linear family), or trees grown.
    pub iterations: u32,
    /// Whether the fit converged (linear: step below 1e-8; boosted: early
    /// stopping ended it before `max_trees`).
    pub converged: bool,
    /// Brier score (0 best, 0.25 a coin): out of sample, on the held-out
    /// recent leads, when there were enough to hold out (see
    /// `validation`); else on the training leads. None without rows.
    pub brier: Option<f64>,
    /// ROC AUC, out of sample like `brier`, or None with one class.
    pub auc: Option<f64>,
    /// The options used.
    pub options: TrainOptions,
    /// Whether it was shrunk towards a tenant model (a team's predictor).
    pub shrunk_to_parent: bool,
    /// Out-of-sample figures on the held-out recent leads; None when there
    /// were too few closed leads of either outcome to hold any out.
    #[serde(default)]
    pub validation: Option<Validation>,
}

/// A feature's push on one lead's probability, for explanations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureEffect {
    /// What pushed, readably: `budget`, `source=referral`, `budget (missing)`.
    pub feature: String,
    /// The lead's raw value (a category: its option's index; 0 when
    /// missing). For a version 1 model a missing value shows the mean.
    pub value: f64,
    /// Change in log-odds against an average lead; positive pushes the
    /// probability up.
    pub log_odds: f64,
}

/// Platt scaling of the model's log-odds: `slope · z + offset`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Calibration {
    /// Multiplies the log-odds.
    pub slope: f64,
    /// Added after.
    pub offset: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Self {
            slope: 1.0,
            offset: 0.0,
        }
    }
}

/// A trained close-probability model; serialises to JSON for storage.
///
/// The log-odds of a lead are `calibration.slope · (intercept + linear +
/// trees + tables) + calibration.offset`, where `linear` is the version 1
/// logistic regression (empty coefficients in a boosted model), `trees` the
/// sum of the trees' leaves over the lead's bins and `tables` the sum of
/// each feature's table entry for its bin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Predictor {
    /// Format version: 2 (1: a logistic regression only).
    pub version: u32,
    /// Features, in column order.
    pub space: FeatureSpace,
    /// Linear model: training mean of each raw feature (missing values).
    #[serde(default)]
    pub means: Vec<f64>,
    /// Linear model: training standard deviation of each raw feature.
    #[serde(default)]
    pub scales: Vec<f64>,
    /// Linear model: coefficient per standardised feature (empty: none).
    #[serde(default)]
    pub coefficients: Vec<f64>,
    /// Log-odds of an average lead, before calibration.
    pub intercept: f64,
    /// Bins of each feature, for the trees (empty: no trees).
    #[serde(default)]
    pub bins: Vec<Binning>,
    /// The boosted trees.
    #[serde(default)]
    pub trees: Vec<Tree>,
    /// Additive log-odds of each feature's bins (`tables[j][bin]`), the
    /// naive Bayes part of the blend, already weighted; empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<Vec<f64>>,
    /// Calibration of the log-odds.
    #[serde(default)]
    pub calibration: Calibration,
    /// Training metadata.
    pub metadata: TrainingMetadata,
}

/// A closed lead for training: its raw feature row (see
/// [`FeatureSpace::encode`]) and whether it was won.
#[derive(Clone, Copy, Debug)]
pub struct Example<'a> {
    /// Raw feature values, in the feature space's order.
    pub row: &'a [f64],
    /// Won (true) or lost (false).
    pub won: bool,
}

/// Fewest closed leads of each outcome, on each side of the split, for a
/// validation slice to be held out (and trees to be chosen on it).
const MIN_PER_OUTCOME_HELD_OUT: usize = 5;

impl Predictor {
    /// Trains on closed leads' facts: `closed` pairs each lead's facts (as they
    /// were before closing) with whether it was won; the slice is taken as
    /// in the order the leads closed, oldest first.
    ///
    /// # Errors
    ///
    /// [`TrainError::InvalidOption`] for out-of-range options.
    pub fn train(
        space: FeatureSpace,
        closed: &[(LeadFacts, bool)],
        options: TrainOptions,
        trained_at: UnixSeconds,
    ) -> Result<Self, TrainError> {
        let p = space.len();
        let mut rows = Vec::with_capacity(closed.len() * p);
        for (f, _) in closed {
            space.encode_into(f, &mut rows);
        }
        let labels: Vec<bool> = closed.iter().map(|(_, w)| *w).collect();
        let times: Vec<UnixSeconds> = (0..closed.len())
            .map(|i| i64::try_from(i).unwrap_or(i64::MAX))
            .collect();
        Self::train_rows_at(space, &rows, &labels, &times, options, trained_at)
    }

    /// Trains on pre-encoded rows of unknown order: `rows` holds
    /// `labels.len()` rows of `space.len()` raw values each, row after row.
    /// Without close times every fifth row is held out for validation and
    /// no row counts more than another; prefer [`Predictor::train_rows_at`].
    ///
    /// # Errors
    ///
    /// [`TrainError::RowLength`] when `rows` does not hold exactly that many
    /// values; [`TrainError::InvalidOption`] for out-of-range options.
    pub fn train_rows(
        space: FeatureSpace,
        rows: &[f64],
        labels: &[bool],
        options: TrainOptions,
        trained_at: UnixSeconds,
    ) -> Result<Self, TrainError> {
        Self::train_inner(space, rows, labels, None, options, trained_at)
    }

    /// Trains on pre-encoded rows with each lead's close time (`closed_at`,
    /// Unix seconds, any order): the most recent leads are held out to
    /// choose and calibrate the model, and recent leads may weigh more.
    ///
    /// # Errors
    ///
    /// As [`Predictor::train_rows`]; [`TrainError::RowLength`] also when
    /// `closed_at` and `labels` differ in length.
    pub fn train_rows_at(
        space: FeatureSpace,
        rows: &[f64],
        labels: &[bool],
        closed_at: &[UnixSeconds],
        options: TrainOptions,
        trained_at: UnixSeconds,
    ) -> Result<Self, TrainError> {
        if closed_at.len() != labels.len() {
            return Err(TrainError::RowLength {
                values: closed_at.len(),
                examples: labels.len(),
                features: 1,
            });
        }
        Self::train_inner(space, rows, labels, Some(closed_at), options, trained_at)
    }

    fn train_inner(
        space: FeatureSpace,
        rows: &[f64],
        labels: &[bool],
        closed_at: Option<&[UnixSeconds]>,
        options: TrainOptions,
        trained_at: UnixSeconds,
    ) -> Result<Self, TrainError> {
        options.check()?;
        let p = space.len();
        check_rows(rows, labels.len(), p)?;
        if options.family == Family::Linear {
            return Ok(Self::train_linear(space, rows, labels, options, trained_at));
        }
        let n = labels.len();
        let times = time_order(closed_at, n);
        // Too few of an outcome to hold a validation slice out: nothing
        // could choose or stop trees, so the regularised linear model with
        // its prior learns what the few leads say (a dozen of each still
        // tell a strong budget from a weak one).
        if split(&times, labels, options.validation_fraction)
            .1
            .is_empty()
        {
            return Ok(Self::train_linear(space, rows, labels, options, trained_at));
        }
        let binnings = bin_columns(&space, rows, n);
        let binned = Binned::new(&binnings, rows, n);
        let fitted = fit_boosted(
            &binned,
            labels,
            &times,
            &Start::Prior {
                prior: options.prior,
                strength: options.prior_strength,
            },
            &options,
            options.l2,
        );
        let mut predictor = Self {
            version: 2,
            space,
            means: Vec::new(),
            scales: Vec::new(),
            coefficients: Vec::new(),
            intercept: fitted.intercept,
            bins: binnings,
            trees: fitted.trees,
            tables: fitted.tables,
            calibration: fitted.calibration,
            metadata: TrainingMetadata::default(),
        };
        predictor.metadata = predictor.metadata_for(
            rows,
            labels,
            options,
            trained_at,
            false,
            fitted.validation,
            fitted.converged,
        );
        predictor.metadata.iterations =
            u32::try_from(fitted.grown.max(predictor.trees.len())).unwrap_or(u32::MAX);
        Ok(predictor)
    }

    fn train_linear(
        space: FeatureSpace,
        rows: &[f64],
        labels: &[bool],
        options: TrainOptions,
        trained_at: UnixSeconds,
    ) -> Self {
        let p = space.len();
        let (means, scales) = standardisation(rows, labels.len(), p);
        let prior_logit = logit(options.prior);
        let fit = fit_logistic(
            rows,
            labels,
            &means,
            &scales,
            &Penalty {
                l2: options.l2,
                centre: &vec![0.0; p],
                intercept_weight: options.prior_strength,
                intercept_centre: prior_logit,
                intercept_is_pseudo_data: true,
            },
            options.max_iterations,
        );
        let mut predictor = Self {
            version: 2,
            space,
            means,
            scales,
            coefficients: fit.beta,
            intercept: fit.intercept,
            bins: Vec::new(),
            trees: Vec::new(),
            tables: Vec::new(),
            calibration: Calibration::default(),
            metadata: TrainingMetadata::default(),
        };
        predictor.metadata = predictor.metadata_for(
            rows,
            labels,
            options,
            trained_at,
            false,
            None,
            fit.converged,
        );
        predictor.metadata.iterations = fit.iterations;
        predictor
    }

    /// Trains a team's predictor on the team's closed leads (rows of this
    /// predictor's space, taken as in close order, oldest first): this (the
    /// tenant's) predictor plus a correction learnt from the team's leads,
    /// pulled towards none by `options.team_strength`. With few rows the
    /// result is nearly the tenant's.
    ///
    /// # Errors
    ///
    /// As [`Predictor::train_rows`].
    pub fn train_team(
        &self,
        rows: &[f64],
        labels: &[bool],
        options: TrainOptions,
        trained_at: UnixSeconds,
    ) -> Result<Self, TrainError> {
        let times: Vec<UnixSeconds> = (0..labels.len())
            .map(|i| i64::try_from(i).unwrap_or(i64::MAX))
            .collect();
        self.train_team_at(rows, labels, &times, options, trained_at)
    }

    /// [`Predictor::train_team`] with each lead's close time (Unix seconds).
    ///
    /// # Errors
    ///
    /// As [`Predictor::train_rows_at`].
    pub fn train_team_at(
        &self,
        rows: &[f64],
        labels: &[bool],
        closed_at: &[UnixSeconds],
        options: TrainOptions,
        trained_at: UnixSeconds,
    ) -> Result<Self, TrainError> {
        options.check()?;
        let p = self.space.len();
        check_rows(rows, labels.len(), p)?;
        if closed_at.len() != labels.len() {
            return Err(TrainError::RowLength {
                values: closed_at.len(),
                examples: labels.len(),
                features: 1,
            });
        }
        let n = labels.len();
        // A version 1 parent has no bins: the team's corrections get their own.
        let binnings = if self.bins.len() == p {
            self.bins.clone()
        } else {
            bin_columns(&self.space, rows, n)
        };
        let binned = Binned::new(&binnings, rows, n);
        let times = time_order(Some(closed_at), n);
        let base: Vec<f64> = rows
            .chunks_exact(p.max(1))
            .take(n)
            .map(|r| self.log_odds_row(r))
            .collect();
        let base = if p == 0 {
            vec![self.log_odds_row(&[]); n]
        } else {
            base
        };
        let fitted = fit_boosted(
            &binned,
            labels,
            &times,
            &Start::Parent {
                margins: &base,
                strength: options.team_strength,
            },
            &options,
            options.team_strength.max(options.l2),
        );
        // The team's log-odds are a·(z_tenant + δ + T) + b with z_tenant =
        // s·(F) + c: folded into one model, its trees are the tenant's plus
        // T/s, its calibration (a·s, a·c + b).
        let (s, c) = (self.calibration.slope, self.calibration.offset);
        let s_safe = if s.abs() > 1e-9 { s } else { 1.0 };
        let mut predictor = self.clone();
        predictor.bins = binnings;
        predictor.intercept += fitted.intercept / s_safe;
        predictor
            .trees
            .extend(fitted.trees.into_iter().map(|mut t| {
                for node in &mut t.nodes {
                    node.value /= s_safe;
                }
                t
            }));
        let (a, b) = (fitted.calibration.slope, fitted.calibration.offset);
        predictor.calibration = Calibration {
            slope: a * s,
            offset: a * c + b,
        };
        predictor.version = 2;
        predictor.metadata = predictor.metadata_for(
            rows,
            labels,
            options,
            trained_at,
            true,
            fitted.validation,
            fitted.converged,
        );
        Ok(predictor)
    }

    #[allow(clippy::too_many_arguments)]
    fn metadata_for(
        &self,
        rows: &[f64],
        labels: &[bool],
        options: TrainOptions,
        trained_at: UnixSeconds,
        shrunk_to_parent: bool,
        validation: Option<Validation>,
        converged: bool,
    ) -> TrainingMetadata {
        let won = labels.iter().filter(|w| **w).count();
        let (brier, auc) = match &validation {
            Some(v) => (v.brier, v.auc),
            None => {
                let p = self.space.len().max(1);
                let probs: Vec<f64> = if self.space.is_empty() {
                    vec![self.predict_row(&[]); labels.len()]
                } else {
                    rows.chunks(p)
                        .take(labels.len())
                        .map(|r| self.predict_row(r))
                        .collect()
                };
                (
                    crate::evaluate::brier_score(&probs, labels),
                    crate::evaluate::roc_auc(&probs, labels),
                )
            }
        };
        TrainingMetadata {
            rows: labels.len(),
            won,
            lost: labels.len() - won,
            trained_at,
            iterations: u32::try_from(self.trees.len()).unwrap_or(u32::MAX),
            converged,
            brier,
            auc,
            options,
            shrunk_to_parent,
            validation,
        }
    }

    /// A predictor that answers `prior` for every lead (before any training).
    pub fn prior_only(space: FeatureSpace, prior: f64, trained_at: UnixSeconds) -> Self {
        let prior = if prior > 0.0 && prior < 1.0 {
            prior
        } else {
            0.2
        };
        let options = TrainOptions {
            prior,
            ..TrainOptions::default()
        };
        Self {
            version: 2,
            space,
            means: Vec::new(),
            scales: Vec::new(),
            coefficients: Vec::new(),
            intercept: logit(prior),
            bins: Vec::new(),
            trees: Vec::new(),
            tables: Vec::new(),
            calibration: Calibration::default(),
            metadata: TrainingMetadata {
                trained_at,
                options,
                converged: true,
                ..TrainingMetadata::default()
            },
        }
    }

    /// Close probability (0–1) of a lead.
    pub fn predict(&self, facts: &LeadFacts) -> f64 {
        const STACK: usize = 64;
        let p = self.space.len();
        if !self.coefficients.is_empty() || p > STACK || self.bins.len() != p {
            let row = self.space.encode(facts);
            return self.predict_row(&row);
        }
        // The common case, without allocating: bins straight from the facts.
        let mut bins = [0u8; STACK];
        for ((b, f), binning) in bins.iter_mut().zip(&self.space.features).zip(&self.bins) {
            *b = binning.bin(f.value(facts));
        }
        let bin = |j: usize| bins.get(j).copied().unwrap_or(0);
        let z = self.intercept
            + self.trees.iter().map(|t| t.predict(bin)).sum::<f64>()
            + table_sum(&self.tables, bin);
        let z = self.calibration.slope * z + self.calibration.offset;
        probability(z)
    }

    /// Close probability (0–1) of a raw feature row (see [`FeatureSpace::encode`]).
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        probability(self.log_odds_row(row))
    }

    /// Calibrated log-odds of a raw row.
    fn log_odds_row(&self, row: &[f64]) -> f64 {
        let mut z = self.intercept;
        for (j, ((b, m), s)) in self
            .coefficients
            .iter()
            .zip(&self.means)
            .zip(&self.scales)
            .enumerate()
        {
            z += b * standardise(row.get(j).copied().unwrap_or(f64::NAN), *m, *s);
        }
        if !self.trees.is_empty() || !self.tables.is_empty() {
            let bins = self.bins_of(row);
            let bin = |j: usize| bins.get(j).copied().unwrap_or(0);
            for tree in &self.trees {
                z += tree.predict(bin);
            }
            z += table_sum(&self.tables, bin);
        }
        let z = self.calibration.slope * z + self.calibration.offset;
        if z.is_finite() { z } else { 0.0 }
    }

    fn bins_of(&self, row: &[f64]) -> Vec<u8> {
        self.bins
            .iter()
            .enumerate()
            .map(|(j, b)| b.bin(row.get(j).copied().unwrap_or(f64::NAN)))
            .collect()
    }

    /// The features that pushed this lead's probability up and down most,
    /// against an average lead: up to `k` with positive and `k` with negative
    /// log-odds effects, strongest first. A tree's share of the prediction
    /// goes to the features it split on, by how much each split moved the
    /// prediction along the lead's path.
    pub fn explain(&self, facts: &LeadFacts, k: usize) -> (Vec<FeatureEffect>, Vec<FeatureEffect>) {
        let row = self.space.encode(facts);
        let p = self.space.len();
        let mut log_odds = vec![0.0; p];
        for (j, e) in log_odds.iter_mut().enumerate() {
            if let (Some(b), Some(m), Some(s)) = (
                self.coefficients.get(j),
                self.means.get(j),
                self.scales.get(j),
            ) {
                *e += b * standardise(row.get(j).copied().unwrap_or(f64::NAN), *m, *s);
            }
        }
        if !self.trees.is_empty() || !self.tables.is_empty() {
            let bins = self.bins_of(&row);
            let bin = |j: usize| bins.get(j).copied().unwrap_or(0);
            for tree in &self.trees {
                tree.attribute(bin, &mut log_odds);
            }
            // Tables are centred on the training leads: an entry is its
            // feature's push against an average lead.
            for (j, (e, table)) in log_odds.iter_mut().zip(&self.tables).enumerate() {
                *e += table.get(usize::from(bin(j))).copied().unwrap_or(0.0);
            }
        }
        let mut effects: Vec<FeatureEffect> = self
            .space
            .features
            .iter()
            .zip(&log_odds)
            .enumerate()
            .map(|(j, (f, e))| {
                let raw = row.get(j).copied().unwrap_or(f64::NAN);
                let (feature, value) = describe(f, raw, facts, self.means.get(j).copied());
                FeatureEffect {
                    feature,
                    value,
                    log_odds: self.calibration.slope * e,
                }
            })
            .collect();
        effects.sort_by(|a, b| b.log_odds.total_cmp(&a.log_odds));
        let up = effects
            .iter()
            .filter(|e| e.log_odds > 1e-12)
            .take(k)
            .cloned()
            .collect();
        let down = effects
            .iter()
            .rev()
            .filter(|e| e.log_odds < -1e-12)
            .take(k)
            .cloned()
            .collect();
        (up, down)
    }
}

/// The sum over features of `tables[j][bin(j)]`.
#[inline]
fn table_sum(tables: &[Vec<f64>], bin: impl Fn(usize) -> u8) -> f64 {
    tables
        .iter()
        .enumerate()
        .map(|(j, t)| t.get(usize::from(bin(j))).copied().unwrap_or(0.0))
        .sum()
}

/// A feature's readable name and value for one lead: `source=referral`,
/// `budget (missing)`.
fn describe(feature: &Feature, raw: f64, facts: &LeadFacts, mean: Option<f64>) -> (String, f64) {
    match feature {
        Feature::Level { field, levels } => {
            if raw.is_nan() {
                (format!("{field} (missing)"), 0.0)
            } else {
                let option = levels.get(raw as usize).cloned().unwrap_or_else(|| {
                    facts
                        .attribute(field)
                        .and_then(|v| v.as_text())
                        .map_or_else(String::new, |t| normalise_option(t).into_owned())
                });
                (format!("{field}={option}"), raw)
            }
        }
        Feature::Missing { .. } | Feature::Category { .. } | Feature::SignalCount { .. } => {
            (feature.name(), if raw.is_nan() { 0.0 } else { raw })
        }
        Feature::Rating { field } | Feature::Number { field } | Feature::Boolean { field } => {
            match mean {
                // A version 1 model shows the imputed mean, as it always did.
                Some(m) if raw.is_nan() => (feature.name(), m),
                _ if raw.is_nan() => (format!("{field} (missing)"), 0.0),
                _ => (feature.name(), raw),
            }
        }
    }
}

/// Bins of every column of `rows`: numbers at their quantiles, category
/// codes with rare levels pooled.
fn bin_columns(space: &FeatureSpace, rows: &[f64], n: usize) -> Vec<Binning> {
    let p = space.len();
    // A level needs this many rows to be told apart from the pooled rare
    // ones: a few with little data, up to 25 as it grows.
    let min_level_rows = ((n as f64).sqrt() / 2.0).clamp(5.0, 25.0);
    space
        .features
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let column = rows
                .chunks_exact(p.max(1))
                .take(n)
                .filter_map(move |r| r.get(j).copied());
            match f {
                Feature::Level { levels, .. } => {
                    let mut weight = vec![0.0; levels.len() + 1];
                    for x in column {
                        if x >= 0.0
                            && let Some(w) = weight.get_mut(x as usize)
                        {
                            *w += 1.0;
                        }
                    }
                    // The last code is "not an option": always pooled.
                    weight.pop();
                    Binning::levels(&weight, min_level_rows)
                }
                _ => {
                    let mut values: Vec<f64> = column.filter(|x| x.is_finite()).collect();
                    Binning::numeric(&mut values)
                }
            }
        })
        .collect()
}

/// Each row's position in time: the close times when given, else the row
/// index (and no recency weighting).
struct Times {
    /// Row indices, oldest first.
    order: Vec<u32>,
    /// Close time of each row, as f64.
    at: Vec<f64>,
    /// Whether the times are real (recency weighting and a time split).
    known: bool,
}

fn time_order(closed_at: Option<&[UnixSeconds]>, n: usize) -> Times {
    let mut order: Vec<u32> = (0..u32::try_from(n).unwrap_or(u32::MAX)).collect();
    match closed_at {
        Some(t) => {
            order.sort_by_key(|&i| (t.get(i as usize).copied().unwrap_or(0), i));
            Times {
                order,
                at: t.iter().map(|&x| x as f64).collect(),
                known: true,
            }
        }
        None => Times {
            order,
            at: (0..n).map(|i| i as f64).collect(),
            known: false,
        },
    }
}

/// Where boosting starts.
enum Start<'a> {
    /// From the base rate, with `strength` pseudo-leads at `prior`.
    Prior { prior: f64, strength: f64 },
    /// From a parent model's log-odds, its base rate corrected by a Newton
    /// step shrunk by `strength` pseudo-leads.
    Parent { margins: &'a [f64], strength: f64 },
}

#[derive(Default)]
struct Fitted {
    /// Trees grown, stumps folded into tables included.
    grown: usize,
    intercept: f64,
    trees: Vec<Tree>,
    tables: Vec<Vec<f64>>,
    calibration: Calibration,
    validation: Option<Validation>,
    converged: bool,
}

/// Whether the chosen configuration is trained again on every row.
const REFIT: bool = true;

/// A candidate configuration tried on the validation slice.
#[derive(Clone, Copy)]
struct Candidate {
    depth: u32,
    /// Half-life as a share of the training span; None: equal weights.
    half_life: Option<f64>,
}

/// The candidates: additive trees (a logistic regression over binned
/// features, robust under drift) and depth-3 trees (interactions), each
/// with and without recency weighting when the close times are known.
fn candidates(times_known: bool) -> Vec<Candidate> {
    let mut c = vec![
        Candidate {
            depth: 1,
            half_life: None,
        },
        Candidate {
            depth: 3,
            half_life: None,
        },
    ];
    if times_known {
        c.extend([
            Candidate {
                depth: 1,
                half_life: Some(0.05),
            },
            Candidate {
                depth: 3,
                half_life: Some(0.05),
            },
        ]);
    }
    c
}

fn params_for(c: Candidate, lambda: f64, max_trees: u32) -> Params {
    Params {
        depth: c.depth,
        // Stumps learn one feature at a time and would need many more
        // trees at the rate that suits deeper trees.
        learning_rate: if c.depth <= 1 { 0.25 } else { 0.1 },
        lambda: lambda.max(1e-3),
        min_hessian: 2.0,
        category_smoothing: 10.0,
        max_trees: max_trees as usize,
        patience: 15,
        sample_rows: 16_000,
    }
}

/// Recency weights of `rows` (mean 1 over them): halved every
/// `half_life · span` before the newest of them.
fn recency_weights(times: &Times, rows: &[u32], half_life: Option<f64>, n: usize) -> Vec<f64> {
    let mut w = vec![1.0; n];
    let Some(h) = half_life else {
        return w;
    };
    let at = |i: u32| times.at.get(i as usize).copied().unwrap_or(0.0);
    let (Some(&first), Some(&last)) = (rows.first(), rows.last()) else {
        return w;
    };
    let (t0, t1) = (at(first), at(last));
    let scale = h * (t1 - t0);
    if scale <= 0.0 {
        return w;
    }
    let mut total = 0.0;
    for &i in rows {
        let x = (-(t1 - at(i)) / scale * std::f64::consts::LN_2).exp();
        if let Some(wi) = w.get_mut(i as usize) {
            *wi = x;
        }
        total += x;
    }
    let mean = total / rows.len() as f64;
    for &i in rows {
        if let Some(wi) = w.get_mut(i as usize) {
            *wi /= mean;
        }
    }
    w
}

/// Starting log-odds of every row for training on `rows` with `weights`.
fn start_margins(
    start: &Start<'_>,
    labels: &[bool],
    weights: &[f64],
    rows: &[u32],
) -> (Vec<f64>, f64) {
    let n = labels.len();
    match start {
        Start::Prior { prior, strength } => {
            let (mut won, mut total) = (0.0, 0.0);
            for &i in rows {
                let w = weights.get(i as usize).copied().unwrap_or(1.0);
                won += w * f64::from(u8::from(labels.get(i as usize).copied().unwrap_or(false)));
                total += w;
            }
            let rate = (won + strength * prior) / (total + strength);
            // With no prior and one class, keep the rate off 0 and 1.
            let rate = rate.clamp(1e-4, 1.0 - 1e-4);
            let b = logit(rate);
            (vec![b; n], b)
        }
        Start::Parent { margins, strength } => {
            // One Newton step on the base rate, shrunk by `strength`.
            let (mut g, mut h) = (0.0, 0.0);
            for &i in rows {
                let i = i as usize;
                let w = weights.get(i).copied().unwrap_or(1.0);
                let p = sigmoid(margins.get(i).copied().unwrap_or(0.0));
                g += w * (f64::from(u8::from(labels.get(i).copied().unwrap_or(false))) - p);
                h += w * p * (1.0 - p);
            }
            let delta = g / (h + strength.max(1e-6));
            let delta = if delta.is_finite() {
                delta.clamp(-3.0, 3.0)
            } else {
                0.0
            };
            (margins.iter().map(|m| m + delta).collect(), delta)
        }
    }
}

/// Chooses, fits and calibrates the trees (see the module docs).
fn fit_boosted(
    binned: &Binned,
    labels: &[bool],
    times: &Times,
    start: &Start<'_>,
    options: &TrainOptions,
    lambda: f64,
) -> Fitted {
    let n = labels.len();
    let all: Vec<u32> = times.order.clone();
    let (fit, valid) = split(times, labels, options.validation_fraction);
    let calibration_strength = match start {
        Start::Prior { .. } => 1.0,
        Start::Parent { strength, .. } => strength.max(1.0),
    };
    if valid.is_empty() {
        // Too few of an outcome to hold any out: the base rate with its
        // prior, and no trees that nothing could stop.
        let weights = vec![1.0; n];
        let (_, intercept) = start_margins(start, labels, &weights, &all);
        return Fitted {
            intercept,
            converged: true,
            ..Fitted::default()
        };
    }
    let y: Vec<bool> = valid
        .iter()
        .map(|&i| labels.get(i as usize).copied().unwrap_or(false))
        .collect();
    // The naive Bayes tables join a tenant's model only: a team's model is
    // a correction of its tenant's, which already holds them.
    let bayes = match start {
        Start::Prior { .. } if REFIT => choose_bayes(binned, labels, start, &fit, &valid, options),
        _ => None,
    };
    // Each candidate is trained on the older rows and judged, blended with
    // naive Bayes and calibrated, on the recent ones: the trees that add
    // most to naive Bayes win, not the trees best alone.
    let mut tried: Vec<Tried> = Vec::new();
    for c in candidates(times.known) {
        let weights = recency_weights(times, &fit, c.half_life, n);
        let (mut margin, b0) = start_margins(start, labels, &weights, &fit);
        let params = params_for(c, lambda, options.max_trees);
        let boosted = boost::boost(
            binned,
            labels,
            &weights,
            &mut margin,
            &fit,
            &valid,
            &params,
            17,
        );
        let scores: Vec<f64> = valid
            .iter()
            .map(|&i| margin.get(i as usize).copied().unwrap_or(0.0))
            .collect();
        let losses = match &bayes {
            Some((_, bayes_scores)) => {
                let blend = stack(
                    &scores,
                    bayes_scores,
                    &y,
                    calibration_strength,
                    options.max_iterations,
                );
                let z: Vec<f64> = scores
                    .iter()
                    .zip(bayes_scores)
                    .map(|(&t, &b)| blend.apply(t, b))
                    .collect();
                row_losses(&z, &y, Calibration::default())
            }
            None => {
                let cal = platt(&scores, &y, calibration_strength, options.max_iterations);
                row_losses(&scores, &y, cal)
            }
        };
        tried.push(Tried {
            candidate: c,
            intercept: b0,
            trees: boosted.trees,
            scores,
            losses,
        });
    }
    let losses: Vec<&[f64]> = tried.iter().map(|t| t.losses.as_slice()).collect();
    let Some(Tried {
        candidate: chosen,
        intercept: b0,
        trees: chosen_trees,
        scores,
        ..
    }) = simplest_within_noise(&losses).and_then(|k| tried.into_iter().nth(k))
    else {
        return Fitted::default();
    };
    let rounds = chosen_trees.len();
    let cal = platt(&scores, &y, calibration_strength, options.max_iterations);
    // The blend: trees' and naive Bayes' log-odds weighted (and offset) to
    // fit the held-out slice best; trees alone without naive Bayes.
    let blend = match &bayes {
        Some((_, bayes_scores)) => stack(
            &scores,
            bayes_scores,
            &y,
            calibration_strength,
            options.max_iterations,
        ),
        None => Blend {
            trees: cal.slope,
            bayes: 0.0,
            offset: cal.offset,
        },
    };
    let blended = |i: usize, tree_score: f64| {
        let b = bayes
            .as_ref()
            .and_then(|(_, s)| s.get(i))
            .copied()
            .unwrap_or(0.0);
        blend.apply(tree_score, b)
    };
    let held_out: Vec<f64> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| blended(i, s))
        .collect();
    let probs: Vec<f64> = held_out.iter().map(|&z| sigmoid(z)).collect();
    let won = y.iter().filter(|w| **w).count();
    let validation = Validation {
        rows: valid.len(),
        won,
        auc: crate::evaluate::roc_auc(&probs, &y),
        brier: crate::evaluate::brier_score(&probs, &y),
        log_loss: log_loss(&held_out, &y, Calibration::default()),
        reliability: crate::evaluate::reliability(&probs, &y, 10),
        depth: chosen.depth,
        trees: rounds,
        recency_half_life: chosen.half_life.map(|h| {
            let at = |i: Option<&u32>| {
                i.and_then(|&i| times.at.get(i as usize))
                    .copied()
                    .unwrap_or(0.0)
            };
            h * (at(fit.last()) - at(fit.first()))
        }),
        calibration_slope: blend.trees,
        naive_bayes_weight: blend.bayes,
    };
    if !REFIT || matches!(start, Start::Parent { .. }) {
        // The model judged is the model kept: its calibration is out of
        // sample exactly.
        return Fitted {
            grown: chosen_trees.len(),
            intercept: b0,
            converged: chosen_trees.len() < options.max_trees as usize,
            trees: chosen_trees,
            tables: Vec::new(),
            calibration: cal,
            validation: Some(validation),
        };
    }
    // Refit on every row, the recent ones included (they matter most under
    // drift), with the chosen configurations and number of trees.
    let weights = recency_weights(times, &all, chosen.half_life, n);
    let (mut margin, intercept) = start_margins(start, labels, &weights, &all);
    let params = Params {
        max_trees: rounds,
        ..params_for(chosen, lambda, options.max_trees)
    };
    let boosted = boost::boost(
        binned,
        labels,
        &weights,
        &mut margin,
        &all,
        &[],
        &params,
        17,
    );
    let refit_bayes = bayes
        .filter(|_| blend.bayes > 0.0)
        .map(|(c, _)| naive_bayes(binned, labels, &vec![1.0; n], &all, start, c.smoothing));
    let refit_bayes_scores = refit_bayes
        .as_ref()
        .map(|b| b.scores(binned, &valid))
        .unwrap_or_default();
    // Without close times the rows are exchangeable: the refit trees' own
    // log-loss fit is their calibration, and the held-out slope (of a model
    // trained on fewer rows) would only distort it.
    if !times.known && refit_bayes.is_none() {
        let (grown, converged) = (
            boosted.trees.len(),
            boosted.trees.len() < options.max_trees as usize,
        );
        let (trees, tables, root_values) = fold_stumps(boosted.trees, Vec::new(), &binned.counts);
        return Fitted {
            grown,
            intercept: intercept + root_values,
            converged,
            trees,
            tables,
            calibration: Calibration::default(),
            validation: Some(validation),
        };
    }
    // The weights come from the held-out slice; the offset is set again so
    // the refitted model's mean probability on the recent slice is what
    // the held-out blend said it is (the refit saw those leads, and a
    // recency-weighted refit already moved towards their won rate).
    let target: f64 = probs.iter().sum::<f64>() / probs.len().max(1) as f64;
    let refit_scores: Vec<f64> = valid
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            blend.trees * margin.get(i as usize).copied().unwrap_or(0.0)
                + blend.bayes * refit_bayes_scores.get(k).copied().unwrap_or(0.0)
        })
        .collect();
    let offset = match_mean(&refit_scores, 1.0, target);
    let (bayes_intercept, tables) = refit_bayes.map_or((0.0, Vec::new()), |b| {
        (
            blend.bayes * b.intercept,
            b.tables
                .into_iter()
                .map(|t| t.into_iter().map(|v| blend.bayes * v).collect())
                .collect(),
        )
    });
    let trees = boosted
        .trees
        .into_iter()
        .map(|mut t| {
            for node in &mut t.nodes {
                node.value *= blend.trees;
            }
            t
        })
        .collect::<Vec<_>>();
    let converged = trees.len() < options.max_trees as usize;
    let grown = trees.len();
    let (trees, tables, root_values) = fold_stumps(trees, tables, &binned.counts);
    Fitted {
        grown,
        intercept: blend.trees * intercept + bayes_intercept + root_values,
        converged,
        trees,
        tables,
        calibration: Calibration { slope: 1.0, offset },
        validation: Some(validation),
    }
}

/// Moves every stump (a one-split tree) into its feature's table, which
/// scores it with one look-up instead of a walk, and returns the trees
/// left, the tables and the sum of the stumps' root values (for the
/// intercept). A stump's entry for a bin is its leaf's value less its
/// root's, as the trees' explanations share it out, so explanations stay
/// as they were. `counts` are the bins of each feature.
fn fold_stumps(
    trees: Vec<Tree>,
    mut tables: Vec<Vec<f64>>,
    counts: &[usize],
) -> (Vec<Tree>, Vec<Vec<f64>>, f64) {
    let mut roots = 0.0;
    let mut kept = Vec::with_capacity(trees.len());
    for tree in trees {
        let [root, left, right] = tree.nodes.as_slice() else {
            kept.push(tree);
            continue;
        };
        let Some(f) = root
            .feature
            .map(|f| f as usize)
            .filter(|&f| f < counts.len())
        else {
            kept.push(tree);
            continue;
        };
        if tables.len() != counts.len() {
            tables = counts.iter().map(|&c| vec![0.0; c]).collect();
        }
        if let Some(table) = tables.get_mut(f) {
            for (b, t) in table.iter_mut().enumerate() {
                let goes_left = u8::try_from(b).is_ok_and(|b| root.left_bins.contains(b));
                *t += if goes_left { left.value } else { right.value } - root.value;
            }
        }
        roots += root.value;
    }
    (kept, tables, roots)
}

/// A tree configuration as trained on the older rows and judged on the
/// held-out ones.
struct Tried {
    candidate: Candidate,
    intercept: f64,
    trees: Vec<Tree>,
    /// Log-odds of the held-out rows.
    scores: Vec<f64>,
    /// Each held-out row's log-loss, calibrated (and blended).
    losses: Vec<f64>,
}

/// A naive Bayes configuration tried on the validation slice.
#[derive(Clone, Copy)]
struct BayesCandidate {
    /// Laplace smoothing: pseudo-leads of each outcome in every bin.
    smoothing: f64,
}

/// Naive Bayes over the bins: an intercept and, per feature, each bin's
/// smoothed log-likelihood ratio of won against lost, centred so the
/// training rows' mean entry is 0 (so an entry is the bin's push against
/// an average lead).
struct Bayes {
    intercept: f64,
    tables: Vec<Vec<f64>>,
}

impl Bayes {
    /// Log-odds of `rows`.
    fn scores(&self, binned: &Binned, rows: &[u32]) -> Vec<f64> {
        let mut z = vec![self.intercept; rows.len()];
        for (table, col) in self.tables.iter().zip(&binned.cols) {
            for (zi, &i) in z.iter_mut().zip(rows) {
                let b = col.get(i as usize).copied().unwrap_or(0);
                *zi += table.get(usize::from(b)).copied().unwrap_or(0.0);
            }
        }
        z
    }
}

/// Naive Bayes fitted on `rows` with `weights` (see [`Bayes`]); the
/// intercept is the base rate with the prior, as the trees start from.
fn naive_bayes(
    binned: &Binned,
    labels: &[bool],
    weights: &[f64],
    rows: &[u32],
    start: &Start<'_>,
    smoothing: f64,
) -> Bayes {
    let (_, intercept) = start_margins(start, labels, weights, rows);
    let (mut won, mut lost) = (0.0, 0.0);
    for &i in rows {
        let w = weights.get(i as usize).copied().unwrap_or(1.0);
        if labels.get(i as usize).copied().unwrap_or(false) {
            won += w;
        } else {
            lost += w;
        }
    }
    let mut tables = Vec::with_capacity(binned.cols.len());
    for (col, &count) in binned.cols.iter().zip(&binned.counts) {
        let (mut cw, mut cl) = (vec![0.0; count], vec![0.0; count]);
        for &i in rows {
            let i = i as usize;
            let w = weights.get(i).copied().unwrap_or(1.0);
            let b = usize::from(col.get(i).copied().unwrap_or(0));
            let side = if labels.get(i).copied().unwrap_or(false) {
                &mut cw
            } else {
                &mut cl
            };
            if let Some(c) = side.get_mut(b) {
                *c += w;
            }
        }
        let k = count as f64 * smoothing;
        let mut table: Vec<f64> = cw
            .iter()
            .zip(&cl)
            .map(|(w, l)| ((w + smoothing) / (won + k)).ln() - ((l + smoothing) / (lost + k)).ln())
            .collect();
        let total = won + lost;
        if total > 0.0 {
            let mean = cw
                .iter()
                .zip(&cl)
                .zip(&table)
                .map(|((w, l), t)| (w + l) * t)
                .sum::<f64>()
                / total;
            for t in &mut table {
                *t -= mean;
            }
        }
        tables.push(table);
    }
    Bayes { intercept, tables }
}

/// The naive Bayes configurations: light and heavier smoothing, always
/// with equal weights. The blend pairs a long memory (naive Bayes over all
/// history, low variance) with a short one (trees, recency-weighted when
/// validation says so); the blend's weights decide the mix. Recency in
/// both parts leaves nothing stable to fall back on when the newest slice
/// misleads.
fn bayes_candidates() -> Vec<BayesCandidate> {
    [1.0, 10.0]
        .into_iter()
        .map(|smoothing| BayesCandidate { smoothing })
        .collect()
}

/// The naive Bayes configuration whose Platt-scaled log-loss on `valid`
/// is least when fitted on `fit`, with its scores on `valid`.
fn choose_bayes(
    binned: &Binned,
    labels: &[bool],
    start: &Start<'_>,
    fit: &[u32],
    valid: &[u32],
    options: &TrainOptions,
) -> Option<(BayesCandidate, Vec<f64>)> {
    let y: Vec<bool> = valid
        .iter()
        .map(|&i| labels.get(i as usize).copied().unwrap_or(false))
        .collect();
    let weights = vec![1.0; labels.len()];
    let mut tried: Vec<(BayesCandidate, Vec<f64>, Vec<f64>)> = Vec::new();
    for c in bayes_candidates() {
        let scores =
            naive_bayes(binned, labels, &weights, fit, start, c.smoothing).scores(binned, valid);
        let cal = platt(&scores, &y, 1.0, options.max_iterations);
        let losses = row_losses(&scores, &y, cal);
        tried.push((c, scores, losses));
    }
    let losses: Vec<&[f64]> = tried.iter().map(|(_, _, l)| l.as_slice()).collect();
    let chosen = simplest_within_noise(&losses)?;
    tried.into_iter().nth(chosen).map(|(c, s, _)| (c, s))
}

/// Each row's log-loss of the log-odds `scores` after `cal`.
fn row_losses(scores: &[f64], won: &[bool], cal: Calibration) -> Vec<f64> {
    scores
        .iter()
        .zip(won)
        .map(|(&s, &y)| {
            let z = cal.slope * s + cal.offset;
            softplus(z) - if y { z } else { 0.0 }
        })
        .collect()
}

/// The first (simplest) of candidates, given each one's per-row
/// validation losses, whose mean loss is within one standard error of the
/// best one's (the error of the paired per-row differences): a candidate
/// must beat a simpler one by more than the validation slice's noise to
/// be chosen over it. None without candidates.
fn simplest_within_noise(losses: &[&[f64]]) -> Option<usize> {
    let mean = |l: &[f64]| l.iter().sum::<f64>() / l.len().max(1) as f64;
    let best = (0..losses.len()).min_by(|&a, &b| {
        let (la, lb) = (
            losses.get(a).map_or(f64::INFINITY, |l| mean(l)),
            losses.get(b).map_or(f64::INFINITY, |l| mean(l)),
        );
        la.total_cmp(&lb)
    })?;
    let best_losses = losses.get(best)?;
    (0..losses.len()).find(|&k| {
        let Some(l) = losses.get(k) else {
            return false;
        };
        let diffs: Vec<f64> = l.iter().zip(*best_losses).map(|(a, b)| a - b).collect();
        let m = mean(&diffs);
        let var =
            diffs.iter().map(|d| (d - m) * (d - m)).sum::<f64>() / (diffs.len().max(2) - 1) as f64;
        m <= (var / diffs.len().max(1) as f64).sqrt()
    })
}

/// Weights of the trees' and naive Bayes' log-odds, and the offset.
#[derive(Clone, Copy, Debug)]
struct Blend {
    trees: f64,
    bayes: f64,
    offset: f64,
}

impl Blend {
    fn apply(&self, t: f64, b: f64) -> f64 {
        self.trees * t + self.bayes * b + self.offset
    }
}

/// The blend `trees · t + bayes · b + offset` of least log-loss on `won`,
/// both weights in [0, 10], pulled towards the trees alone (1, 0, 0) by
/// `strength` pseudo-leads' worth of penalty (projected Newton).
fn stack(t: &[f64], b: &[f64], won: &[bool], strength: f64, max_iterations: u32) -> Blend {
    let mut theta = [1.0f64, 0.0, 0.0];
    let centre = [1.0f64, 0.0, 0.0];
    for _ in 0..max_iterations.max(10) {
        let mut grad = [0.0f64; 3];
        let mut hess = [0.0f64; 9];
        for k in 0..3 {
            grad[k] = strength * (theta[k] - centre[k]);
            hess[k * 4] = strength + 1e-9;
        }
        for ((&ti, &bi), &y) in t.iter().zip(b).zip(won) {
            let x = [ti, bi, 1.0];
            let z = theta[0] * ti + theta[1] * bi + theta[2];
            let p = sigmoid(z);
            let r = p - f64::from(u8::from(y));
            let w = (p * (1.0 - p)).max(1e-12);
            for j in 0..3 {
                grad[j] += r * x[j];
                for k in 0..3 {
                    hess[j * 3 + k] += w * x[j] * x[k];
                }
            }
        }
        let Some(step) = cholesky_solve(&hess, &grad, 3) else {
            break;
        };
        let before = theta;
        theta[0] = (theta[0] - step.first().copied().unwrap_or(0.0)).clamp(0.0, 10.0);
        theta[1] = (theta[1] - step.get(1).copied().unwrap_or(0.0)).clamp(0.0, 10.0);
        theta[2] = (theta[2] - step.get(2).copied().unwrap_or(0.0)).clamp(-20.0, 20.0);
        let moved = before
            .iter()
            .zip(&theta)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        if moved < 1e-10 {
            break;
        }
    }
    Blend {
        trees: theta[0],
        bayes: theta[1],
        offset: theta[2],
    }
}

/// The held-out split: the newest `fraction` of the rows (every fifth row
/// when the order is unknown), when both sides keep enough of each outcome;
/// else no validation rows.
fn split(times: &Times, labels: &[bool], fraction: f64) -> (Vec<u32>, Vec<u32>) {
    let n = times.order.len();
    let n_valid = ((n as f64) * fraction).round() as usize;
    let (fit, valid): (Vec<u32>, Vec<u32>) = if times.known {
        let cut = n - n_valid.min(n);
        (
            times.order.get(..cut).unwrap_or(&[]).to_vec(),
            times.order.get(cut..).unwrap_or(&[]).to_vec(),
        )
    } else {
        let every = (1.0 / fraction).round().max(2.0) as usize;
        times
            .order
            .iter()
            .partition(|&&i| (i as usize) % every != every - 1)
    };
    let counts = |rows: &[u32]| {
        let won = rows
            .iter()
            .filter(|&&i| labels.get(i as usize).copied().unwrap_or(false))
            .count();
        (won, rows.len() - won)
    };
    let ((fw, fl), (vw, vl)) = (counts(&fit), counts(&valid));
    let m = MIN_PER_OUTCOME_HELD_OUT;
    if fw >= m && fl >= m && vw >= m && vl >= m {
        (fit, valid)
    } else {
        (times.order.clone(), Vec::new())
    }
}

/// Platt scaling: the slope and offset that best turn `scores` (log-odds)
/// into probabilities of `won`, pulled towards (1, 0) by `strength`
/// pseudo-leads' worth of penalty. The slope stays within [0.01, 10].
fn platt(scores: &[f64], won: &[bool], strength: f64, max_iterations: u32) -> Calibration {
    let (mut a, mut b) = (1.0f64, 0.0f64);
    for _ in 0..max_iterations.max(10) {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) =
            (strength * (a - 1.0), strength * b, strength, 0.0, strength);
        for (&s, &y) in scores.iter().zip(won) {
            let p = sigmoid(a * s + b);
            let r = p - f64::from(u8::from(y));
            let w = (p * (1.0 - p)).max(1e-12);
            ga += r * s;
            gb += r;
            haa += w * s * s;
            hab += w * s;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if !(det.is_finite() && det > 1e-12) {
            break;
        }
        let da = (hbb * ga - hab * gb) / det;
        let db = (haa * gb - hab * ga) / det;
        a = (a - da).clamp(0.01, 10.0);
        b = (b - db).clamp(-20.0, 20.0);
        if da.abs().max(db.abs()) < 1e-10 {
            break;
        }
    }
    Calibration {
        slope: a,
        offset: b,
    }
}

/// Log-odds no lead goes beyond: odds of about three million to one.
const MAX_LOG_ODDS: f64 = 15.0;

/// A close probability from calibrated log-odds: strictly between 0 and 1.
/// A model fitted on a handful of closed leads can separate them perfectly
/// and answer log-odds past what `f64` tells from certainty (a probability
/// of exactly 1 for three leads, found by the `small_data` property test);
/// no history makes a lead certain to close or to be lost.
fn probability(z: f64) -> f64 {
    if z.is_finite() {
        sigmoid(z.clamp(-MAX_LOG_ODDS, MAX_LOG_ODDS))
    } else {
        0.5
    }
}

/// The offset that makes the mean of `sigmoid(slope · s + offset)` over
/// `scores` equal `target` (bisection; the mean rises with the offset).
fn match_mean(scores: &[f64], slope: f64, target: f64) -> f64 {
    let mean = |b: f64| {
        scores.iter().map(|&s| sigmoid(slope * s + b)).sum::<f64>() / scores.len().max(1) as f64
    };
    let (mut lo, mut hi) = (-20.0f64, 20.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if mean(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

fn log_loss(scores: &[f64], won: &[bool], cal: Calibration) -> f64 {
    let total: f64 = scores
        .iter()
        .zip(won)
        .map(|(&s, &y)| {
            let z = cal.slope * s + cal.offset;
            softplus(z) - if y { z } else { 0.0 }
        })
        .sum();
    total / scores.len().max(1) as f64
}

fn check_rows(rows: &[f64], n: usize, p: usize) -> Result<(), TrainError> {
    if rows.len() != n * p {
        return Err(TrainError::RowLength {
            values: rows.len(),
            examples: n,
            features: p,
        });
    }
    Ok(())
}

#[inline]
fn standardise(x: f64, mean: f64, scale: f64) -> f64 {
    if x.is_finite() {
        (x - mean) / scale
    } else {
        0.0
    }
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// Column means and standard deviations over finite values; missing values
/// take the mean, constant columns get scale 1.
fn standardisation(rows: &[f64], n: usize, p: usize) -> (Vec<f64>, Vec<f64>) {
    let mut sum = vec![0.0; p];
    let mut count = vec![0usize; p];
    for row in rows.chunks_exact(p.max(1)).take(n) {
        for ((s, c), &x) in sum.iter_mut().zip(count.iter_mut()).zip(row) {
            if x.is_finite() {
                *s += x;
                *c += 1;
            }
        }
    }
    let means: Vec<f64> = sum
        .iter()
        .zip(&count)
        .map(|(s, c)| if *c > 0 { s / *c as f64 } else { 0.0 })
        .collect();
    let mut sq = vec![0.0; p];
    for row in rows.chunks_exact(p.max(1)).take(n) {
        for ((q, m), &x) in sq.iter_mut().zip(&means).zip(row) {
            if x.is_finite() {
                *q += (x - m) * (x - m);
            }
        }
    }
    let scales = sq
        .iter()
        .zip(&count)
        .map(|(q, c)| {
            let sd = if *c > 1 { (q / *c as f64).sqrt() } else { 0.0 };
            if sd > 1e-12 { sd } else { 1.0 }
        })
        .collect();
    (means, scales)
}

struct Penalty<'a> {
    /// Strength pulling coefficients towards `centre`.
    l2: f64,
    centre: &'a [f64],
    /// Strength pulling the intercept towards `intercept_centre`.
    intercept_weight: f64,
    intercept_centre: f64,
    /// Whether the intercept's pull is pseudo-leads at the prior rate (a
    /// logistic term) rather than a quadratic penalty.
    intercept_is_pseudo_data: bool,
}

struct Fit {
    beta: Vec<f64>,
    intercept: f64,
    iterations: u32,
    converged: bool,
}

/// Penalised maximum likelihood by Newton's method with step halving.
/// Parameters are `[intercept, β…]` over standardised features.
fn fit_logistic(
    rows: &[f64],
    labels: &[bool],
    means: &[f64],
    scales: &[f64],
    penalty: &Penalty<'_>,
    max_iterations: u32,
) -> Fit {
    let p = means.len();
    let d = p + 1;
    // Standardise once; the Newton loop then streams over a dense matrix.
    let mut x = Vec::with_capacity(labels.len() * d);
    for row in rows.chunks_exact(p.max(1)).take(labels.len()) {
        x.push(1.0);
        x.extend(
            row.iter()
                .zip(means.iter().zip(scales))
                .map(|(&v, (m, s))| standardise(v, *m, *s)),
        );
    }
    if p == 0 {
        x.clear();
        x.resize(labels.len(), 1.0);
    }
    let y: Vec<f64> = labels.iter().map(|w| f64::from(u8::from(*w))).collect();
    let mut theta = vec![0.0; d];
    if let Some(t0) = theta.first_mut() {
        *t0 = penalty.intercept_centre;
    }
    for (t, c) in theta.iter_mut().skip(1).zip(penalty.centre) {
        *t = *c;
    }
    let objective = |theta: &[f64]| -> f64 {
        let mut nll = 0.0;
        for (xi, &yi) in x.chunks_exact(d).zip(&y) {
            let z: f64 = xi.iter().zip(theta).map(|(a, b)| a * b).sum();
            // log(1 + e^z) − y z, computed stably.
            nll += softplus(z) - yi * z;
        }
        nll + penalty_value(theta, penalty)
    };
    let mut current = objective(&theta);
    let mut grad = vec![0.0; d];
    let mut hess = vec![0.0; d * d];
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iterations {
        iterations += 1;
        grad.fill(0.0);
        hess.fill(0.0);
        for (xi, &yi) in x.chunks_exact(d).zip(&y) {
            let z: f64 = xi.iter().zip(&theta).map(|(a, b)| a * b).sum();
            let mu = sigmoid(z);
            let w = (mu * (1.0 - mu)).max(1e-12);
            let r = mu - yi;
            for (g, &a) in grad.iter_mut().zip(xi) {
                *g += r * a;
            }
            // Upper triangle only; mirrored below.
            for (j, &aj) in xi.iter().enumerate() {
                let waj = w * aj;
                if let Some(row) = hess.get_mut(j * d + j..(j + 1) * d) {
                    for (h, &ak) in row.iter_mut().zip(xi.iter().skip(j)) {
                        *h += waj * ak;
                    }
                }
            }
        }
        add_penalty_derivatives(&theta, penalty, &mut grad, &mut hess, d);
        for j in 0..d {
            for k in 0..j {
                let upper = hess.get(k * d + j).copied().unwrap_or(0.0);
                if let Some(h) = hess.get_mut(j * d + k) {
                    *h = upper;
                }
            }
        }
        let Some(step) = cholesky_solve(&hess, &grad, d) else {
            break;
        };
        let mut t = 1.0;
        let mut accepted = false;
        let mut candidate = theta.clone();
        for _ in 0..30 {
            for ((c, th), s) in candidate.iter_mut().zip(&theta).zip(&step) {
                *c = th - t * s;
            }
            let value = objective(&candidate);
            if value.is_finite() && value <= current + 1e-12 * current.abs().max(1.0) {
                current = value;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            converged = true;
            break;
        }
        let moved = step.iter().map(|s| (t * s).abs()).fold(0.0, f64::max);
        theta.clone_from(&candidate);
        if moved < 1e-8 {
            converged = true;
            break;
        }
    }
    let intercept = theta.first().copied().unwrap_or(0.0);
    Fit {
        beta: theta.into_iter().skip(1).collect(),
        intercept,
        iterations,
        converged,
    }
}

fn penalty_value(theta: &[f64], pen: &Penalty<'_>) -> f64 {
    let b0 = theta.first().copied().unwrap_or(0.0);
    let intercept = if pen.intercept_is_pseudo_data {
        let p0 = sigmoid(pen.intercept_centre);
        pen.intercept_weight * (softplus(b0) - p0 * b0)
    } else {
        0.5 * pen.intercept_weight * (b0 - pen.intercept_centre).powi(2)
    };
    let coefs: f64 = theta
        .iter()
        .skip(1)
        .zip(pen.centre)
        .map(|(b, c)| (b - c) * (b - c))
        .sum();
    intercept + 0.5 * pen.l2 * coefs
}

fn add_penalty_derivatives(
    theta: &[f64],
    pen: &Penalty<'_>,
    grad: &mut [f64],
    hess: &mut [f64],
    d: usize,
) {
    let b0 = theta.first().copied().unwrap_or(0.0);
    let (g0, h0) = if pen.intercept_is_pseudo_data {
        let mu = sigmoid(b0);
        let p0 = sigmoid(pen.intercept_centre);
        (
            pen.intercept_weight * (mu - p0),
            pen.intercept_weight * mu * (1.0 - mu),
        )
    } else {
        (
            pen.intercept_weight * (b0 - pen.intercept_centre),
            pen.intercept_weight,
        )
    };
    if let Some(g) = grad.first_mut() {
        *g += g0;
    }
    if let Some(h) = hess.first_mut() {
        *h += h0 + 1e-9;
    }
    for (j, (b, c)) in theta.iter().skip(1).zip(pen.centre).enumerate() {
        let j = j + 1;
        if let Some(g) = grad.get_mut(j) {
            *g += pen.l2 * (b - c);
        }
        if let Some(h) = hess.get_mut(j * d + j) {
            // A tiny ridge keeps the system solvable with l2 = 0 and constant columns.
            *h += pen.l2 + 1e-9;
        }
    }
}

/// Solves `a · x = b` for symmetric positive-definite `a` (d × d, row-major).
fn cholesky_solve(a: &[f64], b: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = *a.get(i * d + j)?;
            for k in 0..j {
                s -= l.get(i * d + k)? * l.get(j * d + k)?;
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                *l.get_mut(i * d + i)? = s.sqrt();
            } else {
                *l.get_mut(i * d + j)? = s / l.get(j * d + j)?;
            }
        }
    }
    let mut y = vec![0.0; d];
    for i in 0..d {
        let mut s = *b.get(i)?;
        for k in 0..i {
            s -= l.get(i * d + k)? * y.get(k)?;
        }
        *y.get_mut(i)? = s / l.get(i * d + i)?;
    }
    let mut x = vec![0.0; d];
    for i in (0..d).rev() {
        let mut s = *y.get(i)?;
        for k in i + 1..d {
            s -= l.get(k * d + i)? * x.get(k)?;
        }
        *x.get_mut(i)? = s / l.get(i * d + i)?;
    }
    Some(x)
}
