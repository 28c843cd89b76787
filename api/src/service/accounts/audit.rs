//! The audit log of configuration changes: who, when, before and after,
//! written in the transaction of the change and read newest first.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::UserId;
use entity::audit_entry;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// One change to record.
pub struct Change<'a> {
    /// Who made it (none for the system).
    pub actor: Option<UserId>,
    /// What was done, e.g. `pipeline.updated`.
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

/// Largest page of `auditLog`.
pub const MAX_PAGE: u64 = 200;

/// Where a page of the audit log ended: the last entry's time and id.
/// Entries are only ever appended, so a keyset cursor never skips or
/// repeats one.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Cursor {
    #[serde(rename = "a")]
    at: DateTime<Utc>,
    #[serde(rename = "i")]
    id: Uuid,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(raw: &str) -> AppResult<Self> {
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| AppError::invalid("after", "is not a cursor returned by auditLog"))
    }
}

/// One page of the audit log.
pub struct AuditPage {
    /// The entries with their cursors, newest first.
    pub edges: Vec<(String, audit_entry::Model)>,
    /// Whether older entries follow.
    pub has_next_page: bool,
}

/// A page of the tenant's audit log, newest first, after the cursor `after`.
///
/// # Errors
/// FORBIDDEN below ADMIN; BAD_USER_INPUT for `first` out of range or a
/// foreign cursor.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn page<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    first: i32,
    after: Option<&str>,
) -> AppResult<AuditPage> {
    principal.require_admin("read the audit log")?;
    let first = u64::try_from(first)
        .ok()
        .filter(|f| *f <= MAX_PAGE)
        .ok_or_else(|| AppError::invalid("first", format!("must be from 0 to {MAX_PAGE}")))?;
    let mut query = scope.select::<audit_entry::Entity>();
    if let Some(raw) = after {
        let cursor = Cursor::decode(raw)?;
        query = query.filter(
            Condition::any()
                .add(audit_entry::Column::At.lt(cursor.at))
                .add(
                    Condition::all()
                        .add(audit_entry::Column::At.eq(cursor.at))
                        .add(audit_entry::Column::Id.lt(cursor.id)),
                ),
        );
    }
    let mut rows = query
        .order_by_desc(audit_entry::Column::At)
        .order_by_desc(audit_entry::Column::Id)
        .limit(first + 1)
        .all(scope.conn())
        .await?;
    let has_next_page = rows.len() as u64 > first;
    rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    Ok(AuditPage {
        edges: rows
            .into_iter()
            .map(|row| {
                let cursor = Cursor {
                    at: row.at,
                    id: row.id,
                };
                (cursor.encode(), row)
            })
            .collect(),
        has_next_page,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor {
            at: Utc::now(),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        assert!(Cursor::decode("not-a-cursor").is_err());
    }
}
