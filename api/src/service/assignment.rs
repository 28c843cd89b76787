//! Assignment rules: who gets an unowned lead.
//!
//! A lead without an owner is offered to its team's rules first, then to
//! the company's rules (those without a team), each list in its `position`
//! order. The first active rule whose filter matches the lead (tier, source,
//! field values) and that has a rep able to take it assigns the lead.
//!
//! Who can take it: the active, not-away users with role REP of the rule's
//! team; for a company rule, of the lead's team when it has one, else of
//! the whole company. A rep at capacity is skipped: capacity is the
//! smaller of the rep's own `capacity` and the rule's `max_open_per_rep`,
//! counted in open leads.
//!
//! - ROUND_ROBIN hands leads in turn, in the order reps joined, carrying on
//!   after the rep the rule last chose.
//! - REMAINING_CAPACITY gives each lead to the rep with the most room left,
//!   so loads even out; ties go round-robin.
//!
//! Every automatic assignment writes an ASSIGNED lead event without an
//! actor and with the rule's id and name.

use entity::{LeadId, TeamId, UserId};
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{
    assignment_rule,
    enums::{LeadStatus, ModelStatus, Role},
    lead, lead_event, lead_field, scoring_model, team, team_member, user,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    accounts::audit,
    begin_write,
    configuration::tenant_config::teams_of,
    events::{self, ByRule, LeadState, LeadSummary, Outgoing},
    leads::attributes::{cell_value, check_attribute},
    leads::lead_writer,
    validate,
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// How a rule chooses among the reps who can take a lead.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    RoundRobin,
    RemainingCapacity,
}

impl Strategy {
    /// The stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundRobin => "ROUND_ROBIN",
            Self::RemainingCapacity => "REMAINING_CAPACITY",
        }
    }

    /// The strategy of a stored rule; an unknown name reads as round-robin,
    /// the strategy that needs no capacity.
    #[must_use]
    pub fn parse(stored: &str) -> Self {
        if stored == "REMAINING_CAPACITY" {
            Self::RemainingCapacity
        } else {
            Self::RoundRobin
        }
    }
}

/// Which leads a rule takes; an empty list does not restrict.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleFilter {
    /// Tier keys, e.g. `A`.
    #[serde(default)]
    pub tiers: Vec<String>,
    /// Lead sources, compared without regard to case.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Lead fields that must hold one of the values.
    #[serde(default)]
    pub fields: Vec<FieldFilter>,
}

/// A lead field that must hold one of `values`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldFilter {
    pub key: String,
    /// Stored typed, as the field holds them.
    pub values: Vec<Value>,
}

/// A field filter as a user writes it: values as text.
pub struct FieldFilterSpec {
    pub key: String,
    pub values: Vec<String>,
}

/// A filter as a user writes it.
#[derive(Default)]
pub struct FilterSpec {
    pub tiers: Vec<String>,
    pub sources: Vec<String>,
    pub fields: Vec<FieldFilterSpec>,
}

/// The fields of a new rule.
pub struct NewRule {
    pub team_id: Option<TeamId>,
    pub name: String,
    pub strategy: Strategy,
    pub filter: Option<FilterSpec>,
    pub max_open_per_rep: Option<i32>,
    pub position: Option<i32>,
    pub active: bool,
}

/// Changes to a rule; `None` leaves a part as it is.
#[derive(Default)]
pub struct RuleChanges {
    pub name: Option<String>,
    pub strategy: Option<Strategy>,
    pub filter: Option<FilterSpec>,
    /// `Some(None)` removes the cap.
    pub max_open_per_rep: Option<Option<i32>>,
    pub position: Option<i32>,
    pub active: Option<bool>,
}

/// The largest cap on open leads per rep a rule or a user may have.
const MAX_CAPACITY: i32 = 1_000_000;

/// Which of a company's or team's rules a change is to.
#[derive(Clone, Copy)]
pub(crate) enum RuleKind {
    Assignment,
    Pool,
}

impl RuleKind {
    /// What is refused: another team's, the company's, any.
    fn refusals(self) -> [&'static str; 3] {
        match self {
            Self::Assignment => [
                "change assignment rules of a team you do not manage",
                "change the company's assignment rules",
                "change assignment rules",
            ],
            Self::Pool => [
                "change pool rules of a team you do not manage",
                "change the company's pool rules",
                "change pool rules",
            ],
        }
    }
}

