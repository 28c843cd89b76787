//! Where deals leak and how the tiers fill: the pipeline funnel from the
//! stage moves the lead mutations record, and the tier distribution. The
//! weekly review and the CSV export are submodules.

pub mod export;
pub mod review;

use entity::{LeadId, PipelineId, StageId, TeamId, UserId};
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{
    enums::{LeadStatus, Role, StageKind},
    lead, lead_event, pipeline, stage, team, user,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait,
};

use crate::service::{
    configuration, configuration::tenant_config, leads::visibility::LeadVisibility,
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// A recorded stage move of a lead, by stage key.
#[derive(FromQueryResult)]
struct StageMove {
    lead_id: LeadId,
    at: DateTime<Utc>,
    from_value: Option<String>,
    to_value: Option<String>,
}

/// Whose leads an analysis counts: one team's (led by it or owned by its
/// members), one rep's, or all the caller may read.
#[derive(Clone, Copy, Default)]
pub struct Narrowing {
    pub team: Option<TeamId>,
    pub owner: Option<UserId>,
}

/// The leads whose history the caller's funnel counts: every lead for
/// OWNER and ADMIN; for a MANAGER, their teams' leads (the teams' own and
/// those owned by the teams' members, themselves included), not the whole
/// company's, whose conversion figures are not theirs to read. Narrowed
/// to one team or one owner when asked; a MANAGER may name only their
/// own teams and their members.
async fn counted_leads<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    narrowing: Narrowing,
) -> AppResult<Condition> {
    let mut counted = Condition::all();
    let mut mine: Option<(Vec<TeamId>, Vec<UserId>)> = None;
    if principal.role == Role::Manager {
        // A manager's funnel is their teams', not everything they may
        // see: the pool is left out.
        let visible = LeadVisibility::load(scope, principal).await?;
        let teams = visible.managed_teams().to_vec();
        let mut members = visible.team_members().to_vec();
        members.push(principal.user_id);
        counted = counted.add(
            Condition::any()
                .add(lead::Column::TeamId.is_in(teams.clone()))
                .add(lead::Column::OwnerId.is_in(members.clone())),
        );
        mine = Some((teams, members));
    }
    if let Some(team) = narrowing.team {
        scope.get::<team::Entity>(team).await?;
        if mine
            .as_ref()
            .is_some_and(|(teams, _)| !teams.contains(&team))
        {
            return Err(AppError::Forbidden {
                action: "read the figures of a team you do not manage",
            });
        }
        let config = tenant_config::get(scope).await?;
        counted = counted.add(
            Condition::any()
                .add(lead::Column::TeamId.eq(team))
                .add(lead::Column::OwnerId.is_in(config.members_of(&[team]))),
        );
    }
    if let Some(owner) = narrowing.owner {
        scope.get::<user::Entity>(owner).await?;
        if mine
            .as_ref()
            .is_some_and(|(_, members)| !members.contains(&owner))
        {
            return Err(AppError::Forbidden {
                action: "read the figures of someone outside your teams",
            });
        }
        counted = counted.add(lead::Column::OwnerId.eq(owner));
    }
    Ok(counted)
}

/// What the funnel reads of a lead: id, creation, stage now, status, and
/// lost-reason category.
type FunnelLead = (LeadId, DateTime<Utc>, StageId, LeadStatus, Option<String>);

/// One stage of the funnel.
pub struct FunnelStage {
    pub stage: stage::Model,
    /// Leads that entered the stage within the window.
    pub entered: u64,
    /// Of those, leads that went on to a stage further down the pipeline
    /// (a lost stage does not count as advancing).
    pub advanced: u64,
    /// Mean days spent in the stage by the leads that entered it within
    /// the window and have left it; none when none left.
    pub average_days: Option<f64>,
    /// Of those that entered, the leads lost from this stage (closed into
    /// a lost stage from it), per lost-reason category; `None` for those
    /// lost without one.
    pub lost: HashMap<Option<String>, u64>,
}

impl FunnelStage {
    /// advanced / entered, 0 when nothing entered.
    pub fn conversion_rate(&self) -> f64 {
        if self.entered == 0 {
            0.0
        } else {
            self.advanced as f64 / self.entered as f64
        }
    }
}

