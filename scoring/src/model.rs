//! Model configuration: the JSON a tenant edits, its typed form, and validation.
//!
//! A [`ModelConfig`] serialises to exactly the contract's shape, so the server can
//! keep it in one JSON column and expose `dimensions`, `tiers` and `overrides`
//! directly:
//!
//! ```json
//! {"schemaVersion":1,
//!  "dimensions":[{"key":"budget","label":"Budget","kind":"RATING","weight":20.0,
//!                 "params":{"field":"budget"}}],
//!  "tiers":[{"key":"A","label":"Key","minScore":80.0,"followUpEveryDays":2.0}],
//!  "overrides":[{"kind":"URGENT_SIGNAL","params":{"withinDays":7.0}}]}
//! ```
//!
//! Unknown keys are refused everywhere, including inside `params`.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConfigError;

/// The configuration format this crate writes. Documents without a
/// `schemaVersion` are read as version 1.
pub const SCHEMA_VERSION: u32 = 1;

/// Largest window, in days, that FREQUENCY, MONETARY and CHURN_RISK may look back.
/// Activity state keeps daily buckets for this long after the newest activity.
pub const MAX_WINDOW_DAYS: u32 = 366;

/// Most tiers a model may have; keeps the queue priority within a GraphQL `Int`.
pub const MAX_TIERS: usize = 20;

// ---------------------------------------------------------------------------
// The tenant's catalog: lead fields and signal types that a model may refer to.
// ---------------------------------------------------------------------------

/// The tenant's lead fields and signal types, against which a model is validated
/// and compiled. Order matters: [`crate::ActivityState`] indexes signals by their
/// position in `signals`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// Lead field definitions.
    pub fields: Vec<FieldDef>,
    /// Signal type definitions.
    pub signals: Vec<SignalDef>,
    /// Keys of the tenant's pipeline stages, for `STAGE` rules.
    #[serde(default)]
    pub stages: Vec<String>,
}

impl Catalog {
    /// The field with `key`, if any.
    pub fn field(&self, key: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.key == key)
    }

    /// The position of the signal with `key` in `signals`, if any.
    pub fn signal_index(&self, key: &str) -> Option<usize> {
        self.signals.iter().position(|s| s.key == key)
    }
}

/// A typed lead field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDef {
    /// Field key, as used in lead attributes (`budget`).
    pub key: String,
    /// Value type.
    pub field_type: FieldType,
    /// Allowed values of a CATEGORY field; empty otherwise.
    #[serde(default)]
    pub options: Vec<String>,
}

/// Type of a lead field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FieldType {
    /// An integer rating from 1 (low) to 5 (high).
    Rating,
    /// One of the field's `options`.
    Category,
    /// Any finite number.
    Number,
    /// True or false.
    Boolean,
    /// Free text; never scored.
    Text,
    /// A calendar date, `YYYY-MM-DD` (a tender, a contract renewal).
    Date,
}

impl FieldType {
    /// The type's name as the contract spells it (`RATING`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Rating => "RATING",
            Self::Category => "CATEGORY",
            Self::Number => "NUMBER",
            Self::Boolean => "BOOLEAN",
            Self::Text => "TEXT",
            Self::Date => "DATE",
        }
    }
}

/// A behaviour signal type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalDef {
    /// Signal key (`website_visit`).
    pub key: String,
    /// Engagement points one occurrence is worth when fresh; negative for
    /// signals such as `complaint`.
    pub points: f64,
    /// Days after which an occurrence counts half; must be > 0.
    pub half_life_days: f64,
    /// Whether a recent occurrence forces the top tier (see `URGENT_SIGNAL`).
    pub urgent: bool,
    /// Who initiated it: the lead (inbound) or the sales rep (outbound).
    pub direction: Direction,
    /// Retired signals stay in the catalog for old activities but may not be
    /// named by new models.
    #[serde(default)]
    pub retired: bool,
}

/// Who initiated an activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    /// The lead reached out (a visit, an inquiry): counts for recency, frequency, cooling.
    Inbound,
    /// The sales rep reached out (a call, an email): resets the follow-up cadence.
    Outbound,
}

// ---------------------------------------------------------------------------
// The model configuration.
// ---------------------------------------------------------------------------

/// A tenant's (or team's) scoring model: weighted dimensions, tier thresholds and
/// override rules.
///
/// Build it from JSON with [`ModelConfig::from_json`] to get path-annotated errors,
/// check it against the tenant's catalog with [`ModelConfig::validate`], and turn it
/// into a fast scorer with [`ModelConfig::compile`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelConfig {
    /// Format version; [`SCHEMA_VERSION`] when absent.
    #[serde(default = "default_schema_version")]
    pub schema_version: u32,
    /// Weighted dimensions; weights are percentages summing to 100.
    pub dimensions: Vec<Dimension>,
    /// Tiers from the top (rank 0) down; `minScore` strictly decreasing, the last 0.
    pub tiers: Vec<Tier>,
    /// Override rules, applied in order after the thresholds; a later rule wins
    /// over an earlier one.
    #[serde(default)]
    pub overrides: Vec<OverrideRule>,
}

fn default_schema_version() -> u32 {
    SCHEMA_VERSION
}

/// The kind of a dimension; matches the contract's `DimensionKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DimensionKind {
    /// A RATING, CATEGORY, NUMBER or BOOLEAN lead field, mapped to 0–1.
    Rating,
    /// Share of BANT-style criteria met.
    Bant,
    /// Decayed signal points, saturating at a cap.
    Engagement,
    /// Days since the last inbound interaction: 1 today, 0 at the horizon.
    Recency,
    /// Inbound interactions within a window, saturating at a target.
    Frequency,
    /// Deal value or amounts within a window, log-scaled to a cap.
    Monetary,
    /// The stage's win probability or its position in the pipeline.
    Stage,
    /// The learned close probability.
    Predicted,
    /// How quickly the lead answers our contacts: median hours to a reply.
    Responsiveness,
    /// How close a DATE field is: 1 on the day, 0 at the horizon.
    DateProximity,
}

/// One weighted dimension of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawDimension", into = "RawDimension")]
pub struct Dimension {
    /// Unique key within the model (`budget`).
    pub key: String,
    /// Label shown in explanations.
    pub label: String,
    /// Weight in percent, 0–100; the model's weights sum to 100. A dimension
    /// contributes `weight × normalised` points.
    pub weight: f64,
    /// Kind-specific parameters; the kind is `params.kind()`.
    pub params: DimensionParams,
}