/// Refuses unless the caller may change rules of `team` (`None`: the
/// company's): OWNER and ADMIN any, a MANAGER their own teams'.
pub(crate) async fn require_may_manage<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    team: Option<TeamId>,
    kind: RuleKind,
) -> AppResult<()> {
    let [other_team, company, any] = kind.refusals();
    match (principal.role, team) {
        (Role::Owner | Role::Admin, _) => Ok(()),
        (Role::Manager, Some(team))
            if teams_of(scope, principal.user_id).await?.contains(&team) =>
        {
            Ok(())
        }
        (Role::Manager, Some(_)) => Err(AppError::Forbidden { action: other_team }),
        (Role::Manager, None) => Err(AppError::Forbidden { action: company }),
        (Role::Rep, _) => Err(AppError::Forbidden { action: any }),
    }
}

/// The rules the caller may see, company rules first, each list in order:
/// ADMIN and OWNER all (or one team's with `team`), a MANAGER the
/// company's and their teams'.
///
/// # Errors
/// FORBIDDEN for reps; NOT_FOUND for another tenant's team.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id, team_id = ?team))]
pub async fn rules<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    team: Option<TeamId>,
) -> AppResult<Vec<assignment_rule::Model>> {
    principal.require_at_least(Role::Manager, "see assignment rules")?;
    if let Some(team) = team {
        scope.get::<team::Entity>(team).await?;
    }
    let mut query = scope.select::<assignment_rule::Entity>();
    if let Some(team) = team {
        query = query.filter(assignment_rule::Column::TeamId.eq(team));
    }
    if principal.role == Role::Manager {
        let mine = teams_of(scope, principal.user_id).await?;
        query = query.filter(
            Condition::any()
                .add(assignment_rule::Column::TeamId.is_null())
                .add(assignment_rule::Column::TeamId.is_in(mine)),
        );
    }
    let mut rules = query.all(scope.conn()).await?;
    // Company rules (no team) first, then by team, each in position order.
    rules.sort_by_key(|r| (r.team_id, r.position, r.id));
    Ok(rules)
}

