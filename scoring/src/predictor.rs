//! The learned close-probability predictor.
//!
//! An L2-regularised logistic regression over a lead's field values and
//! engagement counts, fitted by Newton's method (iteratively reweighted least
//! squares) on standardised features. It is trained per tenant from closed
//! leads (won = 1, lost = 0), and per team with its coefficients shrunk towards
//! the tenant's ([`Predictor::train_team`]), so a team with few closed leads
//! gets nearly the tenant's model and one with many gets its own.
//!
//! **Little data.** The intercept carries a prior: `prior_strength` pseudo-leads
//! at the `prior` close rate. With no closed leads the predictor answers the
//! prior; as leads accumulate the data takes over. One class only (all won or
//! all lost) gives finite, sane probabilities, never NaN.
//!
//! **Leakage.** Features are field values and inbound signal counts only; the
//! stage, the close date and the deal's final state are never features. Build
//! a closed lead's training facts from what was known before it closed (for
//! activities: [`crate::ActivityState::from_activities`] over the activities
//! before the close), and leave out fields filled in at closing
//! ([`FeatureSpace::new`] takes the field list).
//!
//! **Features.** RATING fields as numbers; NUMBER fields as `sign(x)·ln(1+|x|)`
//! (money and counts are heavy-tailed); CATEGORY fields one-hot per option;
//! BOOLEAN fields as 0/1; every non-category field also gets a "missing"
//! indicator, with the value imputed by the training mean; inbound signals as
//! `ln(1 + count)`.

use serde::{Deserialize, Serialize};

use crate::UnixSeconds;
use crate::error::TrainError;
use crate::facts::LeadFacts;
use crate::model::{Catalog, Direction, FieldDef, FieldType};

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
            Feature::Rating { field } | Feature::Number { field } | Feature::Boolean { field } => {
                field.clone()
            }
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
    /// Features for `fields` (TEXT fields are skipped) and the inbound
    /// `signals` given by key.
    pub fn new(fields: &[FieldDef], signals: &[String]) -> Self {
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
                FieldType::Text => {}
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

/// Training options. Defaults: `l2` 1, `prior` 0.2, `prior_strength` 10,
/// `team_strength` 50, `max_iterations` 50.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainOptions {
    /// L2 penalty on the standardised coefficients, in units of log-likelihood
    /// (the penalty is `l2/2 · Σβ²`); larger shrinks more. Must be ≥ 0.
    pub l2: f64,
    /// Close rate (0–1, exclusive) assumed before any data.
    pub prior: f64,
    /// How many closed leads the prior is worth; must be ≥ 0.
    pub prior_strength: f64,
    /// For [`Predictor::train_team`]: penalty pulling a team's coefficients
    /// (and intercept) towards the tenant's, like `l2`; must be ≥ 0.
    pub team_strength: f64,
    /// Newton iterations at most.
    pub max_iterations: u32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            l2: 1.0,
            prior: 0.2,
            prior_strength: 10.0,
            team_strength: 50.0,
            max_iterations: 50,
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
        Ok(())
    }
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
    /// Newton iterations run.
    pub iterations: u32,
    /// Whether the fit converged (step below 1e-8).
    pub converged: bool,
    /// Brier score on the training leads (0 best, 0.25 a coin), or None without rows.
    pub brier: Option<f64>,
    /// ROC AUC on the training leads, or None with one class.
    pub auc: Option<f64>,
    /// The options used.
    pub options: TrainOptions,
    /// Whether it was shrunk towards a tenant model (a team's predictor).
    pub shrunk_to_parent: bool,
}

/// A feature's push on one lead's probability, for explanations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureEffect {
    /// The feature's readable name (see [`Feature::name`]).
    pub feature: String,
    /// The lead's raw value (NaN-free: missing values show the imputed mean).
    pub value: f64,
    /// Change in log-odds against an average lead; positive pushes the
    /// probability up.
    pub log_odds: f64,
}

/// A trained close-probability model; serialises to JSON for storage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Predictor {
    /// Format version.
    pub version: u32,
    /// Features, in column order.
    pub space: FeatureSpace,
    /// Training mean of each raw feature (used for missing values).
    pub means: Vec<f64>,
    /// Training standard deviation of each raw feature (1 when constant).
    pub scales: Vec<f64>,
    /// Coefficient per standardised feature.
    pub coefficients: Vec<f64>,
    /// Intercept: the log-odds of an average lead.
    pub intercept: f64,
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

