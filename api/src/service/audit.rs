//! The audit log of configuration changes: who, when, before and after.

use chrono::{DateTime, Utc};
use entity::audit_entry;
use sea_orm::{ActiveValue::Set, ConnectionTrait};
use serde_json::Value;
use uuid::Uuid;

use crate::{error::AppResult, tenancy::TenantScope};

/// One change to record.
pub struct Change<'a> {
    /// Who made it (none for the system).
    pub actor: Option<Uuid>,
    /// What was done, e.g. `user.create`.
    pub action: &'a str,
    /// The kind of thing changed, e.g. `user`.
    pub entity: &'a str,
    /// Which one.
    pub entity_id: Option<Uuid>,
    /// Its state before, if it existed.
    pub before: Option<Value>,
    /// Its state after, if it still exists.
    pub after: Option<Value>,
}

/// Appends `change` to the tenant's audit log, in the caller's transaction.
///
/// # Errors
/// Database errors.
pub async fn record<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    change: Change<'_>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    scope
        .insert(audit_entry::ActiveModel {
            id: Set(Uuid::now_v7()),
            at: Set(at),
            actor_id: Set(change.actor),
            action: Set(change.action.to_owned()),
            entity: Set(change.entity.to_owned()),
            entity_id: Set(change.entity_id.map(|id| id.to_string())),
            before: Set(change.before),
            after: Set(change.after),
            ..Default::default()
        })
        .await?;
    Ok(())
}