impl Dimension {
    /// The dimension's kind.
    pub fn kind(&self) -> DimensionKind {
        self.params.kind()
    }
}

/// Kind-specific dimension parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum DimensionParams {
    /// See [`RatingParams`].
    Rating(RatingParams),
    /// See [`BantParams`].
    Bant(BantParams),
    /// See [`EngagementParams`].
    Engagement(EngagementParams),
    /// See [`RecencyParams`].
    Recency(RecencyParams),
    /// See [`FrequencyParams`].
    Frequency(FrequencyParams),
    /// See [`MonetaryParams`].
    Monetary(MonetaryParams),
    /// See [`StageParams`].
    Stage(StageParams),
    /// See [`PredictedParams`].
    Predicted(PredictedParams),
    /// See [`ResponsivenessParams`].
    Responsiveness(ResponsivenessParams),
    /// See [`DateProximityParams`].
    DateProximity(DateProximityParams),
}

impl DimensionParams {
    /// The kind these parameters belong to.
    pub fn kind(&self) -> DimensionKind {
        match self {
            Self::Rating(_) => DimensionKind::Rating,
            Self::Bant(_) => DimensionKind::Bant,
            Self::Engagement(_) => DimensionKind::Engagement,
            Self::Recency(_) => DimensionKind::Recency,
            Self::Frequency(_) => DimensionKind::Frequency,
            Self::Monetary(_) => DimensionKind::Monetary,
            Self::Stage(_) => DimensionKind::Stage,
            Self::Predicted(_) => DimensionKind::Predicted,
            Self::Responsiveness(_) => DimensionKind::Responsiveness,
            Self::DateProximity(_) => DimensionKind::DateProximity,
        }
    }

    fn to_value(&self) -> Value {
        let v = match self {
            Self::Rating(p) => serde_json::to_value(p),
            Self::Bant(p) => serde_json::to_value(p),
            Self::Engagement(p) => serde_json::to_value(p),
            Self::Recency(p) => serde_json::to_value(p),
            Self::Frequency(p) => serde_json::to_value(p),
            Self::Monetary(p) => serde_json::to_value(p),
            Self::Stage(p) => serde_json::to_value(p),
            Self::Predicted(p) => serde_json::to_value(p),
            Self::Responsiveness(p) => serde_json::to_value(p),
            Self::DateProximity(p) => serde_json::to_value(p),
        };
        // Plain structs of numbers, strings and maps always serialise; Null is unreachable.
        v.unwrap_or(Value::Null)
    }

    fn from_value(kind: DimensionKind, params: Value) -> Result<Self, (String, String)> {
        let params = if params.is_null() {
            Value::Object(Default::default())
        } else {
            params
        };
        Ok(match kind {
            DimensionKind::Rating => Self::Rating(parse_at(params)?),
            DimensionKind::Bant => Self::Bant(parse_at(params)?),
            DimensionKind::Engagement => Self::Engagement(parse_at(params)?),
            DimensionKind::Recency => Self::Recency(parse_at(params)?),
            DimensionKind::Frequency => Self::Frequency(parse_at(params)?),
            DimensionKind::Monetary => Self::Monetary(parse_at(params)?),
            DimensionKind::Stage => Self::Stage(parse_at(params)?),
            DimensionKind::Predicted => Self::Predicted(parse_at(params)?),
            DimensionKind::Responsiveness => Self::Responsiveness(parse_at(params)?),
            DimensionKind::DateProximity => Self::DateProximity(parse_at(params)?),
        })
    }
}

/// RATING: one lead field mapped to 0–1.
///
/// * RATING field (1–5): `(rating − 1) / 4`, or through `breakpoints` when given.
/// * NUMBER field: through `breakpoints` (required), piecewise linear, flat outside.
/// * CATEGORY field: `values[option]` (required); options not in the table score 0.
/// * BOOLEAN field: 1 for true, 0 for false.
///
/// A lead without a value scores `missing` (default 0) and shows raw value 0.
/// A CATEGORY's raw value is its table value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RatingParams {
    /// Key of the lead field.
    pub field: String,
    /// CATEGORY only: option → normalised value in 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, f64>>,
    /// NUMBER or RATING: `[x, normalised]` points with x strictly increasing and
    /// normalised in 0–1; linear between points, flat outside.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakpoints: Option<Vec<[f64; 2]>>,
    /// Normalised value (0–1) for a lead without this field; 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<f64>,
}

/// BANT: the share of criteria met. Raw value is the count met; normalised is
/// count / number of criteria.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BantParams {
    /// The criteria, typically budget, authority, need and timeline rated ≥ 4.
    pub criteria: Vec<Criterion>,
}

/// One condition on a lead field.
///
/// RATING and NUMBER fields need `atLeast`; CATEGORY fields need `oneOf`;
/// BOOLEAN fields need neither and are met when true. A missing value is not met.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Criterion {
    /// Key of the lead field.
    pub field: String,
    /// Met when the value is ≥ this (RATING, NUMBER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
    /// Met when the value is one of these options (CATEGORY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<String>>,
}

/// ENGAGEMENT: the sum of signal points, each decayed by its signal's half-life,
/// saturating smoothly: `normalised = 1 − exp(−3 · max(0, points) / cap)`, so
/// 95% is reached at `cap` points and a flood of small signals cannot exceed 1.
/// Negative signals lower the sum. The raw value is the decayed points sum.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EngagementParams {
    /// Decayed points at which the dimension reaches 95%; must be > 0.
    pub cap: f64,
    /// Signal keys to count; all inbound signals when absent (and outbound ones
    /// too with `includeOutbound`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Vec<String>>,
    /// Count outbound signals as well when `signals` is absent. Default false:
    /// a rep's own calls say little about the lead's interest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_outbound: bool,
}

/// RECENCY: `1 − days_since_last_inbound / horizonDays`, clamped to 0–1; 0 when
/// the lead never reached out. Raw value is days since the last inbound activity,
/// or −1 when there was none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecencyParams {
    /// Days after which an interaction no longer counts as recent; must be > 0.
    pub horizon_days: f64,
}

