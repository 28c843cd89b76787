//! API keys: how machines (a website backend, a product, an integration
//! platform) call LeadRank without a person's session.
//!
//! OWNER and ADMIN create a key with a name and scopes; its secret is shown
//! once, as `lrk_<tenant>_<key>_<secret>`, and only the SHA-256 of the
//! secret part is stored. The tenant and key ids in front let a request
//! find the key by primary key through its tenant's scope, so a key can
//! never be looked up in, or act on, another tenant. Creating and revoking
//! are audited, without the secret.
//!
//! A key acts as an ADMIN of its tenant would, but only through the
//! operations its scopes allow (see `graphql::key_gate`); what it
//! writes is attributed to the key (its id in `created_by` and `actor_id`).

use chrono::{DateTime, Utc};
use entity::UserId;
use entity::api_key;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, IntoActiveModel,
    QueryFilter, QueryOrder, sea_query::Expr,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::service::{accounts::audit, begin_write, validate};
use crate::{
    auth::{Principal, tokens::random_token},
    error::{AppError, AppResult},
    tenancy::{TenantScope, Walled},
};

/// What every key's secret starts with, so that scanners and people
/// recognise a leaked one.
pub const PREFIX: &str = "lrk_";

/// A key's `last_used_at` is written at most this often, so that a busy
/// key does not turn every request into a write.
const LAST_USED_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// One permission a key can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Record signals (`POST /v1/events`, `recordActivity`,
    /// `recordActivities`) and create or update leads.
    Ingest,
    /// Read leads, the queue and the tenant's configuration as an ADMIN
    /// would; no changes.
    Read,
}

impl Scope {
    /// The name stored and shown.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ingest => "INGEST",
            Self::Read => "READ",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "INGEST" => Some(Self::Ingest),
            "READ" => Some(Self::Read),
            _ => None,
        }
    }
}

/// The scopes a key holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scopes {
    pub ingest: bool,
    pub read: bool,
}

impl Scopes {
    /// Reads the stored form, `INGEST,READ`.
    #[must_use]
    pub fn parse(stored: &str) -> Self {
        stored
            .split(',')
            .filter_map(Scope::parse)
            .fold(Self::default(), |scopes, scope| scopes.with(scope))
    }

    /// These scopes and `scope`.
    #[must_use]
    pub fn with(self, scope: Scope) -> Self {
        match scope {
            Scope::Ingest => Self {
                ingest: true,
                ..self
            },
            Scope::Read => Self { read: true, ..self },
        }
    }

    /// Whether the key holds `scope`.
    #[must_use]
    pub fn has(self, scope: Scope) -> bool {
        match scope {
            Scope::Ingest => self.ingest,
            Scope::Read => self.read,
        }
    }

    /// The scopes held, in a fixed order.
    #[must_use]
    pub fn list(self) -> Vec<Scope> {
        [Scope::Ingest, Scope::Read]
            .into_iter()
            .filter(|s| self.has(*s))
            .collect()
    }

    /// The stored form.
    #[must_use]
    pub fn stored(self) -> String {
        self.list()
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A request's caller when it authenticated with an API key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyCaller {
    pub tenant_id: Uuid,
    pub id: Uuid,
    pub name: String,
    pub scopes: Scopes,
}

impl ApiKeyCaller {
    /// The key as a principal: an ADMIN of its tenant whose "user" is the
    /// key, so that what it writes is attributed to it. What it may do is
    /// narrowed by the GraphQL key gate before anything runs.
    #[must_use]
    pub fn principal(&self) -> Principal {
        Principal {
            tenant_id: self.tenant_id,
            // The key stands in the user's place in history and audit.
            user_id: UserId(self.id),
            role: entity::enums::Role::Admin,
        }
    }
}

/// The parts of a key as handed out.
struct Secret {
    tenant_id: Uuid,
    id: Uuid,
    secret: String,
}

fn parse_secret(key: &str) -> Option<Secret> {
    let rest = key.strip_prefix(PREFIX)?;
    let mut parts = rest.splitn(3, '_');
    let tenant_id = Uuid::try_parse(parts.next()?).ok()?;
    let id = Uuid::try_parse(parts.next()?).ok()?;
    let secret = parts.next()?;
    (secret.len() >= 32).then(|| Secret {
        tenant_id,
        id,
        secret: secret.to_owned(),
    })
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Why a presented key does not let its holder in. The message does not
/// say which part was wrong.
pub const REFUSED: &str = "this API key is not valid or was revoked";

/// Checks a presented key: its tenant's row by id, not revoked, the secret
/// matching its hash. Notes when it was used (at most once a minute).
///
/// # Errors
/// `Ok(Err(message))` when the key does not admit; `Err` for database
/// errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = tracing::field::Empty, api_key_id = tracing::field::Empty))]
pub async fn authenticate(
    db: &DatabaseConnection,
    presented: &str,
    now: DateTime<Utc>,
) -> AppResult<Result<ApiKeyCaller, &'static str>> {
    let Some(secret) = parse_secret(presented) else {
        return Ok(Err(REFUSED));
    };
    let walled = Walled::new(db, secret.tenant_id);
    let scope = walled.scope();
    let Some(row) = scope.find::<api_key::Entity>(secret.id).await? else {
        return Ok(Err(REFUSED));
    };
    let matches: bool = hash(&secret.secret)
        .as_bytes()
        .ct_eq(row.secret_hash.as_bytes())
        .into();
    if !matches || row.revoked_at.is_some() {
        return Ok(Err(REFUSED));
    }
    let span = tracing::Span::current();
    span.record("tenant_id", tracing::field::display(row.tenant_id));
    span.record("api_key_id", tracing::field::display(row.id));
    if row
        .last_used_at
        .is_none_or(|at| now - at >= LAST_USED_EVERY)
    {
        scope
            .update_many::<api_key::Entity>()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(Some(now)))
            .filter(api_key::Column::Id.eq(row.id))
            .exec(scope.conn())
            .await?;
    }
    Ok(Ok(ApiKeyCaller {
        tenant_id: row.tenant_id,
        id: row.id,
        name: row.name,
        scopes: Scopes::parse(&row.scopes),
    }))
}

