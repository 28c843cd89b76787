//! Webhook endpoints: registered by OWNER and ADMIN, each with the event
//! types it wants and a signing secret shown once. Deliveries are signed
//! with HMAC-SHA256 over `"{timestamp}.{body}"`.

use chrono::{DateTime, Utc};
use entity::{webhook_delivery, webhook_endpoint};
use hmac::{Hmac, KeyInit, Mac};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::service::{
    accounts::audit, begin_write, configuration::tenant_config, events::EventType,
    events::webhook_target, validate,
};
use crate::{
    auth::Principal,
    auth::tokens::random_token,
    config::WebhookSettings,
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// The header names a receiver reads.
pub mod headers {
    /// The event's id: the same on every retry, for de-duplication.
    pub const EVENT_ID: &str = "LeadRank-Event-Id";
    /// The event's type, e.g. `lead.tier_changed`.
    pub const EVENT_TYPE: &str = "LeadRank-Event-Type";
    /// Unix seconds when this attempt was signed.
    pub const TIMESTAMP: &str = "LeadRank-Timestamp";
    /// `v1=` and the hex HMAC-SHA256 of `"{timestamp}.{body}"`.
    pub const SIGNATURE: &str = "LeadRank-Signature";
}

/// The signature header's value for `body` sent at `timestamp`.
#[must_use]
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// A new endpoint's fields.
pub struct NewEndpoint {
    pub url: String,
    pub event_types: Vec<EventType>,
    pub description: Option<String>,
}

/// Changes to an endpoint; `None` leaves a part as it is.
#[derive(Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    pub description: Option<Option<String>>,
    /// `true` also clears a disabled endpoint's failure count and reason.
    pub active: Option<bool>,
}

/// Checks a webhook URL: https, or http to localhost when the settings
/// allow it for development; no credentials in it; a host that may be on
/// the public internet (see [`webhook_target`]: an internal address or a
/// name local by definition is refused here, and what a name resolves to
/// is checked again at every delivery).
///
/// # Errors
/// BAD_USER_INPUT on `field`.
pub fn check_url(field: &str, raw: &str, settings: &WebhookSettings) -> AppResult<String> {
    let url = raw.trim();
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| AppError::invalid(field, format!("is not a URL: {e}")))?;
    if url.len() > 2000 {
        return Err(AppError::invalid(field, "must be at most 2000 characters"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(AppError::invalid(
            field,
            "must not hold a user name or password; deliveries are signed instead",
        ));
    }
    let local = parsed
        .host_str()
        .is_some_and(webhook_target::is_loopback_host);
    if let Some(host) = parsed.host_str()
        && let Err(refused) = webhook_target::check_host(host, settings.allow_http_localhost)
    {
        let hint = if local {
            "; for development, LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST=true allows localhost"
        } else {
            ""
        };
        return Err(AppError::invalid(field, format!("{refused}{hint}")));
    }
    match parsed.scheme() {
        "https" if parsed.host_str().is_some() => Ok(url.to_owned()),
        "http" if local && settings.allow_http_localhost => Ok(url.to_owned()),
        "http" if local => Err(AppError::invalid(
            field,
            "must use https; http to localhost needs LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST=true",
        )),
        _ => Err(AppError::invalid(field, "must use https")),
    }
}

fn check_types(types: &[EventType]) -> AppResult<Value> {
    if types.is_empty() {
        return Err(AppError::invalid(
            "event_types",
            "choose at least one event type",
        ));
    }
    let mut names: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    Ok(json!(names))
}

fn new_secret() -> AppResult<String> {
    Ok(format!(
        "whsec_{}",
        random_token(32).map_err(AppError::Internal)?
    ))
}

/// What the audit log keeps of an endpoint: never its secret.
fn snapshot(e: &webhook_endpoint::Model) -> Value {
    json!({
        "url": e.url,
        "description": e.description,
        "event_types": e.event_types,
        "active": e.active,
        "disabled_reason": e.disabled_reason,
    })
}

async fn audited<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    action: &str,
    id: Uuid,
    before: Option<&webhook_endpoint::Model>,
    after: Option<&webhook_endpoint::Model>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    audit::record(
        scope,
        audit::Change {
            actor: Some(principal.user_id),
            action,
            entity: "webhook_endpoint",
            entity_id: Some(id),
            before: before.map(snapshot),
            after: after.map(snapshot),
        },
        now,
    )
    .await
}