/// The funnel of a pipeline over the leads that entered its stages between
/// `from` and `to` (either open). A lead enters its first stage when it
/// is created, and each stage it is moved or closed into.
///
/// # Errors
/// FORBIDDEN for a REP, and for a MANAGER naming a team or rep not
/// theirs; NOT_FOUND for an unknown pipeline, team or rep.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id, pipeline_id = %pipeline_id))]
pub async fn funnel<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    pipeline_id: PipelineId,
    narrowing: Narrowing,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> AppResult<Vec<FunnelStage>> {
    principal.require_at_least(Role::Manager, "read the funnel")?;
    let counted = counted_leads(scope, principal, narrowing).await?;
    let id = pipeline_id;
    scope.get::<pipeline::Entity>(id).await?;
    let stages: Vec<stage::Model> = scope
        .select::<stage::Entity>()
        .filter(stage::Column::PipelineId.eq(id))
        .order_by_asc(stage::Column::Position)
        .all(scope.conn())
        .await?;
    let by_key: HashMap<&str, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.key.as_str(), i))
        .collect();
    let by_id: HashMap<StageId, usize> =
        stages.iter().enumerate().map(|(i, s)| (s.id, i)).collect();

    let leads: Vec<FunnelLead> = scope
        .select::<lead::Entity>()
        .select_only()
        .columns([
            lead::Column::Id,
            lead::Column::CreatedAt,
            lead::Column::StageId,
            lead::Column::Status,
            lead::Column::CloseReasonCategory,
        ])
        .filter(lead::Column::PipelineId.eq(id))
        .filter(counted.clone())
        .into_tuple()
        .all(scope.conn())
        .await?;
    let of_pipeline = scope
        .select::<lead::Entity>()
        .select_only()
        .column(lead::Column::Id)
        .filter(lead::Column::PipelineId.eq(id))
        .filter(counted)
        .into_query();
    let moves: Vec<StageMove> = scope
        .select::<lead_event::Entity>()
        .select_only()
        .columns([
            lead_event::Column::LeadId,
            lead_event::Column::At,
            lead_event::Column::FromValue,
            lead_event::Column::ToValue,
        ])
        .filter(lead_event::Column::Kind.eq("STAGE"))
        .filter(lead_event::Column::LeadId.in_subquery(of_pipeline))
        .order_by_asc(lead_event::Column::At)
        .order_by_asc(lead_event::Column::Id)
        .into_model()
        .all(scope.conn())
        .await?;
    let mut history: HashMap<LeadId, Vec<StageMove>> = HashMap::new();
    for m in moves {
        history.entry(m.lead_id).or_default().push(m);
    }

    let mut entered = vec![0u64; stages.len()];
    let mut advanced = vec![0u64; stages.len()];
    let mut days = vec![(0.0f64, 0u64); stages.len()];
    let mut lost: Vec<HashMap<Option<String>, u64>> = vec![HashMap::new(); stages.len()];
    let in_window = |at: DateTime<Utc>| from.is_none_or(|f| at >= f) && to.is_none_or(|t| at <= t);
    for (lead, created_at, stage_id, status, category) in leads {
        let moves = history.remove(&lead).unwrap_or_default();
        // The stages the lead went through, with when it entered each: it
        // starts where its first move left from, or where it still is.
        let first = match moves.first() {
            Some(m) => m.from_value.as_deref().and_then(|k| by_key.get(k).copied()),
            None => by_id.get(&stage_id).copied(),
        };
        let mut path: Vec<(Option<usize>, DateTime<Utc>)> = vec![(first, created_at)];
        path.extend(moves.iter().map(|m| {
            (
                m.to_value.as_deref().and_then(|k| by_key.get(k).copied()),
                m.at,
            )
        }));
        for (i, (stage, at)) in path.iter().enumerate() {
            let Some(stage) = *stage else { continue };
            if !in_window(*at) {
                continue;
            }
            entered[stage] += 1;
            let later = &path[i + 1..];
            let went_on = later.iter().any(|(s, _)| {
                s.and_then(|s| stages.get(s)).is_some_and(|next| {
                    next.kind != StageKind::Lost && next.position > stages[stage].position
                })
            });
            advanced[stage] += u64::from(went_on);
            let lost_here = later.first().is_some_and(|(next, _)| {
                next.and_then(|s| stages.get(s))
                    .is_some_and(|s| s.kind == StageKind::Lost)
            });
            if lost_here {
                // The category is the lead's latest close; a lead lost,
                // reopened and lost again counts under it each time.
                let category = (status == LeadStatus::Lost)
                    .then(|| category.clone())
                    .flatten();
                *lost[stage].entry(category).or_default() += 1;
            }
            if let Some((_, left_at)) = later.first() {
                let spent = (*left_at - *at).num_seconds().max(0) as f64 / 86_400.0;
                days[stage].0 += spent;
                days[stage].1 += 1;
            }
        }
    }
    Ok(stages
        .into_iter()
        .enumerate()
        .map(|(i, stage)| FunnelStage {
            stage,
            entered: entered[i],
            advanced: advanced[i],
            average_days: (days[i].1 > 0).then(|| days[i].0 / days[i].1 as f64),
            lost: std::mem::take(&mut lost[i]),
        })
        .collect())
}