/// FREQUENCY: inbound interactions in the last `windowDays` days (to the day),
/// `min(count / target, 1)`. Raw value is the count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FrequencyParams {
    /// Window length in whole days, 1 to [`MAX_WINDOW_DAYS`].
    pub window_days: u32,
    /// Interactions in the window that score 1; must be > 0.
    pub target: f64,
}

/// MONETARY: `ln(1 + value) / ln(1 + cap)`, clamped to 0–1. Raw value is the
/// money amount in the tenant's currency.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonetaryParams {
    /// Where the amount comes from.
    #[serde(default)]
    pub source: MonetarySource,
    /// AMOUNTS only: window in whole days, 1 to [`MAX_WINDOW_DAYS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u32>,
    /// Amount that scores 1; must be > 0.
    pub cap: f64,
}

/// Source of a MONETARY dimension's amount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MonetarySource {
    /// The lead's deal value.
    #[default]
    DealValue,
    /// Sum of activity amounts (purchases) within `windowDays` (RFM's M).
    Amounts,
}

/// STAGE: how far the lead is in its pipeline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StageParams {
    /// What to measure; the stage's win probability by default.
    #[serde(default)]
    pub basis: StageBasis,
}

/// What a STAGE dimension measures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StageBasis {
    /// The stage's configured win probability, 0–1.
    #[default]
    WinProbability,
    /// Position among the pipeline's stages: first 0, last 1.
    Position,
}

/// PREDICTED: the learned close probability (0–1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PredictedParams {
    /// Probability used while the lead has none; the stage's win probability
    /// when absent, so a new tenant's scores are meaningful before any training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<f64>,
}

/// RESPONSIVENESS: how quickly the lead answers our outbound contacts. The
/// raw value is the median hours from a contact in the last `windowDays`
/// days to the lead's next inbound activity (several contacts before one
/// reply count from the first; a contact still unanswered after
/// `targetHours` counts as answered now, so silence slows a lead down);
/// −1 when nothing was measured. Normalised `targetHours / (targetHours +
/// median)`: 1 for an instant reply, 0.5 at `targetHours`, ⅓ at twice it.
/// See [`crate::ActivityState::response_hours`]; it reads the latest
/// [`crate::decay::RECENT_CONTACTS`] inbound and outbound activities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponsivenessParams {
    /// Days back our contacts count, 1 to [`MAX_WINDOW_DAYS`]; default 90.
    #[serde(default = "default_responsiveness_window")]
    pub window_days: u32,
    /// Median reply time, in hours, that scores 0.5; must be > 0; default 24.
    #[serde(default = "default_target_hours")]
    pub target_hours: f64,
    /// Normalised value (0–1) for a lead never measured; 0 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<f64>,
}

impl Default for ResponsivenessParams {
    fn default() -> Self {
        Self {
            window_days: default_responsiveness_window(),
            target_hours: default_target_hours(),
            missing: None,
        }
    }
}

fn default_responsiveness_window() -> u32 {
    90
}

fn default_target_hours() -> f64 {
    24.0
}

/// DATE_PROXIMITY: how close the date in a DATE field is (a tender, a
/// contract renewal). The raw value is whole days from today to the date
/// (UTC days; negative once past). Normalised `1 − days / horizonDays`,
/// clamped to 0–1: 0 at the horizon or beyond, rising to 1 on the day.
/// A date that has passed scores 1 for `graceDays` more days (a renewal
/// just missed is still the most urgent call), then 0: the tender is over.
/// A lead without the date scores 0 and shows raw value 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DateProximityParams {
    /// Key of a DATE lead field.
    pub field: String,
    /// Days ahead at which the date starts to count; must be > 0.
    pub horizon_days: f64,
    /// Days after the date that it still scores 1; ≥ 0, default 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub grace_days: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// A score band; the model's tiers are listed from the top (rank 0) down.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tier {
    /// Unique tier key (`A`).
    pub key: String,
    /// Label shown to users (`Key account`).
    pub label: String,
    /// Lowest total score (0–100) in this tier.
    pub min_score: f64,
    /// Days between follow-ups for a lead in this tier; must be > 0.
    pub follow_up_every_days: f64,
    /// Hours within which a lead new to this tier (created in it, or just
    /// risen into it) is due for its first contact, when sooner than the
    /// cadence; none when absent. Must be > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_response_hours: Option<f64>,
}

/// An override rule: raises or caps the tier, or sets a flag, with a reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawOverride", into = "RawOverride")]
pub struct OverrideRule {
    /// The rule and its parameters.
    pub params: OverrideParams,
}

/// The override rules the engine knows, with their `kind` strings.
#[derive(Clone, Debug, PartialEq)]
pub enum OverrideParams {
    /// `URGENT_SIGNAL`: see [`UrgentSignalRule`].
    UrgentSignal(UrgentSignalRule),
    /// `BANT`: see [`BantRule`].
    Bant(BantRule),
    /// `COLD`: see [`ColdRule`].
    Cold(ColdRule),
    /// `STALE`: see [`StaleRule`].
    Stale(StaleRule),
    /// `CHURN_RISK`: see [`ChurnRiskRule`].
    ChurnRisk(ChurnRiskRule),
    /// `STAGE`: see [`StageRule`].
    Stage(StageRule),
    /// `BURST`: see [`BurstRule`].
    Burst(BurstRule),
}

/// The `kind` strings of override rules.
pub const OVERRIDE_KINDS: [&str; 7] = [
    "URGENT_SIGNAL",
    "BANT",
    "COLD",
    "STALE",
    "CHURN_RISK",
    "STAGE",
    "BURST",
];

