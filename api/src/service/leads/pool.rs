//! The shared pool moves by itself: an owner who neglects a lead, or keeps
//! one cold for long, loses it to the pool, where any rep may claim it
//! (within a number of claims a day). The company sets the rule, and a
//! team may have its own, which replaces the company's for its leads.

use entity::{LeadId, TeamId};
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use entity::{
    enums::{LeadStatus, Role},
    lead, lead_event, pool_rule, team,
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, PaginatorTrait, QueryFilter,
    QuerySelect,
    sea_query::{Expr, ExprTrait as _},
};
use serde_json::json;
use uuid::Uuid;

use crate::service::{
    accounts::audit,
    assignment::{RuleKind, require_may_manage},
    begin_write,
    configuration::tenant_config,
    leads::lead_query,
    leads::lead_writer,
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::{TenantScope, Walled},
};

/// Days a lead stays with whoever claimed or was given it, when no rule
/// says otherwise.
pub const DEFAULT_PROTECTION_DAYS: i32 = 3;
/// Pool leads a rep may claim a day, when no rule says otherwise.
pub const DEFAULT_CLAIMS_PER_DAY: i32 = 20;
/// The history entry of a rep taking a pool lead.
pub const CLAIMED: &str = "CLAIMED";
/// The history entry of a lead going back to the pool by the rules.
pub const RETURNED: &str = "RETURNED_TO_POOL";

/// A pool rule, whole, replacing what was.
pub struct PoolRuleChange {
    pub team_id: Option<TeamId>,
    pub no_outbound_days: Option<i32>,
    pub cold_days: Option<i32>,
    pub protection_days: Option<i32>,
    pub claims_per_day: Option<i32>,
}

/// The rule that holds for one team's leads (or those without a team).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effective {
    pub no_outbound_days: Option<i32>,
    pub cold_days: Option<i32>,
    pub protection_days: i32,
    pub claims_per_day: i32,
}

impl Default for Effective {
    fn default() -> Self {
        Self {
            no_outbound_days: None,
            cold_days: None,
            protection_days: DEFAULT_PROTECTION_DAYS,
            claims_per_day: DEFAULT_CLAIMS_PER_DAY,
        }
    }
}

impl From<&pool_rule::Model> for Effective {
    fn from(rule: &pool_rule::Model) -> Self {
        Self {
            no_outbound_days: rule.no_outbound_days,
            cold_days: rule.cold_days,
            protection_days: rule.protection_days,
            claims_per_day: rule.claims_per_day,
        }
    }
}

/// A company's rules, read once.
pub struct Rules(Vec<pool_rule::Model>);

impl Rules {
    /// Every rule of the tenant.
    ///
    /// # Errors
    /// Database errors.
    pub async fn load<C: ConnectionTrait>(scope: &TenantScope<'_, C>) -> AppResult<Self> {
        let mut rules = scope
            .select::<pool_rule::Entity>()
            .all(scope.conn())
            .await?;
        // The company's first, then by team.
        rules.sort_by_key(|r| (r.team_id, r.id));
        Ok(Self(rules))
    }

    /// The rule for leads of `team`: the team's own, else the company's,
    /// else the defaults.
    #[must_use]
    pub fn effective(&self, team: Option<TeamId>) -> Effective {
        let own = team.and_then(|t| self.0.iter().find(|r| r.team_id == Some(t)));
        own.or_else(|| self.0.iter().find(|r| r.team_id.is_none()))
            .map_or_else(Effective::default, Effective::from)
    }

    /// The rules, the company's first.
    #[must_use]
    pub fn into_vec(self) -> Vec<pool_rule::Model> {
        self.0
    }
}

/// The company's pool rule and the teams' own, for anyone in the company:
/// reps see how many leads they may claim.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn rules(
    db: &DatabaseConnection,
    principal: &Principal,
) -> AppResult<Vec<pool_rule::Model>> {
    let walled = Walled::new(db, principal.tenant_id);
    let scope = walled.scope();
    Ok(Rules::load(&scope).await?.into_vec())
}