/// Registers an endpoint; returns it with its secret, which is not shown again.
///
/// # Errors
/// FORBIDDEN below ADMIN; BAD_USER_INPUT naming the field.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn create_endpoint(
    db: &DatabaseConnection,
    principal: &Principal,
    input: NewEndpoint,
    settings: &WebhookSettings,
    now: DateTime<Utc>,
) -> AppResult<(webhook_endpoint::Model, String)> {
    principal.require_admin("manage webhooks")?;
    let url = check_url("url", &input.url, settings)?;
    let types = check_types(&input.event_types)?;
    let description = validate::optional_text("description", input.description.as_deref(), 500)?;
    let secret = new_secret()?;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let saved = scope
        .insert(webhook_endpoint::ActiveModel {
            id: Set(Uuid::now_v7()),
            url: Set(url),
            description: Set(description),
            event_types: Set(types),
            secret: Set(secret.clone()),
            active: Set(true),
            disabled_reason: Set(None),
            consecutive_failures: Set(0),
            created_by: Set(Some(principal.user_id)),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .await?;
    audited(
        &scope,
        principal,
        "webhook.created",
        saved.id,
        None,
        Some(&saved),
        now,
    )
    .await?;
    tenant_config::commit_change(txn, principal.tenant_id, now).await?;
    Ok((saved, secret))
}

/// Changes an endpoint's URL, event types, description or state.
///
/// # Errors
/// FORBIDDEN below ADMIN; BAD_USER_INPUT; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, endpoint_id = %id))]
pub async fn update_endpoint(
    db: &DatabaseConnection,
    principal: &Principal,
    id: Uuid,
    changes: EndpointChanges,
    settings: &WebhookSettings,
    now: DateTime<Utc>,
) -> AppResult<webhook_endpoint::Model> {
    principal.require_admin("manage webhooks")?;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = scope.get::<webhook_endpoint::Entity>(id).await?;
    let mut row = current.clone().into_active_model();
    if let Some(url) = &changes.url {
        row.url = Set(check_url("url", url, settings)?);
    }
    if let Some(types) = &changes.event_types {
        row.event_types = Set(check_types(types)?);
    }
    if let Some(description) = &changes.description {
        row.description = Set(validate::optional_text(
            "description",
            description.as_deref(),
            500,
        )?);
    }
    if let Some(active) = changes.active {
        row.active = Set(active);
        if active {
            row.disabled_reason = Set(None);
            row.consecutive_failures = Set(0);
        }
    }
    row.updated_at = Set(now);
    let saved = scope.update(row).await?;
    audited(
        &scope,
        principal,
        "webhook.updated",
        id,
        Some(&current),
        Some(&saved),
        now,
    )
    .await?;
    tenant_config::commit_change(txn, principal.tenant_id, now).await?;
    Ok(saved)
}

/// Replaces an endpoint's secret at once; returns the new one, shown once.
///
/// # Errors
/// FORBIDDEN below ADMIN; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, endpoint_id = %id))]
pub async fn rotate_secret(
    db: &DatabaseConnection,
    principal: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<(webhook_endpoint::Model, String)> {
    principal.require_admin("manage webhooks")?;
    let secret = new_secret()?;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = scope.get::<webhook_endpoint::Entity>(id).await?;
    let mut row = current.clone().into_active_model();
    row.secret = Set(secret.clone());
    row.updated_at = Set(now);
    let saved = scope.update(row).await?;
    audited(
        &scope,
        principal,
        "webhook.secret_rotated",
        id,
        Some(&current),
        Some(&saved),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok((saved, secret))
}

/// Deletes an endpoint and its deliveries.
///
/// # Errors
/// FORBIDDEN below ADMIN; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, endpoint_id = %id))]
pub async fn delete_endpoint(
    db: &DatabaseConnection,
    principal: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    principal.require_admin("manage webhooks")?;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = scope.get::<webhook_endpoint::Entity>(id).await?;
    scope
        .delete_many::<webhook_delivery::Entity>()
        .filter(webhook_delivery::Column::EndpointId.eq(id))
        .exec(&txn)
        .await?;
    scope
        .delete_many::<webhook_endpoint::Entity>()
        .filter(webhook_endpoint::Column::Id.eq(id))
        .exec(&txn)
        .await?;
    audited(
        &scope,
        principal,
        "webhook.deleted",
        id,
        Some(&current),
        None,
        now,
    )
    .await?;
    tenant_config::commit_change(txn, principal.tenant_id, now).await?;
    Ok(())
}

/// The tenant's endpoints, oldest first.
///
/// # Errors
/// FORBIDDEN below ADMIN.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn endpoints<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
) -> AppResult<Vec<webhook_endpoint::Model>> {
    principal.require_admin("see webhooks")?;
    Ok(scope
        .select::<webhook_endpoint::Entity>()
        .order_by_asc(webhook_endpoint::Column::Id)
        .all(scope.conn())
        .await?)
}

/// The delivery log, newest first: of one endpoint, and of one status.
///
/// # Errors
/// FORBIDDEN below ADMIN; NOT_FOUND for another tenant's endpoint.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id, endpoint_id = ?endpoint))]
pub async fn deliveries<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    endpoint: Option<Uuid>,
    status: Option<&str>,
    first: u64,
) -> AppResult<Vec<webhook_delivery::Model>> {
    principal.require_admin("see webhook deliveries")?;
    let mut query = scope.select::<webhook_delivery::Entity>();
    if let Some(endpoint) = endpoint {
        scope.get::<webhook_endpoint::Entity>(endpoint).await?;
        query = query.filter(webhook_delivery::Column::EndpointId.eq(endpoint));
    }
    if let Some(status) = status {
        query = query.filter(webhook_delivery::Column::Status.eq(status));
    }
    Ok(query
        .order_by_desc(webhook_delivery::Column::Id)
        .limit(first)
        .all(scope.conn())
        .await?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn settings(allow: bool) -> WebhookSettings {
        WebhookSettings {
            worker: false,
            poll_interval: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(1),
            retry_base: std::time::Duration::from_secs(1),
            max_attempts: 3,
            disable_after: 3,
            per_endpoint: 1,
            per_tenant: 1,
            allow_http_localhost: allow,
        }
    }

    #[test]
    fn only_https_or_local_http_when_allowed_is_accepted() {
        let strict = settings(false);
        let dev = settings(true);
        assert!(check_url("u", "https://hooks.example.com/leadrank", &strict).is_ok());
        assert!(check_url("u", "http://hooks.example.com/x", &dev).is_err());
        assert!(check_url("u", "http://127.0.0.1:9000/x", &strict).is_err());
        assert!(check_url("u", "http://127.0.0.1:9000/x", &dev).is_ok());
        assert!(check_url("u", "http://localhost/x", &dev).is_ok());
        assert!(check_url("u", "https://user:pw@hooks.example.com/", &strict).is_err());
        assert!(check_url("u", "ftp://hooks.example.com/", &dev).is_err());
        assert!(check_url("u", "not a url", &dev).is_err());
    }

    #[test]
    fn the_signature_is_the_published_hmac_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            sign("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }
}