impl OverrideParams {
    /// The rule's `kind` string, e.g. `URGENT_SIGNAL`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UrgentSignal(_) => "URGENT_SIGNAL",
            Self::Bant(_) => "BANT",
            Self::Cold(_) => "COLD",
            Self::Stale(_) => "STALE",
            Self::ChurnRisk(_) => "CHURN_RISK",
            Self::Stage(_) => "STAGE",
            Self::Burst(_) => "BURST",
        }
    }

    fn to_value(&self) -> Value {
        let v = match self {
            Self::UrgentSignal(p) => serde_json::to_value(p),
            Self::Bant(p) => serde_json::to_value(p),
            Self::Cold(p) => serde_json::to_value(p),
            Self::Stale(p) => serde_json::to_value(p),
            Self::ChurnRisk(p) => serde_json::to_value(p),
            Self::Stage(p) => serde_json::to_value(p),
            Self::Burst(p) => serde_json::to_value(p),
        };
        v.unwrap_or(Value::Null)
    }

    fn from_value(kind: &str, params: Value) -> Result<Self, (String, String)> {
        let params = if params.is_null() {
            Value::Object(Default::default())
        } else {
            params
        };
        Ok(match kind {
            "URGENT_SIGNAL" => Self::UrgentSignal(parse_at(params)?),
            "BANT" => Self::Bant(parse_at(params)?),
            "COLD" => Self::Cold(parse_at(params)?),
            "STALE" => Self::Stale(parse_at(params)?),
            "CHURN_RISK" => Self::ChurnRisk(parse_at(params)?),
            "STAGE" => Self::Stage(parse_at(params)?),
            "BURST" => Self::Burst(parse_at(params)?),
            other => {
                return Err((
                    "kind".into(),
                    format!(
                        "unknown override kind `{other}`; expected one of {}",
                        OVERRIDE_KINDS.join(", ")
                    ),
                ));
            }
        })
    }
}

/// `URGENT_SIGNAL`: an urgent signal within the last `withinDays` days raises the
/// lead to at least `tier` (the top tier by default) and sets the URGENT flag.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrgentSignalRule {
    /// Window in days; must be > 0.
    pub within_days: f64,
    /// Tier key to raise to; the top tier when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Signal keys that count; every signal marked urgent in the catalog when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<Vec<String>>,
}

/// `BANT`: at least `atLeast` of `criteria` met raises the lead to at least `tier`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BantRule {
    /// The criteria, as in a BANT dimension.
    pub criteria: Vec<Criterion>,
    /// How many must be met; 1 to the number of criteria.
    pub at_least: u32,
    /// Tier key to raise to.
    pub tier: String,
}

/// `COLD`: no inbound activity for `noInboundDays` days (counted from creation
/// when there was none) sets the COLD flag, caps the tier at `atMostTier` and,
/// when given, slows follow-ups to every `followUpEveryDays` days.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ColdRule {
    /// Days of inbound silence; must be > 0.
    pub no_inbound_days: f64,
    /// Tier key the lead may not rise above while cold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most_tier: Option<String>,
    /// Cadence for cold leads in days, replacing the tier's when slower.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_every_days: Option<f64>,
}

/// `STALE`: an open lead idle in its stage longer than the stage's rotting days
/// gets the STALE flag, and is capped at `atMostTier` when given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaleRule {
    /// Optional cap while stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most_tier: Option<String>,
}

/// `CHURN_RISK`: an existing customer drifting away, by three named causes,
/// each with its own window and threshold and each switchable on and off:
///
/// * interaction frequency falling: inbound interactions in the last
///   `windowDays` below `belowFraction` × those in the window before, when
///   the earlier window had at least `minPrevious` (on unless
///   `interactions` is `false`);
/// * complaints rising: see [`ComplaintsCause`] (off when absent);
/// * order amounts falling: see [`OrderAmountsCause`] (off when absent).
///
/// Any cause sets the CHURN_RISK flag; the explanation has one entry per
/// cause that fired, its reason naming the cause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChurnRiskRule {
    /// Window in whole days; twice this must not exceed [`MAX_WINDOW_DAYS`].
    pub window_days: u32,
    /// Fraction in (0, 1].
    pub below_fraction: f64,
    /// Interactions the earlier window needs before a drop means anything; default 2.
    #[serde(default = "default_min_previous")]
    pub min_previous: u32,
    /// Optional cap while at risk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most_tier: Option<String>,
    /// Whether falling interaction frequency is a cause; default `true`.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub interactions: bool,
    /// Complaints rising; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complaints: Option<ComplaintsCause>,
    /// Order amounts falling; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_amounts: Option<OrderAmountsCause>,
}

impl Default for ChurnRiskRule {
    fn default() -> Self {
        Self {
            window_days: 30,
            below_fraction: 0.5,
            min_previous: default_min_previous(),
            at_most_tier: None,
            interactions: true,
            complaints: None,
            order_amounts: None,
        }
    }
}

/// CHURN_RISK's cause "complaints rising": at least `atLeast` activities of
/// negative signals (a complaint, a no-show: signals with points below 0)
/// in the last `windowDays`, and more than in the window before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComplaintsCause {
    /// Window in whole days; twice this must not exceed [`MAX_WINDOW_DAYS`].
    pub window_days: u32,
    /// Complaints the last window needs; at least 1, default 2.
    #[serde(default = "default_min_previous")]
    pub at_least: u32,
}

/// CHURN_RISK's cause "order amounts falling": the amounts of purchase
/// activities in the last `windowDays` below `belowFraction` × those in the
/// window before, when the earlier window's amounts reached `minPrevious`
/// (money, default 0.01: any order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderAmountsCause {
    /// Window in whole days; twice this must not exceed [`MAX_WINDOW_DAYS`].
    pub window_days: u32,
    /// Fraction in (0, 1].
    pub below_fraction: f64,
    /// Amount the earlier window needs before a drop means anything; > 0.
    #[serde(default = "default_min_amount")]
    pub min_previous: f64,
}

fn default_true() -> bool {
    true
}

fn is_true(v: &bool) -> bool {
    *v
}

fn default_min_amount() -> f64 {
    0.01
}

fn default_min_previous() -> u32 {
    2
}

/// `STAGE`: a lead in one of `stages` is raised to at least `tier`: the
/// later stages of a deal are the urgent ones (contract negotiation ⇒ A).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StageRule {
    /// Stage keys, of any of the tenant's pipelines; at least one.
    pub stages: Vec<String>,
    /// Tier key to raise to.
    pub tier: String,
}

/// `BURST`: at least `atLeast` inbound activities within the last
/// `withinDays` days raise the lead to at least `tier` at once, so a quiet
/// lead that suddenly engages is not left in a low tier until its score
/// catches up. Signals worth negative points (a complaint) do not count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BurstRule {
    /// Inbound activities needed, 1 to [`crate::decay::RECENT_CONTACTS`].
    pub at_least: i64,
    /// Window in days, counted back from now; must be > 0.
    pub within_days: f64,
    /// Tier key to raise to.
    pub tier: String,
}

