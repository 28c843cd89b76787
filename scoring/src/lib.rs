//! Pure lead scoring for LeadRank.
//!
//! This crate turns a tenant's model configuration and a lead's facts into a
//! score from 0 to 100, a tier, flags, a next follow-up date and an explanation.
//! It has no database, no async and no clock: `now` is always an argument, in
//! Unix seconds.
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
pub mod templates;
pub mod tiers;

pub use batch::{BatchExplanation, ContributionRow, LeadBatch, OverrideRow};
pub use decay::{Activity, ActivityState, SignalAccumulator};
pub use engine::CompiledModel;
pub use error::{ConfigError, TrainError};
pub use evaluate::{Comparison, ModelEvaluation, ScoreStats, TierEvaluation, TierMove};
pub use explain::{AppliedOverride, Contribution, Flags, LeadFlag, ScoreSummary, Scorecard};
pub use facts::{AttributeValue, LeadFacts, StageFacts, StageKind};
pub use model::{
    BantParams, BantRule, Catalog, ChurnRiskRule, ColdRule, Criterion, Dimension, DimensionKind,
    DimensionParams, Direction, EngagementParams, FieldDef, FieldType, FrequencyParams,
    ModelConfig, MonetaryParams, MonetarySource, OverrideParams, OverrideRule, PredictedParams,
    RatingParams, RecencyParams, SignalDef, StageBasis, StageParams, StaleRule, Tier,
    UrgentSignalRule,
};
pub use predictor::{FeatureSpace, Predictor, TrainOptions};

/// A point in time: seconds since the Unix epoch (UTC).
pub type UnixSeconds = i64;

/// Seconds in a day.
pub const SECONDS_PER_DAY: f64 = 86_400.0;
