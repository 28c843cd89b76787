//! The audit log of configuration changes.

use crate::graphql::cost;
use async_graphql::{ComplexObject, Context, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use entity::audit_entry;
use serde_json::Value;

use crate::graphql::{
    Loaders, RequestContext, leads::lead::PageInfo, types::ExtendRef, types::User,
};
use crate::{error::IntoGraphql, service::accounts::audit};

/// One configuration change: who, when, what, and the state before and after.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct AuditEntry {
    pub id: ID,
    pub at: DateTime<Utc>,
    /// What was done, e.g. `pipeline.updated`.
    pub action: String,
    /// The kind of thing changed, e.g. `pipeline`.
    pub entity: String,
    pub entity_id: Option<ID>,
    /// Its state before; null when it was created.
    pub before: Option<Json<Value>>,
    /// Its state after.
    pub after: Option<Json<Value>>,
    #[graphql(skip)]
    actor_id: Option<entity::UserId>,
}

impl From<audit_entry::Model> for AuditEntry {
    fn from(e: audit_entry::Model) -> Self {
        Self {
            id: ID(e.id.to_string()),
            at: e.at,
            action: e.action,
            entity: e.entity,
            entity_id: e.entity_id.map(ID),
            before: e.before.map(Json),
            after: e.after.map(Json),
            actor_id: e.actor_id,
        }
    }
}

#[ComplexObject]
impl AuditEntry {
    /// Who made the change; null for the system.
    async fn actor(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        Loaders::user(ctx, self.actor_id).await
    }
}

/// A page of the audit log, newest first.
#[derive(SimpleObject)]
pub struct AuditEntryConnection {
    pub edges: Vec<AuditEntryEdge>,
    pub page_info: PageInfo,
}

/// An audit entry and its cursor.
#[derive(SimpleObject)]
pub struct AuditEntryEdge {
    /// Pass as `after` for the older entries that follow this one.
    pub cursor: String,
    pub node: AuditEntry,
}

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Configuration changes, newest first (OWNER and ADMIN).
    #[graphql(
        complexity = "cost::READ + usize::try_from(first).unwrap_or(0).max(1) * child_complexity"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<AuditEntryConnection> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let page = audit::page(&scope, &principal, first, after.as_deref())
            .await
            .gql()?;
        // One query for every actor on the page, then each reads the cache.
        let wants_actor = ctx
            .look_ahead()
            .field("edges")
            .field("node")
            .field("actor")
            .exists();
        if wants_actor {
            let actors: Vec<entity::UserId> =
                page.edges.iter().filter_map(|(_, e)| e.actor_id).collect();
            ctx.data::<Loaders>()?
                .user
                .load_many(actors)
                .await
                .map_err(|e| e.extend_ref())?;
        }
        let end_cursor = page.edges.last().map(|(cursor, _)| cursor.clone());
        Ok(AuditEntryConnection {
            edges: page
                .edges
                .into_iter()
                .map(|(cursor, entry)| AuditEntryEdge {
                    cursor,
                    node: entry.into(),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor,
            },
        })
    }
}
