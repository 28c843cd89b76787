//! Lost reasons as categories: the tenant's list (read by everyone, edited
//! by OWNER and ADMIN) and how many deals were lost for each.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use crate::graphql::id_at;
use crate::graphql::{RequestContext, cost};
use crate::{
    error::IntoGraphql,
    service::{analytics, configuration::lost_reasons, configuration::tenant_config},
};

/// A category of why deals are lost, e.g. `price`.
#[derive(SimpleObject)]
pub struct LostReasonCategory {
    /// Stable key, given as `closeLead`'s `reasonCategory`.
    pub key: String,
    /// What people read, in the tenant's language.
    pub label: String,
}

impl From<lost_reasons::LostReasonCategory> for LostReasonCategory {
    fn from(c: lost_reasons::LostReasonCategory) -> Self {
        Self {
            key: c.key,
            label: c.label,
        }
    }
}

/// One category of the new list.
#[derive(InputObject)]
pub struct LostReasonCategoryInput {
    /// Lower-case letters, digits and underscores, such as `no_budget`.
    pub key: String,
    pub label: String,
}

/// The whole new list, in order; it replaces the old one.
#[derive(InputObject)]
pub struct SetLostReasonCategoriesInput {
    pub categories: Vec<LostReasonCategoryInput>,
}

#[derive(SimpleObject)]
pub struct LostReasonCategoriesPayload {
    pub categories: Vec<LostReasonCategory>,
}

/// Lost leads of one category.
#[derive(SimpleObject)]
pub struct LostReasonCount {
    /// The category's key; null for leads lost without one.
    pub category: Option<String>,
    pub label: String,
    pub count: i32,
}

impl From<analytics::LostReasonCount> for LostReasonCount {
    fn from(c: analytics::LostReasonCount) -> Self {
        Self {
            category: c.category,
            label: c.label,
            count: i32::try_from(c.count).unwrap_or(i32::MAX),
        }
    }
}

#[derive(Default)]
pub struct LostReasonQuery;

#[Object]
impl LostReasonQuery {
    /// The tenant's lost-reason categories, in order: its own list once
    /// edited, else the defaults in its language (price, competitor, no
    /// budget, no decision, timing, no response).
    async fn lost_reason_categories(&self, ctx: &Context<'_>) -> Result<Vec<LostReasonCategory>> {
        let (_, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let config = tenant_config::get(&scope).await.gql()?;
        Ok(lost_reasons::of_tenant(&config.tenant)
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Leads lost between `from` and `to` per lost-reason category, of one
    /// pipeline or all (OWNER, ADMIN; MANAGER for their teams), of one team
    /// or one rep when asked.
    #[graphql(complexity = "cost::ANALYTICS + child_complexity")]
    async fn lost_reasons(
        &self,
        ctx: &Context<'_>,
        pipeline_id: Option<ID>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        team_id: Option<ID>,
        owner_id: Option<ID>,
    ) -> Result<Vec<LostReasonCount>> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let config = tenant_config::get(&scope).await.gql()?;
        let categories = lost_reasons::of_tenant(&config.tenant);
        let counts = analytics::lost_reasons(
            &scope,
            &principal,
            &categories,
            pipeline_id.map(|p| id_at("pipelineId", &p)).transpose()?,
            analytics::Narrowing {
                team: team_id.map(|t| id_at("teamId", &t)).transpose()?,
                owner: owner_id.map(|o| id_at("ownerId", &o)).transpose()?,
            },
            from,
            to,
        )
        .await
        .gql()?;
        Ok(counts.into_iter().map(Into::into).collect())
    }
}

#[derive(Default)]
pub struct LostReasonMutation;

#[Object]
impl LostReasonMutation {
    /// Replaces the tenant's lost-reason categories (OWNER, ADMIN; audited).
    /// Leads keep the key they were closed with.
    async fn set_lost_reason_categories(
        &self,
        ctx: &Context<'_>,
        input: SetLostReasonCategoriesInput,
    ) -> Result<LostReasonCategoriesPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let categories = input
            .categories
            .into_iter()
            .map(|c| lost_reasons::LostReasonCategory {
                key: c.key,
                label: c.label,
            })
            .collect();
        let saved =
            lost_reasons::set_lost_reason_categories(&rc.db, &principal, categories, Utc::now())
                .await
                .gql_at("input")?;
        Ok(LostReasonCategoriesPayload {
            categories: saved.into_iter().map(Into::into).collect(),
        })
    }
}