// ---------------------------------------------------------------------------
// Raw (wire) shapes: kind + untyped params, converted with field paths.
// ---------------------------------------------------------------------------

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawDimension {
    key: String,
    label: String,
    kind: DimensionKind,
    weight: f64,
    #[serde(default)]
    params: Value,
}

impl From<Dimension> for RawDimension {
    fn from(d: Dimension) -> Self {
        Self {
            kind: d.kind(),
            params: d.params.to_value(),
            key: d.key,
            label: d.label,
            weight: d.weight,
        }
    }
}

impl TryFrom<RawDimension> for Dimension {
    type Error = String;
    fn try_from(r: RawDimension) -> Result<Self, String> {
        let params = DimensionParams::from_value(r.kind, r.params)
            .map_err(|(path, msg)| join_msg("params", &path, &msg))?;
        Ok(Self {
            key: r.key,
            label: r.label,
            weight: r.weight,
            params,
        })
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawOverride {
    kind: String,
    #[serde(default)]
    params: Value,
}

impl From<OverrideRule> for RawOverride {
    fn from(o: OverrideRule) -> Self {
        Self {
            kind: o.params.kind().into(),
            params: o.params.to_value(),
        }
    }
}

impl TryFrom<RawOverride> for OverrideRule {
    type Error = String;
    fn try_from(r: RawOverride) -> Result<Self, String> {
        let params = OverrideParams::from_value(&r.kind, r.params).map_err(|(path, msg)| {
            if path == "kind" {
                msg
            } else {
                join_msg("params", &path, &msg)
            }
        })?;
        Ok(Self { params })
    }
}

fn join_msg(prefix: &str, path: &str, msg: &str) -> String {
    format!("{}: {msg}", join_path(prefix, path))
}

fn join_path(prefix: &str, path: &str) -> String {
    if path.is_empty() || path == "." {
        prefix.to_string()
    } else if path.starts_with('[') {
        format!("{prefix}{path}")
    } else if prefix.is_empty() {
        path.to_string()
    } else {
        format!("{prefix}.{path}")
    }
}

/// Deserialises `value`, returning the path inside it and a message on failure.
fn parse_at<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, humanise_serde(&e.inner().to_string()))
    })
}

fn humanise_serde(msg: &str) -> String {
    msg.replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
}

// ---------------------------------------------------------------------------
// Parsing with paths, and validation.
// ---------------------------------------------------------------------------

impl ModelConfig {
    /// Parses a configuration from JSON, reporting every structural problem
    /// (unknown keys, missing keys, wrong types, unknown kinds) with its path,
    /// e.g. `dimensions[2].params.field`. It does not check references to the
    /// tenant's fields and signals: call [`ModelConfig::validate`] for that.
    ///
    /// The server can assemble the value from the contract's separate inputs:
    /// `json!({"dimensions": dims, "tiers": tiers, "overrides": overrides})`,
    /// where a `null` or missing `params` means "all defaults".
    ///
    /// # Errors
    ///
    /// Every problem found, each with a path and a message.
    pub fn from_json(value: &Value) -> Result<ModelConfig, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let Some(obj) = value.as_object() else {
            return Err(vec![ConfigError::new(
                "",
                "a model configuration must be a JSON object",
            )]);
        };
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "schemaVersion" | "dimensions" | "tiers" | "overrides"
            ) {
                errors.push(ConfigError::new(
                    key.clone(),
                    "unknown key; expected schemaVersion, dimensions, tiers or overrides",
                ));
            }
        }
        let schema_version = match obj.get("schemaVersion") {
            None | Some(Value::Null) => SCHEMA_VERSION,
            Some(v) => match v.as_u64() {
                Some(n) if n == u64::from(SCHEMA_VERSION) => SCHEMA_VERSION,
                _ => {
                    errors.push(ConfigError::new(
                        "schemaVersion",
                        format!(
                            "unsupported schema version {v}; this server reads {SCHEMA_VERSION}"
                        ),
                    ));
                    SCHEMA_VERSION
                }
            },
        };
        let dimensions = parse_list(
            obj.get("dimensions"),
            "dimensions",
            true,
            &mut errors,
            |v| {
                let raw: RawDimension = parse_at(v)?;
                let params = DimensionParams::from_value(raw.kind, raw.params)
                    .map_err(|(p, m)| (join_path("params", &p), m))?;
                Ok(Dimension {
                    key: raw.key,
                    label: raw.label,
                    weight: raw.weight,
                    params,
                })
            },
        );
        let tiers = parse_list(obj.get("tiers"), "tiers", true, &mut errors, parse_at);
        let overrides = parse_list(obj.get("overrides"), "overrides", false, &mut errors, |v| {
            let raw: RawOverride = parse_at(v)?;
            let params = OverrideParams::from_value(&raw.kind, raw.params).map_err(|(p, m)| {
                if p == "kind" {
                    (p, m)
                } else {
                    (join_path("params", &p), m)
                }
            })?;
            Ok(OverrideRule { params })
        });
        if errors.is_empty() {
            Ok(ModelConfig {
                schema_version,
                dimensions,
                tiers,
                overrides,
            })
        } else {
            Err(errors)
        }
    }

    /// Parses with [`ModelConfig::from_json`], then validates against `catalog`.
    ///
    /// # Errors
    ///
    /// Every structural problem, or else every validation problem, with paths.
    pub fn parse(value: &Value, catalog: &Catalog) -> Result<ModelConfig, Vec<ConfigError>> {
        let config = Self::from_json(value)?;
        config.validate(catalog)?;
        Ok(config)
    }

    /// The configuration as JSON, in the contract's shape.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Checks the configuration against the tenant's fields and signals:
    /// weights in 0–100 summing to 100, finite numbers, tiers strictly ordered
    /// with unique keys and the lowest at 0, positive half-lives, windows and
    /// caps, and references to fields, signals and tiers that exist.
    ///
    /// # Errors
    ///
    /// Every problem found, each with a path such as `dimensions[2].weight`.
    pub fn validate(&self, catalog: &Catalog) -> Result<(), Vec<ConfigError>> {
        let mut v = Validator {
            catalog,
            errors: Vec::new(),
        };
        v.config(self);
        if v.errors.is_empty() {
            Ok(())
        } else {
            Err(v.errors)
        }
    }

    /// Rank (0 = top) of the tier with `key`, if the model has it.
    pub fn tier_rank(&self, key: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.key == key)
    }
}

