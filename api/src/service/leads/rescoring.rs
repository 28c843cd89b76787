//! Turning a lead row into the `scoring` crate's facts, scoring it with the
//! model that applies, and writing the result back onto the row. Shared by
//! every mutation that changes a lead's facts (and, later, the nightly job).

use entity::{LeadId, PipelineId, StageId, UserId};
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
};

use chrono::{DateTime, TimeZone, Utc};
use entity::{
    enums::{FieldType, StageKind},
    lead, lead_field, scoring_model, signal_type, stage, user,
};
use scoring::{
    Catalog, CompiledModel, FieldDef, LeadFacts, Scorecard, SignalDef, StageFacts, TierPin,
};
use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::service::configuration;
use crate::{
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// A tenant's lead fields and signal types, as rows and as the scoring
/// crate's catalog.
pub struct TenantCatalog {
    /// Lead field rows, in display order.
    pub fields: Vec<lead_field::Model>,
    /// Signal type rows.
    pub signals: Vec<signal_type::Model>,
    /// The same, with the keys of every pipeline's stages, for the scoring
    /// crate.
    pub catalog: Catalog,
}

impl TenantCatalog {
    /// Loads the tenant's fields, signals and stage keys (three queries).
    ///
    /// # Errors
    /// Database errors.
    pub async fn load<C: ConnectionTrait>(scope: &TenantScope<'_, C>) -> AppResult<Self> {
        let fields = configuration::lead_fields(scope).await?;
        let signals = configuration::signal_types(scope).await?;
        let stages = configuration::stage_keys(scope).await?;
        let catalog = Catalog {
            fields: fields
                .iter()
                .map(|f| FieldDef {
                    key: f.key.clone(),
                    field_type: match f.field_type {
                        FieldType::Rating => scoring::FieldType::Rating,
                        FieldType::Category => scoring::FieldType::Category,
                        FieldType::Number => scoring::FieldType::Number,
                        FieldType::Boolean => scoring::FieldType::Boolean,
                        FieldType::Text => scoring::FieldType::Text,
                        FieldType::Date => scoring::FieldType::Date,
                    },
                    options: serde_json::from_value(f.options.clone()).unwrap_or_default(),
                })
                .collect(),
            signals: signals.iter().map(signal_def).collect(),
            stages,
        };
        Ok(Self {
            fields,
            signals,
            catalog,
        })
    }

    /// The signal type with `key`.
    pub fn signal(&self, key: &str) -> Option<&signal_type::Model> {
        self.signals.iter().find(|s| s.key == key)
    }
}

/// The scoring crate's view of a signal type row.
pub fn signal_def(s: &signal_type::Model) -> SignalDef {
    SignalDef {
        key: s.key.clone(),
        points: s.points,
        half_life_days: s.half_life_days,
        urgent: s.urgent,
        direction: match s.direction {
            entity::enums::Direction::Inbound => scoring::Direction::Inbound,
            entity::enums::Direction::Outbound => scoring::Direction::Outbound,
        },
        retired: s.retired,
    }
}

/// The active model for a team (else the tenant default), compiled, with
/// the tenant's close-probability predictor once the nightly job trained one.
pub struct ModelInUse {
    /// The stored version.
    pub row: scoring_model::Model,
    /// Ready to score.
    pub compiled: Arc<CompiledModel>,
    /// Predicts `closeProbability` as a lead changes, between trainings.
    pub predictor: Option<Arc<scoring::Predictor>>,
}

impl ModelInUse {
    /// Compiles a stored version against the tenant's catalog; the reason,
    /// for the log, when it no longer fits.
    ///
    /// # Errors
    /// Every problem, in one message naming the version.
    pub fn compile(
        row: &scoring_model::Model,
        catalog: &TenantCatalog,
    ) -> Result<Arc<CompiledModel>, String> {
        scoring::ModelConfig::parse(&row.config, &catalog.catalog)
            .and_then(|config| config.compile(&catalog.catalog))
            .map(Arc::new)
            .map_err(|errors| {
                format!(
                    "scoring model {} (version {}) does not fit the tenant's fields and signals: {}",
                    row.id,
                    row.version,
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })
    }
}

/// The stages of a pipeline, in order.
///
/// # Errors
/// Database errors.
pub async fn pipeline_stages<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    pipeline: PipelineId,
) -> AppResult<Vec<stage::Model>> {
    Ok(scope
        .select::<stage::Entity>()
        .filter(stage::Column::PipelineId.eq(pipeline))
        .order_by_asc(stage::Column::Position)
        .all(scope.conn())
        .await?)
}

/// Unix seconds of a timestamp.
pub fn secs(at: DateTime<Utc>) -> i64 {
    at.timestamp()
}

/// A timestamp from Unix seconds (the epoch when out of range).
pub fn from_secs(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// What scoring reads of a lead row: the columns the nightly job selects,
/// or a whole row.
pub struct FactSource<'a> {
    pub stage_id: StageId,
    pub attributes: JsonSource<'a>,
    pub deal_value: Option<f64>,
    pub stage_entered_at: DateTime<Utc>,
    /// The activity state as stored (`scoring::ActivityState::from_bytes`).
    pub signal_state: &'a [u8],
    pub created_at: DateTime<Utc>,
    pub close_probability: Option<f64>,
    /// The lead's tier pin, if it has one.
    pub pin: Option<PinSource<'a>>,
    /// A follow-up someone scheduled.
    pub scheduled_follow_up_at: Option<DateTime<Utc>>,
    /// When the lead last rose into a higher tier.
    pub tier_rose_at: Option<DateTime<Utc>>,
}

/// A JSON column as read: parsed already, or as the text the bulk readers
/// select, which deserialises straight into the scoring types without a
/// `serde_json::Value` in between.
#[derive(Clone, Copy)]
pub enum JsonSource<'a> {
    Value(&'a serde_json::Value),
    Text(&'a str),
}

impl JsonSource<'_> {
    /// The value as `T`; the default when it does not read as one (an
    /// older shape), so one odd row does not stop a re-score.
    fn parse<T: serde::de::DeserializeOwned + Default>(self) -> T {
        match self {
            Self::Value(v) => T::deserialize(v).unwrap_or_default(),
            Self::Text(t) => serde_json::from_str(t).unwrap_or_default(),
        }
    }
}

/// Selects a JSON column as text, named as the column, for [`JsonSource::Text`].
fn json_as_text(
    query: sea_orm::Select<lead::Entity>,
    column: lead::Column,
) -> sea_orm::Select<lead::Entity> {
    use sea_orm::{
        QuerySelect,
        sea_query::{Alias, Expr, ExprTrait},
    };
    query.column_as(
        Expr::col((lead::Entity, column)).cast_as(Alias::new("text")),
        sea_orm::IdenStatic::as_str(&column),
    )
}

/// The columns scoring reads of a lead, for the readers that go through
/// many leads (the nightly job, the preview): the JSON one as text, and
/// never the stored breakdown, the bulk of a row. Nest it in a reader's own
/// row with `#[sea_orm(nested)]` and select with [`FactColumns::select`].
#[derive(sea_orm::FromQueryResult)]
pub struct FactColumns {
    pub id: LeadId,
    pub pipeline_id: PipelineId,
    pub stage_id: StageId,
    pub stage_entered_at: DateTime<Utc>,
    pub attributes: String,
    pub deal_value: Option<f64>,
    pub signal_state: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub close_probability: Option<f64>,
    pub pinned_tier: Option<String>,
    pub pin_reason: Option<String>,
    pub pin_expires_at: Option<DateTime<Utc>>,
    pub pinned_by: Option<UserId>,
    pub scheduled_follow_up_at: Option<DateTime<Utc>>,
    pub tier_rose_at: Option<DateTime<Utc>>,
}

impl FactColumns {
    /// Selects these columns; add the reader's own with `.columns(…)`.
    pub fn select(query: sea_orm::Select<lead::Entity>) -> sea_orm::Select<lead::Entity> {
        use sea_orm::QuerySelect;
        let query = query.select_only().columns([
            lead::Column::Id,
            lead::Column::PipelineId,
            lead::Column::StageId,
            lead::Column::StageEnteredAt,
            lead::Column::DealValue,
            lead::Column::CreatedAt,
            lead::Column::CloseProbability,
            lead::Column::PinnedTier,
            lead::Column::PinReason,
            lead::Column::PinExpiresAt,
            lead::Column::PinnedBy,
            lead::Column::ScheduledFollowUpAt,
            lead::Column::TierRoseAt,
            lead::Column::SignalState,
        ]);
        json_as_text(query, lead::Column::Attributes)
    }

    /// What scoring reads, with the pinner's name for the explanation.
    pub fn source<'a>(&'a self, pinned_by: Option<&'a str>) -> FactSource<'a> {
        FactSource {
            stage_id: self.stage_id,
            attributes: JsonSource::Text(&self.attributes),
            deal_value: self.deal_value,
            stage_entered_at: self.stage_entered_at,
            signal_state: &self.signal_state,
            created_at: self.created_at,
            close_probability: self.close_probability,
            pin: PinSource::of(
                self.pinned_tier.as_deref(),
                self.pin_reason.as_deref(),
                self.pin_expires_at,
                pinned_by,
            ),
            scheduled_follow_up_at: self.scheduled_follow_up_at,
            tier_rose_at: self.tier_rose_at,
        }
    }
}

/// A lead's tier pin columns, with the pinner's name for the explanation.
#[derive(Clone, Copy)]
pub struct PinSource<'a> {
    pub tier: &'a str,
    pub reason: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
    /// Display name of who pinned it; the explanation says "a manager"
    /// without one.
    pub pinned_by: Option<&'a str>,
}