/// What the audit log keeps of a key: never its secret or hash.
fn snapshot(key: &api_key::Model) -> Value {
    json!({
        "name": key.name,
        "scopes": Scopes::parse(&key.scopes).list().iter().map(|s| s.name()).collect::<Vec<_>>(),
        "revokedAt": key.revoked_at,
    })
}

async fn audited<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    action: &str,
    before: Option<&api_key::Model>,
    after: &api_key::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    audit::record(
        scope,
        audit::Change {
            actor: Some(principal.user_id),
            action,
            entity: "api_key",
            entity_id: Some(after.id),
            before: before.map(snapshot),
            after: Some(snapshot(after)),
        },
        now,
    )
    .await
}

/// Creates a key; returns it with its secret, which is not shown again.
///
/// # Errors
/// FORBIDDEN below ADMIN; BAD_USER_INPUT for an empty name or no scopes.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn create_api_key(
    db: &DatabaseConnection,
    principal: &Principal,
    name: &str,
    scopes: &[Scope],
    now: DateTime<Utc>,
) -> AppResult<(api_key::Model, String)> {
    principal.require_admin("manage API keys")?;
    let name = validate::required_text("name", name, 120)?;
    let scopes = scopes
        .iter()
        .fold(Scopes::default(), |held, scope| held.with(*scope));
    if scopes == Scopes::default() {
        return Err(AppError::invalid(
            "scopes",
            "choose at least one scope: INGEST, READ or both",
        ));
    }
    let secret = random_token(32)?;
    let id = Uuid::now_v7();
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let saved = scope
        .insert(api_key::ActiveModel {
            id: Set(id),
            name: Set(name),
            scopes: Set(scopes.stored()),
            secret_hash: Set(hash(&secret)),
            created_by: Set(Some(principal.user_id)),
            created_at: Set(now),
            last_used_at: Set(None),
            revoked_at: Set(None),
            ..Default::default()
        })
        .await?;
    audited(&scope, principal, "api_key.created", None, &saved, now).await?;
    txn.commit().await?;
    let shown = format!(
        "{PREFIX}{}_{}_{secret}",
        principal.tenant_id.simple(),
        id.simple()
    );
    Ok((saved, shown))
}

/// The tenant's keys, newest first, revoked ones included.
///
/// # Errors
/// FORBIDDEN below ADMIN; database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn api_keys(
    scope: &TenantScope<'_, Walled>,
    principal: &Principal,
) -> AppResult<Vec<api_key::Model>> {
    principal.require_admin("manage API keys")?;
    Ok(scope
        .select::<api_key::Entity>()
        .order_by_desc(api_key::Column::CreatedAt)
        .order_by_desc(api_key::Column::Id)
        .all(scope.conn())
        .await?)
}

/// Revokes a key: from now on it is refused. Revoking a revoked key
/// changes nothing.
///
/// # Errors
/// FORBIDDEN below ADMIN; NOT_FOUND (also for another tenant's key).
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, api_key_id = %id))]
pub async fn revoke_api_key(
    db: &DatabaseConnection,
    principal: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<api_key::Model> {
    principal.require_admin("manage API keys")?;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let before = scope.get::<api_key::Entity>(id).await?;
    if before.revoked_at.is_some() {
        return Ok(before);
    }
    let mut row = before.clone().into_active_model();
    row.revoked_at = Set(Some(now));
    let after = scope.update(row).await?;
    audited(
        &scope,
        principal,
        "api_key.revoked",
        Some(&before),
        &after,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_key_parses_back_into_its_parts() {
        let (t, k) = (Uuid::now_v7(), Uuid::now_v7());
        let key = format!("lrk_{}_{}_{}", t.simple(), k.simple(), "a_b-c".repeat(10));
        let parsed = parse_secret(&key).unwrap();
        assert_eq!((parsed.tenant_id, parsed.id), (t, k));
        assert_eq!(parsed.secret, "a_b-c".repeat(10));
        assert!(parse_secret("lrk_short").is_none());
        assert!(parse_secret(&format!("lrk_{}_{}_tooshort", t.simple(), k.simple())).is_none());
    }

    #[test]
    fn scopes_are_stored_in_one_order() {
        assert_eq!(Scopes::parse("READ,INGEST").stored(), "INGEST,READ");
    }
}
