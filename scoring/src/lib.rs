//! Pure, explainable lead scoring for LeadRank.
//!
//! This crate turns a tenant's model configuration and a lead's facts into a
//! score from 0 to 100, a tier, flags, a next follow-up date, a queue priority
//! and an explanation. It has no database, no async and no clock: `now` is
//! always an argument, in Unix seconds ([`UnixSeconds`]). Every model the
//! domain uses — the demand radar, BANT, behaviour signals with urgency and
//! cooling, RFM, stage urgency, the SaaS and medical-device weightings — is
//! configuration of one engine.
//!
//! # The pieces
//!
//! * [`ModelConfig`]: weighted [`Dimension`]s, [`Tier`]s and [`OverrideRule`]s,
//!   in the contract's JSON shape. [`ModelConfig::from_json`] parses with field
//!   paths (`dimensions[2].params.field`); [`ModelConfig::validate`] checks it
//!   against the tenant's [`Catalog`] of fields and signals;
//!   [`ModelConfig::compile`] does both and resolves every key once.
//! * [`templates`]: the SPEC's general default, SaaS and medical-device
//!   models, and the default catalog of a new tenant.
//! * [`LeadFacts`]: what the engine reads about a lead: attributes, deal value,
//!   stage, creation time, predicted close probability, and the
//!   [`ActivityState`] the server keeps on the lead row and updates with one
//!   [`ActivityState::record`] per activity (any order, O(1) for the decay).
//! * [`CompiledModel::score`]: one lead's [`Scorecard`] with every
//!   contribution, applied override and flag. [`LeadBatch`] with
//!   [`CompiledModel::score_batch`] / [`CompiledModel::explain_batch`]: many
//!   leads at once, for the nightly job and previews.
//! * [`predictor::Predictor`]: the learned close probability (regularised
//!   logistic regression with a prior, per tenant and per team).
//! * [`evaluate`]: AUC, Brier, won-rate and lift per tier, and the comparison
//!   of two models for the preview.
//!
//! # Dimension kinds
//!
//! | kind | reads | normalised (0–1) |
//! |---|---|---|
//! | RATING | a RATING, CATEGORY, NUMBER or BOOLEAN field | `(r−1)/4`, a value table, breakpoints, 0/1 |
//! | BANT | criteria on fields | criteria met / criteria |
//! | ENGAGEMENT | signal points, each decayed by its half-life | `1 − e^(−3·points/cap)` |
//! | RECENCY | days since the last inbound activity | `1 − days/horizon` |
//! | FREQUENCY | inbound activities in a window | `min(count/target, 1)` |
//! | MONETARY | deal value or amounts in a window | `ln(1+v)/ln(1+cap)` |
//! | STAGE | the stage's win probability or position | as is |
//! | PREDICTED | the learned close probability | as is |
//! | RESPONSIVENESS | median hours from our contact to the lead's reply | `target/(target+hours)` |
//! | DATE_PROXIMITY | days until a DATE field's date | `1 − days/horizon`, 0 once past |
//!
//! A dimension earns `weight × normalised` points; weights sum to 100, so the
//! points sum to the total.
//!
//! # Example
//!
//! ```
//! use scoring::templates;
//! use scoring::{LeadFacts, LeadFlag, ModelConfig, StageFacts};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! const DAY: i64 = 86_400;
//! let now = 1_750_000_000;
//!
//! // The tenant's fields and signals, and its model as stored in JSON.
//! let catalog = templates::default_catalog();
//! let stored = templates::general().to_json();
//! let model = ModelConfig::parse(&stored, &catalog).map_err(|errors| errors[0].to_string())?;
//! let model = model.compile(&catalog).map_err(|errors| errors[0].to_string())?;
//!
//! // A lead with the demand radar filled in, in its second stage.
//! let mut lead = LeadFacts {
//!     attributes: serde_json::from_value(json!({
//!         "budget": 4, "authority": 5, "need": 4, "timeline": 3,
//!         "industry_position": 3, "decision_chain": 4
//!     }))?,
//!     created_at: now - 20 * DAY,
//!     stage: StageFacts { position: 1, stage_count: 7, win_probability: 0.2,
//!                         entered_at: now - 6 * DAY, rotting_days: Some(14),
//!                         ..StageFacts::default() },
//!     ..LeadFacts::default()
//! };
//!
//! // Activities update the state kept on the lead row, one call each.
//! let signal = |key: &str| catalog.signals.iter().find(|s| s.key == key);
//! lead.activity.record(signal("inbound_inquiry").ok_or("no signal")?, now - 3 * DAY, None);
//! lead.activity.record(signal("call").ok_or("no signal")?, now - 2 * DAY, None);
//!
//! let card = model.score(&lead, now);
//! assert_eq!(card.tier, "B");              // BANT 3 of 4 ⇒ at least B
//! assert!(card.overrides.iter().any(|o| o.rule == "BANT"));
//! let points: f64 = card.contributions.iter().map(|c| c.points).sum();
//! assert!((points - card.total).abs() < 1e-9);
//! assert_eq!(card.next_follow_up_at, now - 2 * DAY + 5 * DAY); // B: every 5 days
//!
//! // The customer asks for a meeting: urgent, so tier A at once.
//! lead.activity.record(signal("meeting_request").ok_or("no signal")?, now, None);
//! let card = model.score(&lead, now);
//! assert_eq!(card.tier, "A");
//! assert!(card.has_flag(LeadFlag::Urgent));
//!
//! // The breakdown JSON the server stores.
//! let breakdown = serde_json::to_value(&card)?;
//! assert_eq!(breakdown["flags"], json!(["URGENT"]));
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Configuration problems come back as a `Vec<`[`ConfigError`]`>`, each with a
//! path and a message for a person ("weights must sum to 100, got 95"); the
//! server maps them to `BAD_USER_INPUT` on `input.<path>`. Scoring itself never
//! fails: missing values score their documented defaults.
#![deny(missing_docs)]