fn parse_list<T>(
    value: Option<&Value>,
    name: &str,
    required: bool,
    errors: &mut Vec<ConfigError>,
    mut parse: impl FnMut(Value) -> Result<T, (String, String)>,
) -> Vec<T> {
    let items = match value {
        None | Some(Value::Null) => {
            if required {
                errors.push(ConfigError::new(name, "missing; a model needs this list"));
            }
            return Vec::new();
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(ConfigError::new(name, "must be a list"));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match parse(item.clone()) {
            Ok(t) => out.push(t),
            Err((path, msg)) => errors.push(ConfigError::new(
                join_path(&format!("{name}[{i}]"), &path),
                msg,
            )),
        }
    }
    out
}

struct Validator<'a> {
    catalog: &'a Catalog,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn err(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(ConfigError::new(path, msg));
    }

    fn config(&mut self, c: &ModelConfig) {
        if c.schema_version != SCHEMA_VERSION {
            self.err(
                "schemaVersion",
                format!(
                    "unsupported schema version {}; this server reads {SCHEMA_VERSION}",
                    c.schema_version
                ),
            );
        }
        self.dimensions(&c.dimensions);
        self.tiers(&c.tiers);
        let tier_keys: Vec<&str> = c.tiers.iter().map(|t| t.key.as_str()).collect();
        for (i, rule) in c.overrides.iter().enumerate() {
            self.override_rule(&format!("overrides[{i}].params"), &rule.params, &tier_keys);
        }
    }

    fn dimensions(&mut self, dims: &[Dimension]) {
        if dims.is_empty() {
            self.err("dimensions", "a model needs at least one dimension");
            return;
        }
        let mut keys = HashSet::new();
        let mut sum = 0.0;
        let mut all_finite = true;
        for (i, d) in dims.iter().enumerate() {
            let p = format!("dimensions[{i}]");
            if d.key.trim().is_empty() {
                self.err(format!("{p}.key"), "must not be empty");
            } else if !keys.insert(d.key.as_str()) {
                self.err(
                    format!("{p}.key"),
                    format!("duplicate dimension key `{}`", d.key),
                );
            }
            if !d.weight.is_finite() {
                all_finite = false;
                self.err(format!("{p}.weight"), "must be a finite number");
            } else if !(0.0..=100.0).contains(&d.weight) {
                self.err(
                    format!("{p}.weight"),
                    format!("must be between 0 and 100, got {}", d.weight),
                );
            }
            sum += d.weight;
            self.dimension_params(&format!("{p}.params"), &d.params);
        }
        if all_finite && (sum - 100.0).abs() > 1e-6 {
            self.err(
                "dimensions",
                format!("weights must sum to 100, got {}", round_for_message(sum)),
            );
        }
    }

    fn dimension_params(&mut self, p: &str, params: &DimensionParams) {
        match params {
            DimensionParams::Rating(r) => self.rating(p, r),
            DimensionParams::Bant(b) => {
                if b.criteria.is_empty() {
                    self.err(format!("{p}.criteria"), "needs at least one criterion");
                }
                for (i, c) in b.criteria.iter().enumerate() {
                    self.criterion(&format!("{p}.criteria[{i}]"), c);
                }
            }
            DimensionParams::Engagement(e) => {
                self.positive(&format!("{p}.cap"), e.cap);
                if let Some(signals) = &e.signals {
                    self.signal_list(&format!("{p}.signals"), signals);
                }
            }
            DimensionParams::Recency(r) => {
                self.positive(&format!("{p}.horizonDays"), r.horizon_days);
            }
            DimensionParams::Frequency(f) => {
                self.window(&format!("{p}.windowDays"), f.window_days, 1);
                self.positive(&format!("{p}.target"), f.target);
            }
            DimensionParams::Monetary(m) => {
                self.positive(&format!("{p}.cap"), m.cap);
                match (m.source, m.window_days) {
                    (MonetarySource::Amounts, Some(w)) => {
                        self.window(&format!("{p}.windowDays"), w, 1)
                    }
                    (MonetarySource::Amounts, None) => {
                        self.err(format!("{p}.windowDays"), "required when source is AMOUNTS")
                    }
                    (MonetarySource::DealValue, Some(_)) => self.err(
                        format!("{p}.windowDays"),
                        "only applies when source is AMOUNTS",
                    ),
                    (MonetarySource::DealValue, None) => {}
                }
            }
            DimensionParams::Stage(_) => {}
            DimensionParams::Predicted(pr) => {
                if let Some(f) = pr.fallback {
                    self.unit(&format!("{p}.fallback"), f);
                }
            }
            DimensionParams::Responsiveness(r) => {
                self.window(&format!("{p}.windowDays"), r.window_days, 1);
                self.positive(&format!("{p}.targetHours"), r.target_hours);
                if let Some(m) = r.missing {
                    self.unit(&format!("{p}.missing"), m);
                }
            }
            DimensionParams::DateProximity(d) => {
                self.positive(&format!("{p}.horizonDays"), d.horizon_days);
                if !(d.grace_days.is_finite() && d.grace_days >= 0.0) {
                    self.err(
                        format!("{p}.graceDays"),
                        format!("must be 0 or more days, got {}", d.grace_days),
                    );
                }
                if let Some(field) = self.field(&format!("{p}.field"), &d.field)
                    && field.field_type != FieldType::Date
                {
                    let t = field.field_type.name();
                    self.err(
                        format!("{p}.field"),
                        format!(
                            "field `{}` is {t}; DATE_PROXIMITY needs a DATE field",
                            d.field
                        ),
                    );
                }
            }
        }
    }

    fn rating(&mut self, p: &str, r: &RatingParams) {
        if let Some(m) = r.missing {
            self.unit(&format!("{p}.missing"), m);
        }
        let Some(field) = self.field(&format!("{p}.field"), &r.field) else {
            return;
        };
        let field_type = field.field_type;
        let options = field.options.clone();
        match field_type {
            FieldType::Text => self.err(
                format!("{p}.field"),
                format!("field `{}` is TEXT and cannot be scored", r.field),
            ),
            FieldType::Date => self.err(
                format!("{p}.field"),
                format!(
                    "field `{}` is a DATE: score it with a DATE_PROXIMITY dimension",
                    r.field
                ),
            ),
            FieldType::Category => {
                if r.breakpoints.is_some() {
                    self.err(
                        format!("{p}.breakpoints"),
                        "only applies to RATING and NUMBER fields; use values for a CATEGORY field",
                    );
                }
                match &r.values {
                    None => self.err(
                        format!("{p}.values"),
                        format!(
                            "field `{}` is a CATEGORY: give a value from 0 to 1 for its options",
                            r.field
                        ),
                    ),
                    Some(values) => {
                        for (option, value) in values {
                            let vp = format!("{p}.values.{option}");
                            if !options.iter().any(|o| o == option) {
                                self.err(
                                    vp.clone(),
                                    format!(
                                        "`{option}` is not an option of field `{}` (options: {})",
                                        r.field,
                                        options.join(", ")
                                    ),
                                );
                            }
                            self.unit(&vp, *value);
                        }
                    }
                }
            }
            FieldType::Rating | FieldType::Number | FieldType::Boolean => {
                if r.values.is_some() {
                    self.err(format!("{p}.values"), "only applies to CATEGORY fields");
                }
                match (&r.breakpoints, field_type) {
                    (Some(_), FieldType::Boolean) => self.err(
                        format!("{p}.breakpoints"),
                        "does not apply to a BOOLEAN field",
                    ),
                    (Some(bp), _) => self.breakpoints(&format!("{p}.breakpoints"), bp),
                    (None, FieldType::Number) => self.err(
                        format!("{p}.breakpoints"),
                        format!(
                            "field `{}` is a NUMBER: give breakpoints [[x, normalised], …] to map it to 0–1",
                            r.field
                        ),
                    ),
                    (None, _) => {}
                }
            }
        }
    }

    fn breakpoints(&mut self, p: &str, bp: &[[f64; 2]]) {
        if bp.len() < 2 {
            self.err(p, "needs at least two points");
        }
        for (i, [x, y]) in bp.iter().enumerate() {
            if !x.is_finite() {
                self.err(format!("{p}[{i}][0]"), "must be a finite number");
            }
            self.unit(&format!("{p}[{i}][1]"), *y);
            if i > 0 && bp.get(i - 1).is_some_and(|prev| prev[0] >= *x) {
                self.err(
                    format!("{p}[{i}][0]"),
                    "x values must be strictly increasing",
                );
            }
        }
    }

    fn criterion(&mut self, p: &str, c: &Criterion) {
        let Some(field) = self.field(&format!("{p}.field"), &c.field) else {
            return;
        };
        let field_type = field.field_type;
        let options = field.options.clone();
        match field_type {
            FieldType::Rating | FieldType::Number => {
                match c.at_least {
                    Some(v) if !v.is_finite() => {
                        self.err(format!("{p}.atLeast"), "must be a finite number")
                    }
                    Some(_) => {}
                    None => self.err(
                        format!("{p}.atLeast"),
                        format!("required for {} field `{}`", field_type.name(), c.field),
                    ),
                }
                if c.one_of.is_some() {
                    self.err(format!("{p}.oneOf"), "only applies to CATEGORY fields");
                }
            }
            FieldType::Category => {
                if c.at_least.is_some() {
                    self.err(
                        format!("{p}.atLeast"),
                        "only applies to RATING and NUMBER fields",
                    );
                }
                match &c.one_of {
                    None => self.err(
                        format!("{p}.oneOf"),
                        format!("required for CATEGORY field `{}`", c.field),
                    ),
                    Some(list) if list.is_empty() => {
                        self.err(format!("{p}.oneOf"), "needs at least one option")
                    }
                    Some(list) => {
                        for (i, o) in list.iter().enumerate() {
                            if !options.contains(o) {
                                self.err(
                                    format!("{p}.oneOf[{i}]"),
                                    format!("`{o}` is not an option of field `{}`", c.field),
                                );
                            }
                        }
                    }
                }
            }
            FieldType::Boolean => {
                if c.at_least.is_some() || c.one_of.is_some() {
                    self.err(
                        p,
                        "a BOOLEAN criterion is met when the field is true; remove atLeast and oneOf",
                    );
                }
            }
            FieldType::Text | FieldType::Date => self.err(
                format!("{p}.field"),
                format!(
                    "field `{}` is {} and cannot be a criterion",
                    c.field,
                    field_type.name()
                ),
            ),
        }
    }

    fn field(&mut self, p: &str, key: &str) -> Option<&FieldDef> {
        let catalog = self.catalog;
        match catalog.field(key) {
            Some(f) => Some(f),
            None => {
                self.err(p, format!("unknown lead field `{key}`"));
                None
            }
        }
    }

    fn signal_list(&mut self, p: &str, keys: &[String]) {
        if keys.is_empty() {
            self.err(p, "needs at least one signal; leave it out to count all");
        }
        for (i, key) in keys.iter().enumerate() {
            match self.catalog.signals.iter().find(|s| &s.key == key) {
                None => self.err(format!("{p}[{i}]"), format!("unknown signal `{key}`")),
                Some(s) if s.retired => {
                    self.err(format!("{p}[{i}]"), format!("signal `{key}` is retired"))
                }
                Some(s) if !(s.half_life_days.is_finite() && s.half_life_days > 0.0) => self.err(
                    format!("{p}[{i}]"),
                    format!(
                        "signal `{key}` has half-life {} days; it must be > 0",
                        s.half_life_days
                    ),
                ),
                Some(_) => {}
            }
        }
    }

    fn tiers(&mut self, tiers: &[Tier]) {
        if tiers.is_empty() {
            self.err("tiers", "a model needs at least one tier");
            return;
        }
        if tiers.len() > MAX_TIERS {
            self.err(
                "tiers",
                format!("at most {MAX_TIERS} tiers, got {}", tiers.len()),
            );
        }
        let mut keys = HashSet::new();
        for (i, t) in tiers.iter().enumerate() {
            let p = format!("tiers[{i}]");
            if t.key.trim().is_empty() {
                self.err(format!("{p}.key"), "must not be empty");
            } else if !keys.insert(t.key.as_str()) {
                self.err(
                    format!("{p}.key"),
                    format!("duplicate tier key `{}`", t.key),
                );
            }
            if !t.min_score.is_finite() {
                self.err(format!("{p}.minScore"), "must be a finite number");
            } else if !(0.0..=100.0).contains(&t.min_score) {
                self.err(
                    format!("{p}.minScore"),
                    format!("must be between 0 and 100, got {}", t.min_score),
                );
            } else if let Some(prev) = i.checked_sub(1).and_then(|j| tiers.get(j))
                && prev.min_score.is_finite()
                && t.min_score >= prev.min_score
            {
                self.err(
                    format!("{p}.minScore"),
                    format!(
                        "tiers go from the top down: {} must be below tier `{}`'s {}",
                        t.min_score, prev.key, prev.min_score
                    ),
                );
            }
            self.positive(&format!("{p}.followUpEveryDays"), t.follow_up_every_days);
            if let Some(hours) = t.first_response_hours {
                self.positive(&format!("{p}.firstResponseHours"), hours);
            }
        }
        if let Some(last) = tiers.last()
            && last.min_score.is_finite()
            && last.min_score != 0.0
        {
            self.err(
                format!("tiers[{}].minScore", tiers.len() - 1),
                format!(
                    "the lowest tier must start at 0 so every score has a tier, got {}",
                    last.min_score
                ),
            );
        }
    }

    fn tier_ref(&mut self, p: &str, key: &str, tiers: &[&str]) {
        if !tiers.contains(&key) {
            self.err(
                p,
                format!("unknown tier `{key}` (tiers: {})", tiers.join(", ")),
            );
        }
    }

    fn override_rule(&mut self, p: &str, rule: &OverrideParams, tiers: &[&str]) {
        match rule {
            OverrideParams::UrgentSignal(r) => {
                self.positive(&format!("{p}.withinDays"), r.within_days);
                if let Some(t) = &r.tier {
                    self.tier_ref(&format!("{p}.tier"), t, tiers);
                }
                if let Some(signals) = &r.signals {
                    self.signal_list(&format!("{p}.signals"), signals);
                }
            }
            OverrideParams::Bant(r) => {
                if r.criteria.is_empty() {
                    self.err(format!("{p}.criteria"), "needs at least one criterion");
                }
                for (i, c) in r.criteria.iter().enumerate() {
                    self.criterion(&format!("{p}.criteria[{i}]"), c);
                }
                if r.at_least == 0 || r.at_least as usize > r.criteria.len() {
                    self.err(
                        format!("{p}.atLeast"),
                        format!(
                            "must be between 1 and the number of criteria ({}), got {}",
                            r.criteria.len(),
                            r.at_least
                        ),
                    );
                }
                self.tier_ref(&format!("{p}.tier"), &r.tier, tiers);
            }
            OverrideParams::Cold(r) => {
                self.positive(&format!("{p}.noInboundDays"), r.no_inbound_days);
                if let Some(t) = &r.at_most_tier {
                    self.tier_ref(&format!("{p}.atMostTier"), t, tiers);
                }
                if let Some(d) = r.follow_up_every_days {
                    self.positive(&format!("{p}.followUpEveryDays"), d);
                }
            }
            OverrideParams::Stale(r) => {
                if let Some(t) = &r.at_most_tier {
                    self.tier_ref(&format!("{p}.atMostTier"), t, tiers);
                }
            }
            OverrideParams::Stage(r) => {
                if r.stages.is_empty() {
                    self.err(format!("{p}.stages"), "needs at least one stage key");
                }
                for (i, key) in r.stages.iter().enumerate() {
                    if !self.catalog.stages.contains(key) {
                        self.err(
                            format!("{p}.stages[{i}]"),
                            format!(
                                "unknown stage `{key}` (stages: {})",
                                self.catalog.stages.join(", ")
                            ),
                        );
                    }
                }
                self.tier_ref(&format!("{p}.tier"), &r.tier, tiers);
            }
            OverrideParams::Burst(r) => {
                let most = crate::decay::RECENT_CONTACTS;
                if r.at_least <= 0 || r.at_least > most as i64 {
                    self.err(
                        format!("{p}.atLeast"),
                        format!("must be between 1 and {most}, got {}", r.at_least),
                    );
                }
                self.positive(&format!("{p}.withinDays"), r.within_days);
                self.tier_ref(&format!("{p}.tier"), &r.tier, tiers);
            }
            OverrideParams::ChurnRisk(r) => {
                self.window(&format!("{p}.windowDays"), r.window_days, 2);
                self.fraction(&format!("{p}.belowFraction"), r.below_fraction);
                if let Some(t) = &r.at_most_tier {
                    self.tier_ref(&format!("{p}.atMostTier"), t, tiers);
                }
                if let Some(c) = &r.complaints {
                    self.window(&format!("{p}.complaints.windowDays"), c.window_days, 2);
                    if c.at_least == 0 {
                        self.err(format!("{p}.complaints.atLeast"), "must be at least 1");
                    }
                }
                if let Some(o) = &r.order_amounts {
                    self.window(&format!("{p}.orderAmounts.windowDays"), o.window_days, 2);
                    self.fraction(&format!("{p}.orderAmounts.belowFraction"), o.below_fraction);
                    self.positive(&format!("{p}.orderAmounts.minPrevious"), o.min_previous);
                }
            }
        }
    }

    fn positive(&mut self, p: &str, v: f64) {
        if !v.is_finite() {
            self.err(p, "must be a finite number");
        } else if v <= 0.0 {
            self.err(p, format!("must be greater than 0, got {v}"));
        }
    }

    fn fraction(&mut self, p: &str, v: f64) {
        if !(v.is_finite() && v > 0.0 && v <= 1.0) {
            self.err(p, format!("must be above 0 and at most 1, got {v}"));
        }
    }

    fn unit(&mut self, p: &str, v: f64) {
        if !v.is_finite() {
            self.err(p, "must be a finite number");
        } else if !(0.0..=1.0).contains(&v) {
            self.err(p, format!("must be between 0 and 1, got {v}"));
        }
    }

    fn window(&mut self, p: &str, days: u32, multiple: u32) {
        if days == 0 || days.saturating_mul(multiple) > MAX_WINDOW_DAYS {
            self.err(
                p,
                format!(
                    "must be between 1 and {} days, got {days}",
                    MAX_WINDOW_DAYS / multiple
                ),
            );
        }
    }
}

fn round_for_message(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}