impl<'a> PinSource<'a> {
    /// The pin columns of a lead; none when it has no pinned tier.
    pub fn of(
        pinned_tier: Option<&'a str>,
        pin_reason: Option<&'a str>,
        pin_expires_at: Option<DateTime<Utc>>,
        pinned_by: Option<&'a str>,
    ) -> Option<Self> {
        Some(Self {
            tier: pinned_tier?,
            reason: pin_reason.unwrap_or_default(),
            expires_at: pin_expires_at,
            pinned_by,
        })
    }
}

impl<'a> From<&'a lead::Model> for FactSource<'a> {
    fn from(lead: &'a lead::Model) -> Self {
        Self {
            stage_id: lead.stage_id,
            attributes: JsonSource::Value(&lead.attributes),
            deal_value: lead.deal_value,
            stage_entered_at: lead.stage_entered_at,
            signal_state: &lead.signal_state,
            created_at: lead.created_at,
            close_probability: lead.close_probability,
            pin: PinSource::of(
                lead.pinned_tier.as_deref(),
                lead.pin_reason.as_deref(),
                lead.pin_expires_at,
                None,
            ),
            scheduled_follow_up_at: lead.scheduled_follow_up_at,
            tier_rose_at: lead.tier_rose_at,
        }
    }
}

/// The scoring facts of a lead row in its pipeline; `pinned_by` names who
/// pinned its tier, if anyone did.
pub fn facts(lead: &lead::Model, pinned_by: Option<&str>, stages: &[stage::Model]) -> LeadFacts {
    let mut source = FactSource::from(lead);
    if let Some(pin) = &mut source.pin {
        pin.pinned_by = pinned_by;
    }
    facts_of(&source, stages)
}