/// Sets the company's pool rule, or a team's (`teamId`), replacing the
/// rule it had: OWNER and ADMIN any, a MANAGER their teams'. Audited.
///
/// # Errors
/// BAD_USER_INPUT naming the field for days or counts out of range or an
/// unknown team; FORBIDDEN.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, team_id = ?change.team_id))]
pub async fn set_rule(
    db: &DatabaseConnection,
    principal: &Principal,
    change: PoolRuleChange,
    now: DateTime<Utc>,
) -> AppResult<pool_rule::Model> {
    let days = |field: &str, value: Option<i32>, least: i32| -> AppResult<Option<i32>> {
        match value {
            Some(v) if !(least..=3650).contains(&v) => Err(AppError::invalid(
                field,
                format!("must be between {least} and 3650 days"),
            )),
            other => Ok(other),
        }
    };
    let no_outbound_days = days("no_outbound_days", change.no_outbound_days, 1)?;
    let cold_days = days("cold_days", change.cold_days, 1)?;
    let protection_days =
        days("protection_days", change.protection_days, 0)?.unwrap_or(DEFAULT_PROTECTION_DAYS);
    let claims_per_day = match change.claims_per_day {
        Some(n) if !(0..=10_000).contains(&n) => {
            return Err(AppError::invalid(
                "claims_per_day",
                "must be between 0 and 10000",
            ));
        }
        n => n.unwrap_or(DEFAULT_CLAIMS_PER_DAY),
    };
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let team_id = rule_team(&scope, change.team_id).await?;
    require_may_manage(&scope, principal, team_id, RuleKind::Pool).await?;
    let id = team_id.map_or(principal.tenant_id, Uuid::from);
    let before = scope.find::<pool_rule::Entity>(id).await?;
    let row = pool_rule::ActiveModel {
        tenant_id: Set(principal.tenant_id),
        id: Set(id),
        team_id: Set(team_id),
        no_outbound_days: Set(no_outbound_days),
        cold_days: Set(cold_days),
        protection_days: Set(protection_days),
        claims_per_day: Set(claims_per_day),
        updated_by: Set(Some(principal.user_id)),
        updated_at: Set(now),
    };
    let saved = match &before {
        Some(_) => scope.update(row).await?,
        None => scope.insert(row).await?,
    };
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "pool_rule.set",
            entity: "pool_rule",
            entity_id: Some(id),
            before: before.as_ref().map(describe),
            after: Some(describe(&saved)),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

/// Removes the company's pool rule or a team's; the team's leads follow
/// the company's rule again, the company's the defaults (nothing returns
/// by itself). Whether there was one. Audited.
///
/// # Errors
/// BAD_USER_INPUT for an unknown team; FORBIDDEN as for [`set_rule`].
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, team_id = ?team))]
pub async fn remove_rule(
    db: &DatabaseConnection,
    principal: &Principal,
    team: Option<TeamId>,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let team_id = rule_team(&scope, team).await?;
    require_may_manage(&scope, principal, team_id, RuleKind::Pool).await?;
    let id = team_id.map_or(principal.tenant_id, Uuid::from);
    let Some(before) = scope.find::<pool_rule::Entity>(id).await? else {
        return Ok(false);
    };
    scope
        .delete_many::<pool_rule::Entity>()
        .filter(pool_rule::Column::Id.eq(id))
        .exec(scope.conn())
        .await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "pool_rule.removed",
            entity: "pool_rule",
            entity_id: Some(id),
            before: Some(describe(&before)),
            after: None,
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

async fn rule_team<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    team: Option<TeamId>,
) -> AppResult<Option<TeamId>> {
    let Some(id) = team else {
        return Ok(None);
    };
    scope
        .find::<team::Entity>(id)
        .await?
        .ok_or_else(|| AppError::invalid("team_id", "no such team in your company"))?;
    Ok(Some(id))
}

fn describe(rule: &pool_rule::Model) -> serde_json::Value {
    json!({
        "teamId": rule.team_id,
        "noOutboundDays": rule.no_outbound_days,
        "coldDays": rule.cold_days,
        "protectionDays": rule.protection_days,
        "claimsPerDay": rule.claims_per_day,
    })
}

/// Refuses a claim beyond what the rule for `team`'s leads allows the
/// caller today (midnight to midnight in the company's time zone).
///
/// # Errors
/// BAD_USER_INPUT naming `field` when the day's claims are used up.
pub async fn require_claim_room<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    team: Option<TeamId>,
    field: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let limit = Rules::load(scope).await?.effective(team).claims_per_day;
    let config = tenant_config::get(scope).await?;
    let midnight = lead_query::end_of_today(now, &config.tenant.time_zone) - Duration::days(1);
    let claimed = scope
        .select::<lead_event::Entity>()
        .filter(lead_event::Column::Kind.eq(CLAIMED))
        .filter(lead_event::Column::ActorId.eq(principal.user_id))
        .filter(lead_event::Column::At.gte(midnight))
        .count(scope.conn())
        .await?;
    if claimed >= u64::try_from(limit).unwrap_or(0) {
        return Err(AppError::invalid(
            field,
            format!(
                "you have claimed {claimed} pool leads today, the most a rep may ({limit}); claim again tomorrow"
            ),
        ));
    }
    Ok(())
}

