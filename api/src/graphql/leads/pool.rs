//! The shared pool: its rules (`poolRules`, `setPoolRule`,
//! `removePoolRule`) and a rep taking a lead from it (`claimLead`).

use async_graphql::{ComplexObject, Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::pool_rule;

use crate::graphql::{
    Loaders, RequestContext, cost,
    leads::lead::LeadPayload,
    types::{Team, User},
};
use crate::{
    error::IntoGraphql,
    service::{leads::lead, leads::pool},
};

/// When owned leads go back to the shared pool by themselves, and how many
/// pool leads a rep may claim a day: the company's rule, or a team's, which
/// replaces the company's for that team's leads.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct PoolRule {
    /// An open lead whose owner made no outbound contact for this many
    /// days goes back to the pool on the nightly run; null: never for this.
    pub no_outbound_days: Option<i32>,
    /// An open lead COLD for this many days goes back; null: never for this.
    pub cold_days: Option<i32>,
    /// Days after a lead is claimed or assigned during which it stays.
    pub protection_days: i32,
    /// Pool leads a rep may claim a day (midnight to midnight in the
    /// company's time zone).
    pub claims_per_day: i32,
    pub updated_at: DateTime<Utc>,
    #[graphql(skip)]
    row: pool_rule::Model,
}

impl From<pool_rule::Model> for PoolRule {
    fn from(row: pool_rule::Model) -> Self {
        Self {
            no_outbound_days: row.no_outbound_days,
            cold_days: row.cold_days,
            protection_days: row.protection_days,
            claims_per_day: row.claims_per_day,
            updated_at: row.updated_at,
            row,
        }
    }
}

#[ComplexObject]
impl PoolRule {
    /// The team whose leads follow this rule; null for the company's rule.
    async fn team(&self, ctx: &Context<'_>) -> Result<Option<Team>> {
        Loaders::team(ctx, self.row.team_id).await
    }
    /// Who set the rule last.
    async fn updated_by(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Loaders::user(ctx, self.row.updated_by).await
    }
}

/// A pool rule, whole: what it leaves out takes its default.
#[derive(InputObject)]
pub struct PoolRuleInput {
    /// A team's rule; null for the company's.
    pub team_id: Option<ID>,
    /// At least 1; null: owners are never judged by their contacts.
    pub no_outbound_days: Option<i32>,
    /// At least 1; null: cold leads stay with their owners.
    pub cold_days: Option<i32>,
    /// 0 or more; default 3.
    pub protection_days: Option<i32>,
    /// 0 (reps cannot claim) or more; default 20.
    pub claims_per_day: Option<i32>,
}

#[derive(InputObject)]
pub struct RemovePoolRuleInput {
    /// A team's rule; null for the company's.
    pub team_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct PoolRulePayload {
    pub pool_rule: PoolRule,
}

#[derive(SimpleObject)]
pub struct RemovePoolRulePayload {
    /// Whether there was a rule to remove.
    pub removed: bool,
}

#[derive(InputObject)]
pub struct ClaimLeadInput {
    /// A lead of the shared pool.
    pub id: ID,
}

#[derive(Default)]
pub struct PoolQuery;

#[Object]
impl PoolQuery {
    /// The company's pool rule (if set) and the teams' own, company first;
    /// everyone in the company may read them.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn pool_rules(&self, ctx: &Context<'_>) -> Result<Vec<PoolRule>> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql()?;
        Ok(pool::rules(&rc.db, &principal)
            .await
            .gql()?
            .into_iter()
            .map(PoolRule::from)
            .collect())
    }
}

#[derive(Default)]
pub struct PoolMutation;

#[Object]
impl PoolMutation {
    /// Sets the company's pool rule, or a team's, replacing what it was
    /// (OWNER, ADMIN; a MANAGER their teams'). Audited.
    async fn set_pool_rule(
        &self,
        ctx: &Context<'_>,
        input: PoolRuleInput,
    ) -> Result<PoolRulePayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let change = pool::PoolRuleChange {
            team_id: input
                .team_id
                .map(|id| crate::graphql::id_at("input.teamId", &id))
                .transpose()?,
            no_outbound_days: input.no_outbound_days,
            cold_days: input.cold_days,
            protection_days: input.protection_days,
            claims_per_day: input.claims_per_day,
        };
        let rule = pool::set_rule(&rc.db, &principal, change, Utc::now())
            .await
            .gql_at("input")?;
        Ok(PoolRulePayload {
            pool_rule: rule.into(),
        })
    }

    /// Removes a team's pool rule (its leads follow the company's again) or
    /// the company's (nothing returns by itself). Audited.
    async fn remove_pool_rule(
        &self,
        ctx: &Context<'_>,
        input: RemovePoolRuleInput,
    ) -> Result<RemovePoolRulePayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let removed = pool::remove_rule(
            &rc.db,
            &principal,
            input
                .team_id
                .map(|id| crate::graphql::id_at("input.teamId", &id))
                .transpose()?,
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        Ok(RemovePoolRulePayload { removed })
    }

    /// Takes a lead from the shared pool, within the pool rule's claims a
    /// day; recorded in the lead's history as CLAIMED.
    async fn claim_lead(&self, ctx: &Context<'_>, input: ClaimLeadInput) -> Result<LeadPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let id = crate::graphql::id_at("input.id", &input.id)?;
        Ok(lead::claim_lead(&rc.db, &principal, id, Utc::now())
            .await
            .gql_at("input")?
            .into())
    }
}