/// The full explanation of a lead's stored score: its facts scored again by
/// the model version that scored it, at the moment it was scored, which
/// gives the same numbers (the close probability is the stored one).
/// `pinned_by` names who pinned its tier.
///
/// # Errors
/// INTERNAL for a lead never scored or a version that no longer fits the
/// catalog.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id(), lead_id = %lead.id))]
pub async fn explain<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    lead: &lead::Model,
    pinned_by: Option<&str>,
) -> AppResult<Scorecard> {
    let (Some(model_id), Some(scored_at)) = (lead.scoring_model_id, lead.scored_at) else {
        return Err(AppError::Internal(anyhow::anyhow!(
            "lead {} has never been scored",
            lead.id
        )));
    };
    let config = crate::service::configuration::tenant_config::get(scope).await?;
    let model = config.version(scope, model_id).await?;
    let facts = facts(lead, pinned_by, config.stages(lead.pipeline_id));
    Ok(model.score(&facts, secs(scored_at)))
}

/// Display names of the users who pinned leads' tiers, loaded as leads need
/// them, for the explanation of their pins.
#[derive(Default)]
pub struct Pinners(HashMap<UserId, String>);

impl Pinners {
    /// Loads the names of `users` not known yet, in one query (none when
    /// all are known).
    ///
    /// # Errors
    /// Database errors.
    pub async fn load<C: ConnectionTrait>(
        &mut self,
        scope: &TenantScope<'_, C>,
        users: impl IntoIterator<Item = UserId>,
    ) -> AppResult<()> {
        let missing: BTreeSet<UserId> = users
            .into_iter()
            .filter(|id| !self.0.contains_key(id))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<(UserId, String)> = scope
            .select::<user::Entity>()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::DisplayName)
            .filter(user::Column::Id.is_in(missing))
            .into_tuple()
            .all(scope.conn())
            .await?;
        self.0.extend(names);
        Ok(())
    }

    /// The name of `user`, once loaded.
    pub fn name(&self, user: Option<UserId>) -> Option<&str> {
        user.and_then(|id| self.0.get(&id)).map(String::as_str)
    }

    /// Loads the names of whoever pinned `leads`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn load_for_leads<'l, C: ConnectionTrait>(
        &mut self,
        scope: &TenantScope<'_, C>,
        leads: impl IntoIterator<Item = &'l lead::Model>,
    ) -> AppResult<()> {
        let pinners: Vec<UserId> = leads
            .into_iter()
            .filter(|l| l.pinned_tier.is_some())
            .filter_map(|l| l.pinned_by)
            .collect();
        self.load(scope, pinners).await
    }
}

