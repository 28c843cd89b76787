//! Assignment rules for unowned leads, and reps' availability.

use crate::graphql::cost;
use crate::graphql::id_at;
use async_graphql::{
    ComplexObject, Context, Enum, ID, InputObject, MaybeUndefined, Object, Result, SimpleObject,
};
use chrono::{DateTime, Utc};
use entity::assignment_rule;

use super::{
    Loaders, RequestContext,
    types::{Team, User},
};
use crate::{
    error::IntoGraphql,
    service::{
        assignment::{
            self, FieldFilterSpec, FilterSpec, NewRule, RuleChanges, RuleFilter, Strategy,
        },
        validate,
    },
};

/// How a rule chooses among the reps who can take a lead.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum AssignmentStrategy {
    /// In turn, in the order reps joined, skipping the away and the full.
    RoundRobin,
    /// To the rep with the most room left under their cap; ties in turn.
    /// Needs `maxOpenPerRep`.
    RemainingCapacity,
}

impl From<AssignmentStrategy> for Strategy {
    fn from(s: AssignmentStrategy) -> Self {
        match s {
            AssignmentStrategy::RoundRobin => Self::RoundRobin,
            AssignmentStrategy::RemainingCapacity => Self::RemainingCapacity,
        }
    }
}

impl From<Strategy> for AssignmentStrategy {
    fn from(s: Strategy) -> Self {
        match s {
            Strategy::RoundRobin => Self::RoundRobin,
            Strategy::RemainingCapacity => Self::RemainingCapacity,
        }
    }
}

/// A lead field that must hold one of the values.
#[derive(SimpleObject)]
pub struct AssignmentFieldFilter {
    pub key: String,
    /// As text: `3` for a rating, `true` for a boolean.
    pub values: Vec<String>,
}

/// Which leads a rule takes; an empty list does not restrict.
#[derive(SimpleObject)]
pub struct AssignmentFilter {
    /// Tier keys, on the lead's score when it is assigned.
    pub tiers: Vec<String>,
    /// Lead sources, compared without regard to case.
    pub sources: Vec<String>,
    /// Every one must match.
    pub fields: Vec<AssignmentFieldFilter>,
}