/// Sends back to the pool every open lead of the tenant (of `team` only
/// when given) that its rule says is neglected — no outbound contact by
/// its owner for the rule's days — or has been COLD for the rule's days,
/// unless it was claimed or assigned within the protection period. Each
/// gets a history entry with the reason and `lead.returned_to_pool`.
/// Returns how many went back.
///
/// # Errors
/// Database errors.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, team_id = ?team))]
pub async fn return_neglected(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    team: Option<TeamId>,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let walled = Walled::new(db, tenant_id);
    let scope = walled.scope();
    let rules = Rules::load(&scope).await?;
    let shortest =
        |days: fn(&pool_rule::Model) -> Option<i32>| rules.0.iter().filter_map(days).min();
    let (no_outbound, cold) = (shortest(|r| r.no_outbound_days), shortest(|r| r.cold_days));
    if no_outbound.is_none() && cold.is_none() {
        return Ok(0);
    }
    // Candidates by the shortest period of any rule; each lead's own rule
    // decides below.
    let mut either = Condition::any();
    if let Some(days) = no_outbound {
        let before = now - Duration::days(i64::from(days));
        either = either.add(
            Condition::all()
                .add(lead::Column::CreatedAt.lt(before))
                .add(
                    Condition::any()
                        .add(lead::Column::LastOutboundAt.is_null())
                        .add(lead::Column::LastOutboundAt.lt(before)),
                ),
        );
    }
    if cold.is_some() {
        let bit = i32::from(scoring::LeadFlag::Cold.bit());
        either = either.add(Expr::col(lead::Column::Flags).bit_and(bit).ne(0));
    }
    let mut query = scope
        .select::<lead::Entity>()
        .filter(lead::Column::Status.eq(LeadStatus::Open))
        .filter(lead::Column::OwnerId.is_not_null())
        .filter(either);
    if let Some(team) = team {
        query = query.filter(lead::Column::TeamId.eq(team));
    }
    let candidates = query.all(scope.conn()).await?;
    if candidates.is_empty() {
        return Ok(0);
    }
    let owned_since = owned_since(&scope, &candidates).await?;
    let config = tenant_config::get(&scope).await?;
    let mut going: Vec<(&lead::Model, Option<String>)> = Vec::new();
    for lead in &candidates {
        let rule = rules.effective(lead.team_id);
        let since = owned_since
            .get(&lead.id)
            .copied()
            .unwrap_or(lead.created_at);
        let since = Ord::max(since, lead.created_at);
        if since > now - Duration::days(i64::from(rule.protection_days)) {
            continue;
        }
        let cold_after = config
            .model(lead.team_id)
            .ok()
            .and_then(|m| m.compiled.cold_after_seconds());
        if let Some(reason) = why_returned(lead, &rule, since, cold_after, now) {
            going.push((lead, Some(reason)));
        }
    }
    if going.is_empty() {
        return Ok(0);
    }
    let txn = begin_write(db).await?;
    let moved = lead_writer::move_open_leads(
        &TenantScope::enter(&txn, tenant_id).await?,
        &going,
        None,
        None,
        RETURNED,
        "returned to the pool",
        now,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(%tenant_id, returned = moved, "neglected leads returned to the pool");
    Ok(moved)
}

/// Why `lead` goes back to the pool under `rule`, if it does: its owner
/// (since `owned_since`) made no outbound contact for the rule's days, or
/// it has been cold for the rule's days.
fn why_returned(
    lead: &lead::Model,
    rule: &Effective,
    owned_since: DateTime<Utc>,
    cold_after_seconds: Option<f64>,
    now: DateTime<Utc>,
) -> Option<String> {
    if let Some(days) = rule.no_outbound_days {
        let last = Ord::max(lead.last_outbound_at.unwrap_or(owned_since), owned_since);
        if last <= now - Duration::days(i64::from(days)) {
            return Some(format!("no outbound contact by its owner for {days} days"));
        }
    }
    if let (Some(days), Some(after)) = (rule.cold_days, cold_after_seconds)
        && lead.flags & i32::from(scoring::LeadFlag::Cold.bit()) != 0
    {
        let silent_since = lead.last_inbound_at.unwrap_or(lead.created_at);
        // Whole seconds are plenty for a rule counted in days.
        #[allow(clippy::cast_possible_truncation)]
        let cold_since = silent_since + Duration::seconds(after as i64);
        if cold_since <= now - Duration::days(i64::from(days)) {
            return Some(format!("cold for {days} days"));
        }
    }
    None
}

/// When each lead last got its owner: its latest assignment or claim.
async fn owned_since<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    leads: &[lead::Model],
) -> AppResult<HashMap<LeadId, DateTime<Utc>>> {
    let mut since = HashMap::new();
    for chunk in leads.chunks(500) {
        let rows: Vec<(LeadId, Option<DateTime<Utc>>)> = scope
            .select::<lead_event::Entity>()
            .select_only()
            .column(lead_event::Column::LeadId)
            .column_as(lead_event::Column::At.max(), "at")
            .filter(lead_event::Column::LeadId.is_in(chunk.iter().map(|l| l.id)))
            .filter(lead_event::Column::Kind.is_in(["ASSIGNED", CLAIMED]))
            .group_by(lead_event::Column::LeadId)
            .into_tuple()
            .all(scope.conn())
            .await?;
        since.extend(rows.into_iter().filter_map(|(id, at)| Some((id, at?))));
    }
    Ok(since)
}

/// Whether `role` claims rather than assigns when taking a pool lead.
#[must_use]
pub fn claims(role: Role) -> bool {
    role == Role::Rep
}