/// The scoring facts of a lead's columns in its pipeline.
pub fn facts_of(lead: &FactSource<'_>, stages: &[stage::Model]) -> LeadFacts {
    let position = stages
        .iter()
        .position(|s| s.id == lead.stage_id)
        .unwrap_or(0);
    let stage = stages.get(position);
    let attributes: BTreeMap<String, scoring::AttributeValue> = lead.attributes.parse();
    LeadFacts {
        attributes,
        deal_value: lead.deal_value,
        stage: StageFacts {
            position: u32::try_from(position).unwrap_or(0),
            stage_count: u32::try_from(stages.len().max(1)).unwrap_or(1),
            win_probability: stage.map_or(0.0, |s| s.win_probability),
            kind: match stage.map(|s| s.kind) {
                Some(StageKind::Won) => scoring::StageKind::Won,
                Some(StageKind::Lost) => scoring::StageKind::Lost,
                _ => scoring::StageKind::Open,
            },
            entered_at: secs(lead.stage_entered_at),
            rotting_days: stage
                .and_then(|s| s.rotting_days)
                .and_then(|d| u32::try_from(d).ok()),
            key: stage.map(|s| s.key.clone()).unwrap_or_default(),
        },
        // A state that does not read counts as none, as an older shape
        // did: one odd row must not stop a re-score.
        activity: scoring::ActivityState::from_bytes(lead.signal_state).unwrap_or_default(),
        created_at: secs(lead.created_at),
        scheduled_follow_up_at: lead.scheduled_follow_up_at.map(secs),
        tier_rose_at: lead.tier_rose_at.map(secs),
        predicted_close_probability: lead.close_probability,
        // An expired pin is passed on as it is: the engine ignores it from
        // its `expires_at`, so scoring at any `now` is right without the
        // columns being cleared.
        pin: lead.pin.map(|pin| TierPin {
            tier: pin.tier.to_owned(),
            reason: pin.reason.to_owned(),
            expires_at: pin.expires_at.map(secs),
            pinned_by: pin.pinned_by.map(str::to_owned),
        }),
    }
}

/// The row's flag bits that name CHURN_RISK's causes, above the scoring
/// crate's flags (which fit in the low byte).
pub const CHURN_CAUSE_BITS: [(scoring::ChurnCause, i32); 3] = [
    (scoring::ChurnCause::InteractionsFalling, 1 << 8),
    (scoring::ChurnCause::ComplaintsRising, 1 << 9),
    (scoring::ChurnCause::OrderAmountsFalling, 1 << 10),
];

/// Bit set of a scorecard's flags, as kept on the row for filtering, with
/// the causes of a churn risk.
pub fn flag_bits(card: &Scorecard) -> i32 {
    let flags = card
        .flags
        .iter()
        .fold(0, |bits, f| bits | i32::from(f.bit()));
    card.overrides
        .iter()
        .filter_map(|o| o.churn_cause)
        .fold(flags, |bits, cause| bits | churn_cause_bit(cause))
}

fn churn_cause_bit(cause: scoring::ChurnCause) -> i32 {
    CHURN_CAUSE_BITS
        .iter()
        .find(|(c, _)| *c == cause)
        .map_or(0, |(_, bit)| *bit)
}

/// The causes of a churn risk in a row's flag bits.
pub fn churn_causes(flags: i32) -> Vec<scoring::ChurnCause> {
    CHURN_CAUSE_BITS
        .iter()
        .filter(|(_, bit)| flags & bit != 0)
        .map(|(c, _)| *c)
        .collect()
}