impl From<RuleFilter> for AssignmentFilter {
    fn from(f: RuleFilter) -> Self {
        Self {
            tiers: f.tiers,
            sources: f.sources,
            fields: f
                .fields
                .into_iter()
                .map(|field| AssignmentFieldFilter {
                    key: field.key,
                    values: field
                        .values
                        .iter()
                        .map(|v| match v {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A rule that hands unowned leads to reps: a team's, tried first for
/// that team's leads, or the company's (no team), tried after.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct AssignmentRule {
    pub id: ID,
    pub name: String,
    pub strategy: AssignmentStrategy,
    pub filter: AssignmentFilter,
    /// The most open leads the rule gives a rep (a rep's own `capacity`
    /// may be lower); null for no cap.
    pub max_open_per_rep: Option<i32>,
    /// Order within its list: lower first.
    pub position: i32,
    /// An inactive rule assigns nothing.
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    row: assignment_rule::Model,
}

impl From<assignment_rule::Model> for AssignmentRule {
    fn from(row: assignment_rule::Model) -> Self {
        Self {
            id: ID(row.id.to_string()),
            name: row.name.clone(),
            strategy: Strategy::parse(&row.strategy).into(),
            filter: serde_json::from_value::<RuleFilter>(row.filter.clone())
                .unwrap_or_default()
                .into(),
            max_open_per_rep: row.max_open_per_rep,
            position: row.position,
            active: row.active,
            created_at: row.created_at,
            updated_at: row.updated_at,
            row,
        }
    }
}

#[ComplexObject]
impl AssignmentRule {
    /// The team whose leads and reps the rule serves; null for the company.
    async fn team(&self, ctx: &Context<'_>) -> Result<Option<Team>> {
        Loaders::team(ctx, self.row.team_id).await
    }
    /// The rep the rule chose last; round-robin carries on after them.
    async fn last_assigned_to(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Loaders::user(ctx, self.row.last_assigned_user_id).await
    }
}

#[derive(InputObject)]
pub struct AssignmentFieldFilterInput {
    /// A lead field's key.
    pub key: String,
    /// As text: `3` for a rating, `true` for a boolean.
    pub values: Vec<String>,
}

#[derive(InputObject, Default)]
pub struct AssignmentFilterInput {
    #[graphql(default)]
    pub tiers: Vec<String>,
    #[graphql(default)]
    pub sources: Vec<String>,
    #[graphql(default)]
    pub fields: Vec<AssignmentFieldFilterInput>,
}

impl From<AssignmentFilterInput> for FilterSpec {
    fn from(f: AssignmentFilterInput) -> Self {
        Self {
            tiers: f.tiers,
            sources: f.sources,
            fields: f
                .fields
                .into_iter()
                .map(|field| FieldFilterSpec {
                    key: field.key,
                    values: field.values,
                })
                .collect(),
        }
    }
}

#[derive(InputObject)]
pub struct CreateAssignmentRuleInput {
    /// The team whose leads and reps the rule serves; null for the
    /// company (OWNER and ADMIN only).
    pub team_id: Option<ID>,
    pub name: String,
    pub strategy: AssignmentStrategy,
    pub filter: Option<AssignmentFilterInput>,
    /// Required for REMAINING_CAPACITY.
    pub max_open_per_rep: Option<i32>,
    /// Lower first; after the list's last rule when omitted.
    pub position: Option<i32>,
    #[graphql(default = true)]
    pub active: bool,
}

#[derive(InputObject)]
pub struct UpdateAssignmentRuleInput {
    pub id: ID,
    pub name: Option<String>,
    pub strategy: Option<AssignmentStrategy>,
    /// Replaces the whole filter.
    pub filter: Option<AssignmentFilterInput>,
    /// Null removes the cap.
    pub max_open_per_rep: MaybeUndefined<i32>,
    pub position: Option<i32>,
    pub active: Option<bool>,
}

#[derive(InputObject)]
pub struct SetUserAvailabilityInput {
    pub user_id: ID,
    /// Away reps get no leads from the rules.
    pub away: Option<bool>,
    /// The most open leads the rules give this user; null for no limit of
    /// their own. Not a rep's own to set.
    pub capacity: MaybeUndefined<i32>,
}

/// The result of `createAssignmentRule` and `updateAssignmentRule`.
#[derive(SimpleObject)]
pub struct AssignmentRulePayload {
    pub rule: AssignmentRule,
}

/// The result of `deleteAssignmentRule`.
#[derive(SimpleObject)]
pub struct DeleteAssignmentRulePayload {
    pub deleted_id: ID,
}

/// The result of `setUserAvailability`.
#[derive(SimpleObject)]
pub struct UserAvailabilityPayload {
    pub user: User,
}

#[derive(Default)]
pub struct AssignmentQuery;

#[Object]
impl AssignmentQuery {
    /// The assignment rules, company rules first, each list in order
    /// (OWNER, ADMIN; a MANAGER sees the company's and their teams').
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn assignment_rules(
        &self,
        ctx: &Context<'_>,
        team_id: Option<ID>,
    ) -> Result<Vec<AssignmentRule>> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let team = team_id
            .map(|id| validate::id("teamId", &id))
            .transpose()
            .gql()?;
        Ok(assignment::rules(&scope, &principal, team)
            .await
            .gql()?
            .into_iter()
            .map(AssignmentRule::from)
            .collect())
    }
}

#[derive(Default)]
pub struct AssignmentMutation;

#[Object]
impl AssignmentMutation {
    /// Adds a rule (OWNER, ADMIN; a MANAGER for their own teams).
    async fn create_assignment_rule(
        &self,
        ctx: &Context<'_>,
        input: CreateAssignmentRuleInput,
    ) -> Result<AssignmentRulePayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let team_id = input
            .team_id
            .map(|id| id_at("input.teamId", &id))
            .transpose()?;
        let rule = NewRule {
            team_id,
            name: input.name,
            strategy: input.strategy.into(),
            filter: input.filter.map(Into::into),
            max_open_per_rep: input.max_open_per_rep,
            position: input.position,
            active: input.active,
        };
        let saved = assignment::create_rule(&rc.db, &principal, rule, Utc::now())
            .await
            .gql_at("input")?;
        Ok(AssignmentRulePayload { rule: saved.into() })
    }

    /// Changes a rule (OWNER, ADMIN; a MANAGER for their own teams).
    async fn update_assignment_rule(
        &self,
        ctx: &Context<'_>,
        input: UpdateAssignmentRuleInput,
    ) -> Result<AssignmentRulePayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let id = id_at("input.id", &input.id)?;
        let changes = RuleChanges {
            name: input.name,
            strategy: input.strategy.map(Into::into),
            filter: input.filter.map(Into::into),
            max_open_per_rep: input.max_open_per_rep.into(),
            position: input.position,
            active: input.active,
        };
        let saved = assignment::update_rule(&rc.db, &principal, id, changes, Utc::now())
            .await
            .gql_at("input")?;
        Ok(AssignmentRulePayload { rule: saved.into() })
    }

    /// Deletes a rule; the assignments it made stay in the leads' history.
    async fn delete_assignment_rule(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<DeleteAssignmentRulePayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql()?;
        let uuid = validate::id("id", &id).gql()?;
        assignment::delete_rule(&rc.db, &principal, uuid, Utc::now())
            .await
            .gql()?;
        Ok(DeleteAssignmentRulePayload { deleted_id: id })
    }

    /// Marks a user away or back, and sets their capacity: anyone may mark
    /// themselves away; a MANAGER sets both for their teams' members; OWNER
    /// and ADMIN for anyone.
    async fn set_user_availability(
        &self,
        ctx: &Context<'_>,
        input: SetUserAvailabilityInput,
    ) -> Result<UserAvailabilityPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let user_id = id_at("input.userId", &input.user_id)?;
        let saved = assignment::set_availability(
            &rc.db,
            &principal,
            user_id,
            input.away,
            input.capacity.into(),
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        Ok(UserAvailabilityPayload { user: saved.into() })
    }
}