/// The tier keys of the tenant's active scoring models.
async fn tier_keys<C: ConnectionTrait>(scope: &TenantScope<'_, C>) -> AppResult<HashSet<String>> {
    let configs: Vec<Value> = scope
        .select::<scoring_model::Entity>()
        .select_only()
        .column(scoring_model::Column::Config)
        .filter(scoring_model::Column::Status.eq(ModelStatus::Active))
        .into_tuple()
        .all(scope.conn())
        .await?;
    Ok(configs
        .iter()
        .flat_map(|c| c["tiers"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["key"].as_str().map(str::to_owned))
        .collect())
}

/// Checks a filter against the tenant's tiers and lead fields.
async fn check_filter<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    spec: FilterSpec,
) -> AppResult<RuleFilter> {
    let mut filter = RuleFilter::default();
    if !spec.tiers.is_empty() {
        let known = tier_keys(scope).await?;
        for (i, tier) in spec.tiers.iter().enumerate() {
            let tier = tier.trim();
            if !known.contains(tier) {
                let mut keys: Vec<&String> = known.iter().collect();
                keys.sort();
                return Err(AppError::invalid(
                    format!("filter.tiers[{i}]"),
                    format!(
                        "no active scoring model has a tier \"{tier}\"; tiers: {}",
                        keys.iter()
                            .map(|k| k.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            filter.tiers.push(tier.to_owned());
        }
    }
    for (i, source) in spec.sources.iter().enumerate() {
        filter.sources.push(validate::required_text(
            &format!("filter.sources[{i}]"),
            source,
            120,
        )?);
    }
    if !spec.fields.is_empty() {
        let fields: Vec<lead_field::Model> = scope
            .select::<lead_field::Entity>()
            .all(scope.conn())
            .await?;
        for (i, wanted) in spec.fields.into_iter().enumerate() {
            let Some(field) = fields.iter().find(|f| f.key == wanted.key) else {
                return Err(AppError::invalid(
                    format!("filter.fields[{i}].key"),
                    format!("the company has no lead field \"{}\"", wanted.key),
                ));
            };
            if wanted.values.is_empty() {
                return Err(AppError::invalid(
                    format!("filter.fields[{i}].values"),
                    "give at least one value",
                ));
            }
            let mut values = Vec::with_capacity(wanted.values.len());
            for (j, raw) in wanted.values.iter().enumerate() {
                let path = format!("filter.fields[{i}].values[{j}]");
                let parsed =
                    cell_value(field, raw.trim()).map_err(|m| AppError::invalid(&path, m))?;
                values.push(check_attribute(field, &parsed, &path)?);
            }
            filter.fields.push(FieldFilter {
                key: field.key.clone(),
                values,
            });
        }
    }
    Ok(filter)
}

fn check_cap(field: &str, cap: Option<i32>) -> AppResult<Option<i32>> {
    match cap {
        Some(n) if !(1..=MAX_CAPACITY).contains(&n) => Err(AppError::invalid(
            field,
            format!("must be between 1 and {MAX_CAPACITY} open leads"),
        )),
        other => Ok(other),
    }
}

fn require_cap_for(strategy: Strategy, cap: Option<i32>) -> AppResult<()> {
    if strategy == Strategy::RemainingCapacity && cap.is_none() {
        return Err(AppError::invalid(
            "max_open_per_rep",
            "REMAINING_CAPACITY needs the most open leads a rep may hold",
        ));
    }
    Ok(())
}

fn snapshot(rule: &assignment_rule::Model) -> Value {
    json!({
        "team_id": rule.team_id,
        "name": rule.name,
        "strategy": rule.strategy,
        "filter": rule.filter,
        "max_open_per_rep": rule.max_open_per_rep,
        "position": rule.position,
        "active": rule.active,
    })
}

/// Creates a rule, last in its list unless a position is given.
///
/// # Errors
/// FORBIDDEN; BAD_USER_INPUT naming the field; NOT_FOUND for another
/// tenant's team.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, team_id = ?input.team_id))]
pub async fn create_rule(
    db: &DatabaseConnection,
    principal: &Principal,
    input: NewRule,
    now: DateTime<Utc>,
) -> AppResult<assignment_rule::Model> {
    let name = validate::required_text("name", &input.name, 200)?;
    let cap = check_cap("max_open_per_rep", input.max_open_per_rep)?;
    require_cap_for(input.strategy, cap)?;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    require_may_manage(&scope, principal, input.team_id, RuleKind::Assignment).await?;
    if let Some(team) = input.team_id {
        scope.get::<team::Entity>(team).await?;
    }
    let filter = check_filter(&scope, input.filter.unwrap_or_default()).await?;
    let position = match input.position {
        Some(p) => p,
        None => {
            let last: Option<i32> = scope
                .select::<assignment_rule::Entity>()
                .select_only()
                .column_as(assignment_rule::Column::Position.max(), "max")
                .filter(match input.team_id {
                    Some(team) => assignment_rule::Column::TeamId.eq(team),
                    None => assignment_rule::Column::TeamId.is_null(),
                })
                .into_tuple::<Option<i32>>()
                .one(&txn)
                .await?
                .flatten();
            last.map_or(0, |p| p + 1)
        }
    };
    let rule = scope
        .insert(assignment_rule::ActiveModel {
            id: Set(Uuid::now_v7()),
            team_id: Set(input.team_id),
            name: Set(name),
            strategy: Set(input.strategy.as_str().to_owned()),
            filter: Set(serde_json::to_value(&filter).map_err(|e| AppError::Internal(e.into()))?),
            position: Set(position),
            active: Set(input.active),
            last_assigned_user_id: Set(None),
            max_open_per_rep: Set(cap),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "assignment_rule.created",
            entity: "assignment_rule",
            entity_id: Some(rule.id),
            before: None,
            after: Some(snapshot(&rule)),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(rule)
}

/// Changes a rule.
///
/// # Errors
/// FORBIDDEN; BAD_USER_INPUT naming the field; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, rule_id = %id))]
pub async fn update_rule(
    db: &DatabaseConnection,
    principal: &Principal,
    id: Uuid,
    changes: RuleChanges,
    now: DateTime<Utc>,
) -> AppResult<assignment_rule::Model> {
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = scope.get::<assignment_rule::Entity>(id).await?;
    require_may_manage(&scope, principal, current.team_id, RuleKind::Assignment).await?;
    let mut row = current.clone().into_active_model();
    if let Some(name) = &changes.name {
        row.name = Set(validate::required_text("name", name, 200)?);
    }
    let strategy = changes
        .strategy
        .unwrap_or_else(|| Strategy::parse(&current.strategy));
    let cap = match changes.max_open_per_rep {
        Some(cap) => check_cap("max_open_per_rep", cap)?,
        None => current.max_open_per_rep,
    };
    require_cap_for(strategy, cap)?;
    row.strategy = Set(strategy.as_str().to_owned());
    row.max_open_per_rep = Set(cap);
    if let Some(spec) = changes.filter {
        let filter = check_filter(&scope, spec).await?;
        row.filter = Set(serde_json::to_value(&filter).map_err(|e| AppError::Internal(e.into()))?);
    }
    if let Some(position) = changes.position {
        row.position = Set(position);
    }
    if let Some(active) = changes.active {
        row.active = Set(active);
    }
    row.updated_at = Set(now);
    let saved = scope.update(row).await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "assignment_rule.updated",
            entity: "assignment_rule",
            entity_id: Some(saved.id),
            before: Some(snapshot(&current)),
            after: Some(snapshot(&saved)),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

/// Deletes a rule; the assignments it made stay on the leads' history.
///
/// # Errors
/// FORBIDDEN; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, rule_id = %id))]
pub async fn delete_rule(
    db: &DatabaseConnection,
    principal: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = scope.get::<assignment_rule::Entity>(id).await?;
    require_may_manage(&scope, principal, current.team_id, RuleKind::Assignment).await?;
    scope
        .delete_many::<assignment_rule::Entity>()
        .filter(assignment_rule::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "assignment_rule.deleted",
            entity: "assignment_rule",
            entity_id: Some(id),
            before: Some(snapshot(&current)),
            after: None,
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Marks a user away (or back) and sets how many open leads they may hold.
/// A user may mark themselves away; a MANAGER sets both for the members
/// of their teams; ADMIN and OWNER for anyone.
///
/// # Errors
/// FORBIDDEN; BAD_USER_INPUT; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, target_user_id = %user_id))]
pub async fn set_availability(
    db: &DatabaseConnection,
    principal: &Principal,
    user_id: UserId,
    away: Option<bool>,
    capacity: Option<Option<i32>>,
    now: DateTime<Utc>,
) -> AppResult<user::Model> {
    let capacity = capacity.map(|c| check_cap("capacity", c)).transpose()?;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = scope.get::<user::Entity>(user_id).await?;
    let allowed = match principal.role {
        Role::Owner | Role::Admin => true,
        Role::Manager => {
            let mine = teams_of(&scope, principal.user_id).await?;
            user_id == principal.user_id
                || teams_of(&scope, user_id)
                    .await?
                    .iter()
                    .any(|t| mine.contains(t))
        }
        Role::Rep => user_id == principal.user_id && capacity.is_none(),
    };
    if !allowed {
        return Err(AppError::Forbidden {
            action: "change this user's availability",
        });
    }
    let mut row = current.clone().into_active_model();
    if let Some(away) = away {
        row.away = Set(away);
    }
    if let Some(capacity) = capacity {
        row.capacity = Set(capacity);
    }
    row.updated_at = Set(now);
    let saved = scope.update(row).await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "user.availability_changed",
            entity: "user",
            entity_id: Some(user_id.into()),
            before: Some(json!({"away": current.away, "capacity": current.capacity})),
            after: Some(json!({"away": saved.away, "capacity": saved.capacity})),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

/// What a rule looks at in a lead.
pub struct Candidate<'a> {
    pub team_id: Option<TeamId>,
    pub tier: &'a str,
    pub source: Option<&'a str>,
    pub attributes: &'a Value,
}

/// A rule's choice.
#[derive(Clone, Debug)]
pub struct Pick {
    pub user_id: UserId,
    pub rule_id: Uuid,
    pub rule_name: String,
}

impl Pick {
    /// The ASSIGNED event that records the choice on the lead's history.
    #[must_use]
    pub fn event(
        &self,
        tenant_id: Uuid,
        lead_id: LeadId,
        at: DateTime<Utc>,
    ) -> lead_event::ActiveModel {
        lead_event::ActiveModel {
            tenant_id: Set(tenant_id),
            id: Set(Uuid::now_v7()),
            lead_id: Set(lead_id),
            kind: Set("ASSIGNED".into()),
            actor_id: Set(None),
            at: Set(at),
            from_value: Set(None),
            to_value: Set(Some(self.user_id.to_string())),
            data: Set(Some(json!({
                "rule_id": self.rule_id,
                "rule_name": self.rule_name,
            }))),
        }
    }
}

struct LoadedRule {
    row: assignment_rule::Model,
    strategy: Strategy,
    filter: RuleFilter,
    moved: bool,
}

impl LoadedRule {
    fn matches(&self, lead: &Candidate<'_>) -> bool {
        let f = &self.filter;
        (f.tiers.is_empty() || f.tiers.iter().any(|t| t == lead.tier))
            && (f.sources.is_empty()
                || lead
                    .source
                    .is_some_and(|s| f.sources.iter().any(|w| w.eq_ignore_ascii_case(s.trim()))))
            && f.fields.iter().all(|field| {
                let held = &lead.attributes[field.key.as_str()];
                field.values.iter().any(|v| same_value(v, held))
            })
    }
}

/// JSON equality, with numbers compared as numbers (3 equals 3.0).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-9,
        _ => a == b,
    }
}

struct Rep {
    capacity: Option<i32>,
    open: i64,
}

/// A tenant's rules and reps, loaded once for a lead or a batch of leads;
/// it keeps count of what it hands out so a batch respects capacities.
pub struct Assigner {
    rules: Vec<LoadedRule>,
    reps: HashMap<UserId, Rep>,
    /// Reps by team, in the order they joined the company.
    team_reps: HashMap<TeamId, Vec<UserId>>,
    /// Every rep, in the order they joined.
    all_reps: Vec<UserId>,
}

impl Assigner {
    /// Loads the tenant's active rules, locking them on PostgreSQL so that
    /// concurrent assignments take turns (SQLite writers already do), with
    /// the reps who may take leads and their open-lead counts. `None` when
    /// the tenant has no active rule.
    ///
    /// # Errors
    /// Database errors.
    pub async fn load<C: ConnectionTrait>(scope: &TenantScope<'_, C>) -> AppResult<Option<Self>> {
        let rows = scope
            .select::<assignment_rule::Entity>()
            .filter(assignment_rule::Column::Active.eq(true))
            .order_by_asc(assignment_rule::Column::Position)
            .order_by_asc(assignment_rule::Column::Id)
            .lock_exclusive()
            .all(scope.conn())
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let rules = rows
            .into_iter()
            .map(|row| LoadedRule {
                strategy: Strategy::parse(&row.strategy),
                filter: serde_json::from_value(row.filter.clone()).unwrap_or_default(),
                moved: false,
                row,
            })
            .collect();
        let users: Vec<(UserId, Option<i32>)> = scope
            .select::<user::Entity>()
            .select_only()
            .columns([user::Column::Id, user::Column::Capacity])
            .filter(user::Column::Role.eq(Role::Rep))
            .filter(user::Column::Active.eq(true))
            .filter(user::Column::Away.eq(false))
            .order_by_asc(user::Column::CreatedAt)
            .order_by_asc(user::Column::Id)
            .into_tuple()
            .all(scope.conn())
            .await?;
        let all_reps: Vec<UserId> = users.iter().map(|(id, _)| *id).collect();
        let mut reps: HashMap<UserId, Rep> = users
            .into_iter()
            .map(|(id, capacity)| (id, Rep { capacity, open: 0 }))
            .collect();
        let counts: Vec<(UserId, i64)> = scope
            .select::<lead::Entity>()
            .select_only()
            .column(lead::Column::OwnerId)
            .column_as(lead::Column::Id.count(), "open")
            .filter(lead::Column::Status.eq(LeadStatus::Open))
            .filter(lead::Column::OwnerId.is_in(all_reps.iter().copied()))
            .group_by(lead::Column::OwnerId)
            .into_tuple()
            .all(scope.conn())
            .await?;
        for (owner, open) in counts {
            if let Some(rep) = reps.get_mut(&owner) {
                rep.open = open;
            }
        }
        let memberships: Vec<(TeamId, UserId)> = scope
            .select::<team_member::Entity>()
            .select_only()
            .columns([team_member::Column::TeamId, team_member::Column::UserId])
            .filter(team_member::Column::UserId.is_in(all_reps.iter().copied()))
            .into_tuple()
            .all(scope.conn())
            .await?;
        let order: HashMap<UserId, usize> = all_reps
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect();
        let mut team_reps: HashMap<TeamId, Vec<UserId>> = HashMap::new();
        for (team, user) in memberships {
            team_reps.entry(team).or_default().push(user);
        }
        for members in team_reps.values_mut() {
            members.sort_by_key(|u| order.get(u).copied().unwrap_or(usize::MAX));
        }
        Ok(Some(Self {
            rules,
            reps,
            team_reps,
            all_reps,
        }))
    }

    /// Chooses the rep for `lead`, counting the lead against them, or
    /// `None` when no rule matches or every matching rule's reps are full.
    pub fn pick(&mut self, lead: &Candidate<'_>) -> Option<Pick> {
        let team_rules = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.row.team_id.is_some() && r.row.team_id == lead.team_id);
        let company_rules = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.row.team_id.is_none());
        let order: Vec<usize> = team_rules.chain(company_rules).map(|(i, _)| i).collect();
        for i in order {
            let rule = &self.rules[i];
            if !rule.matches(lead) {
                continue;
            }
            let pool = match rule.row.team_id.or(lead.team_id) {
                Some(team) => self.team_reps.get(&team).map_or(&[][..], Vec::as_slice),
                None => self.all_reps.as_slice(),
            };
            let Some(chosen) = choose(rule, pool, &self.reps) else {
                continue;
            };
            if let Some(rep) = self.reps.get_mut(&chosen) {
                rep.open += 1;
            }
            let rule = &mut self.rules[i];
            rule.row.last_assigned_user_id = Some(chosen);
            rule.moved = true;
            return Some(Pick {
                user_id: chosen,
                rule_id: rule.row.id,
                rule_name: rule.row.name.clone(),
            });
        }
        None
    }

    /// Stores where each rule's turn stands, for the next assignment.
    ///
    /// # Errors
    /// Database errors.
    pub async fn save<C: ConnectionTrait>(&mut self, scope: &TenantScope<'_, C>) -> AppResult<()> {
        self.take_turns().save(scope).await
    }

    /// The rules' turns moved since the last call, to be saved with the
    /// leads they were given in: a bulk writer prepares the next batch, and
    /// moves the turns further, while this batch is written.
    pub fn take_turns(&mut self) -> Turns {
        Turns(
            self.rules
                .iter_mut()
                .filter(|r| r.moved)
                .map(|rule| {
                    rule.moved = false;
                    (rule.row.id, rule.row.last_assigned_user_id)
                })
                .collect(),
        )
    }
}

/// Whose turn each moved rule has reached: the rule and the rep it last
/// gave a lead to.
#[derive(Debug, Default)]
pub struct Turns(Vec<(Uuid, Option<UserId>)>);

impl Turns {
    /// Saves the turns, in the transaction that writes their leads.
    ///
    /// # Errors
    /// Database errors.
    pub async fn save<C: ConnectionTrait>(self, scope: &TenantScope<'_, C>) -> AppResult<()> {
        for (rule, last) in self.0 {
            scope
                .update_many::<assignment_rule::Entity>()
                .col_expr(
                    assignment_rule::Column::LastAssignedUserId,
                    Expr::value(last),
                )
                .filter(assignment_rule::Column::Id.eq(rule))
                .exec(scope.conn())
                .await?;
        }
        Ok(())
    }
}

/// The rep `rule` gives the next lead to, among `pool` (in joining order).
fn choose(rule: &LoadedRule, pool: &[UserId], reps: &HashMap<UserId, Rep>) -> Option<UserId> {
    let room = |id: &UserId| -> Option<i64> {
        let rep = reps.get(id)?;
        let cap = match (rep.capacity, rule.row.max_open_per_rep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match cap {
            Some(cap) if rep.open >= i64::from(cap) => None,
            Some(cap) => Some(i64::from(cap) - rep.open),
            None => Some(i64::MAX),
        }
    };
    // Round-robin order: the reps after the one last chosen, then the rest.
    let start = rule
        .row
        .last_assigned_user_id
        .and_then(|last| pool.iter().position(|id| *id == last))
        .map_or(0, |i| i + 1);
    let turn = pool[start.min(pool.len())..]
        .iter()
        .chain(&pool[..start.min(pool.len())]);
    match rule.strategy {
        Strategy::RoundRobin => turn.copied().find(|id| room(id).is_some()),
        Strategy::RemainingCapacity => {
            let mut best: Option<(UserId, i64)> = None;
            for id in turn {
                if let Some(left) = room(id)
                    && best.is_none_or(|(_, most)| left > most)
                {
                    best = Some((*id, left));
                }
            }
            best.map(|(id, _)| id)
        }
    }
}

/// Hands the tenant's open unowned leads (of one team with `team`) to reps
/// by the rules, in batches; a lead someone changed meanwhile is left for
/// the next run. Returns how many were assigned.
///
/// # Errors
/// Database errors.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, team_id = ?team))]
pub async fn assign_pool(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    team: Option<TeamId>,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    const BATCH: u64 = 500;
    let mut after: Option<LeadId> = None;
    let mut assigned = 0u64;
    loop {
        let txn = begin_write(db).await?;
        let scope = TenantScope::enter(&txn, tenant_id).await?;
        let Some(mut assigner) = Assigner::load(&scope).await? else {
            return Ok(assigned);
        };
        let mut query = scope
            .select::<lead::Entity>()
            .select_only()
            .columns([
                lead::Column::Id,
                lead::Column::Version,
                lead::Column::Name,
                lead::Column::Company,
                lead::Column::TeamId,
                lead::Column::Score,
                lead::Column::Tier,
                lead::Column::Flags,
                lead::Column::Source,
                lead::Column::Attributes,
            ])
            .filter(lead::Column::Status.eq(LeadStatus::Open))
            .filter(lead::Column::OwnerId.is_null())
            .order_by_asc(lead::Column::Id)
            .limit(BATCH);
        if let Some(after) = after {
            query = query.filter(lead::Column::Id.gt(after));
        }
        if let Some(team) = team {
            query = query.filter(lead::Column::TeamId.eq(team));
        }
        let rows: Vec<PoolLead> = query.into_model().all(&txn).await?;
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(assigned);
        };
        let mut history = Vec::new();
        let mut out = Outgoing::default();
        for lead in &rows {
            let Some(pick) = assigner.pick(&Candidate {
                team_id: lead.team_id,
                tier: &lead.tier,
                source: lead.source.as_deref(),
                attributes: &lead.attributes,
            }) else {
                continue;
            };
            let before = LeadSummary {
                id: lead.id,
                name: lead.name.clone(),
                company: lead.company.clone(),
                team_id: lead.team_id,
                score: lead.score,
                state: lead.state(None),
            };
            let rule = ByRule {
                id: pick.rule_id,
                name: &pick.rule_name,
            };
            if lead_writer::assign_owner(
                &scope,
                &before,
                lead.version,
                pick.user_id,
                rule,
                &mut out,
                now,
            )
            .await?
            {
                history.push(pick.event(tenant_id, lead.id, now));
                assigned += 1;
            }
        }
        events::emit(&scope, &out, now).await?;
        scope.insert_many(history).await?;
        assigner.save(&scope).await?;
        txn.commit().await?;
        after = Some(last);
    }
}

/// An open, unowned lead as the pool pass reads it.
#[derive(sea_orm::FromQueryResult)]
struct PoolLead {
    id: LeadId,
    version: i32,
    name: String,
    company: Option<String>,
    team_id: Option<TeamId>,
    score: f64,
    tier: String,
    flags: i32,
    source: Option<String>,
    attributes: Value,
}

impl PoolLead {
    fn state(&self, owner_id: Option<UserId>) -> LeadState {
        LeadState {
            tier: self.tier.clone(),
            flags: self.flags,
            owner_id,
            status: LeadStatus::Open,
        }
    }
}