impl Predictor {
    /// Trains on closed leads' facts: `closed` pairs each lead's facts (as they
    /// were before closing) with whether it was won.
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
        Self::train_rows(space, &rows, &labels, options, trained_at)
    }

    /// Trains on pre-encoded rows: `rows` holds `labels.len()` rows of
    /// `space.len()` raw values each, row after row.
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
        options.check()?;
        let p = space.len();
        check_rows(rows, labels.len(), p)?;
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
        Ok(Self::finish(
            space, means, scales, fit, rows, labels, options, trained_at, false,
        ))
    }

    /// Trains a team's predictor on the team's closed leads, shrunk towards
    /// this (the tenant's) predictor: its features and standardisation, with
    /// coefficients and intercept pulled towards the tenant's by
    /// `options.team_strength`. With few rows the result is nearly the tenant's.
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
        options.check()?;
        let p = self.space.len();
        check_rows(rows, labels.len(), p)?;
        let fit = fit_logistic(
            rows,
            labels,
            &self.means,
            &self.scales,
            &Penalty {
                l2: options.team_strength,
                centre: &self.coefficients,
                intercept_weight: options.team_strength,
                intercept_centre: self.intercept,
                intercept_is_pseudo_data: false,
            },
            options.max_iterations,
        );
        Ok(Self::finish(
            self.space.clone(),
            self.means.clone(),
            self.scales.clone(),
            fit,
            rows,
            labels,
            options,
            trained_at,
            true,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        space: FeatureSpace,
        means: Vec<f64>,
        scales: Vec<f64>,
        fit: Fit,
        rows: &[f64],
        labels: &[bool],
        options: TrainOptions,
        trained_at: UnixSeconds,
        shrunk_to_parent: bool,
    ) -> Self {
        let mut predictor = Self {
            version: 1,
            space,
            means,
            scales,
            coefficients: fit.beta,
            intercept: fit.intercept,
            metadata: TrainingMetadata::default(),
        };
        let p = predictor.space.len().max(1);
        let probs: Vec<f64> = rows
            .chunks(p)
            .take(labels.len())
            .map(|r| predictor.predict_row(r))
            .collect();
        let won = labels.iter().filter(|w| **w).count();
        predictor.metadata = TrainingMetadata {
            rows: labels.len(),
            won,
            lost: labels.len() - won,
            trained_at,
            iterations: fit.iterations,
            converged: fit.converged,
            brier: crate::evaluate::brier_score(&probs, labels),
            auc: crate::evaluate::roc_auc(&probs, labels),
            options,
            shrunk_to_parent,
        };
        predictor
    }

    /// A predictor that answers `prior` for every lead (before any training).
    pub fn prior_only(space: FeatureSpace, prior: f64, trained_at: UnixSeconds) -> Self {
        let p = space.len();
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
            version: 1,
            space,
            means: vec![0.0; p],
            scales: vec![1.0; p],
            coefficients: vec![0.0; p],
            intercept: logit(prior),
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
        sigmoid(self.log_odds_with(|j| {
            self.space
                .features
                .get(j)
                .map_or(f64::NAN, |f| f.value(facts))
        }))
    }

    /// Close probability (0–1) of a raw feature row (see [`FeatureSpace::encode`]).
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        sigmoid(self.log_odds_with(|j| row.get(j).copied().unwrap_or(f64::NAN)))
    }

    fn log_odds_with(&self, value: impl Fn(usize) -> f64) -> f64 {
        let mut z = self.intercept;
        for (j, ((b, m), s)) in self
            .coefficients
            .iter()
            .zip(&self.means)
            .zip(&self.scales)
            .enumerate()
        {
            z += b * standardise(value(j), *m, *s);
        }
        z
    }

    /// The features that pushed this lead's probability up and down most,
    /// against an average lead: up to `k` with positive and `k` with negative
    /// log-odds effects, strongest first.
    pub fn explain(&self, facts: &LeadFacts, k: usize) -> (Vec<FeatureEffect>, Vec<FeatureEffect>) {
        let mut effects: Vec<FeatureEffect> = self
            .space
            .features
            .iter()
            .zip(
                self.coefficients
                    .iter()
                    .zip(self.means.iter().zip(&self.scales)),
            )
            .map(|(f, (b, (m, s)))| {
                let raw = f.value(facts);
                let value = if raw.is_nan() { *m } else { raw };
                FeatureEffect {
                    feature: f.name(),
                    value,
                    log_odds: b * standardise(raw, *m, *s),
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

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
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

fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
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