pub mod batch;
pub mod decay;
pub mod dimensions;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod explain;
pub mod facts;
pub mod model;
pub mod overrides;
pub mod predictor;
pub mod stored;
pub mod templates;
pub mod tiers;

pub use batch::{BatchExplanation, ContributionRow, LeadBatch, OverrideRow, PIN_RULE};
pub use decay::{Activity, ActivityState, SignalAccumulator};
pub use engine::CompiledModel;
pub use error::{ConfigError, TrainError};
pub use evaluate::{
    Comparison, ModelEvaluation, ReliabilityBin, ScoreStats, TierEvaluation, TierMove,
};
pub use explain::{
    AppliedOverride, ChurnCause, Contribution, Flags, LeadFlag, ScoreSummary, Scorecard,
};
pub use facts::{AttributeValue, LeadFacts, StageFacts, StageKind, TierPin, parse_date};
pub use model::{
    BantParams, BantRule, BurstRule, Catalog, ChurnRiskRule, ColdRule, ComplaintsCause, Criterion,
    DateProximityParams, Dimension, DimensionKind, DimensionParams, Direction, EngagementParams,
    FieldDef, FieldType, FrequencyParams, ModelConfig, MonetaryParams, MonetarySource,
    OrderAmountsCause, OverrideParams, OverrideRule, PredictedParams, RatingParams, RecencyParams,
    ResponsivenessParams, SignalDef, StageBasis, StageParams, StageRule, StaleRule, Tier,
    UrgentSignalRule,
};
pub use predictor::{FeatureSpace, Predictor, TrainOptions, TrainingMetadata};

/// A point in time: seconds since the Unix epoch (UTC).
pub type UnixSeconds = i64;

/// Seconds in a day.
pub const SECONDS_PER_DAY: f64 = 86_400.0;