/// Open leads per tier among those the caller may see, of one team or all,
/// every tier of the model in use listed top first, even when empty; a
/// tier no longer in the model (from an older version) follows.
///
/// # Errors
/// NOT_FOUND for an unknown team.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id, team_id = ?team))]
pub async fn tier_distribution<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    team: Option<TeamId>,
) -> AppResult<Vec<(String, u64)>> {
    let model = configuration::active_scoring_model(scope, team).await?;
    let visible = LeadVisibility::load(scope, principal).await?.condition();
    let mut query = scope
        .select::<lead::Entity>()
        .select_only()
        .column(lead::Column::Tier)
        .column_as(lead::Column::Id.count(), "count")
        .filter(lead::Column::Status.eq(LeadStatus::Open))
        .filter(visible)
        .group_by(lead::Column::Tier);
    if let Some(team) = team {
        query = query.filter(lead::Column::TeamId.eq(team));
    }
    let counts: Vec<(String, i64)> = query.into_tuple().all(scope.conn()).await?;
    let tiers: Vec<String> = model
        .config
        .get("tiers")
        .and_then(|t| t.as_array())
        .map(|tiers| {
            tiers
                .iter()
                .filter_map(|t| t.get("key")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let count_of = |tier: &str| {
        counts
            .iter()
            .find(|(t, _)| t == tier)
            .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
    };
    let mut out: Vec<(String, u64)> = tiers.iter().map(|t| (t.clone(), count_of(t))).collect();
    out.extend(
        counts
            .iter()
            .filter(|(t, _)| !tiers.contains(t))
            .map(|(t, n)| (t.clone(), u64::try_from(*n).unwrap_or(0))),
    );
    Ok(out)
}

/// Lost leads of one lost-reason category (`None`: closed without one).
pub struct LostReasonCount {
    pub category: Option<String>,
    /// The category's label; the key for a category no longer in the list,
    /// "none given" without one.
    pub label: String,
    pub count: u64,
}

/// Leads lost between `from` and `to` (by when they closed; either open)
/// per lost-reason category, of one pipeline or all: every category of
/// the tenant's list in its order, even when none, then keys no longer in
/// the list, then the leads closed without a category, when any.
///
/// # Errors
/// FORBIDDEN for a REP, and for a MANAGER naming a team or rep not
/// theirs; NOT_FOUND for an unknown pipeline, team or rep.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id, pipeline_id = ?pipeline_id))]
pub async fn lost_reasons<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    categories: &[crate::service::configuration::lost_reasons::LostReasonCategory],
    pipeline_id: Option<PipelineId>,
    narrowing: Narrowing,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> AppResult<Vec<LostReasonCount>> {
    principal.require_at_least(Role::Manager, "read why deals are lost")?;
    let counted = counted_leads(scope, principal, narrowing).await?;
    let mut query = scope
        .select::<lead::Entity>()
        .select_only()
        .column(lead::Column::CloseReasonCategory)
        .column_as(lead::Column::Id.count(), "count")
        .filter(lead::Column::Status.eq(LeadStatus::Lost))
        .filter(counted)
        .group_by(lead::Column::CloseReasonCategory);
    if let Some(id) = pipeline_id {
        scope.get::<pipeline::Entity>(id).await?;
        query = query.filter(lead::Column::PipelineId.eq(id));
    }
    if let Some(from) = from {
        query = query.filter(lead::Column::ClosedAt.gte(from));
    }
    if let Some(to) = to {
        query = query.filter(lead::Column::ClosedAt.lte(to));
    }
    let counts: Vec<(Option<String>, i64)> = query.into_tuple().all(scope.conn()).await?;
    let counts: HashMap<Option<String>, u64> = counts
        .into_iter()
        .map(|(k, n)| (k, u64::try_from(n).unwrap_or(0)))
        .collect();
    Ok(by_category(categories, &counts, true))
}

/// Lost counts in the order of the tenant's `categories` (those without
/// leads too when `every_category`), then keys no longer in the list,
/// then the leads lost without a category, when any.
#[must_use]
pub fn by_category(
    categories: &[crate::service::configuration::lost_reasons::LostReasonCategory],
    counts: &HashMap<Option<String>, u64>,
    every_category: bool,
) -> Vec<LostReasonCount> {
    let count_of = |key: Option<&str>| {
        counts
            .iter()
            .find(|(k, _)| k.as_deref() == key)
            .map_or(0, |(_, n)| *n)
    };
    let mut out: Vec<LostReasonCount> = categories
        .iter()
        .map(|c| LostReasonCount {
            category: Some(c.key.clone()),
            label: c.label.clone(),
            count: count_of(Some(&c.key)),
        })
        .filter(|c| every_category || c.count > 0)
        .collect();
    let mut unlisted: Vec<(&String, u64)> = counts
        .iter()
        .filter_map(|(key, n)| Some((key.as_ref()?, *n)))
        .filter(|(key, _)| categories.iter().all(|c| &c.key != *key))
        .collect();
    unlisted.sort();
    out.extend(unlisted.into_iter().map(|(key, count)| LostReasonCount {
        category: Some(key.clone()),
        label: key.clone(),
        count,
    }));
    let none = count_of(None);
    if none > 0 {
        out.push(LostReasonCount {
            category: None,
            label: "none given".to_owned(),
            count: none,
        });
    }
    out
}
