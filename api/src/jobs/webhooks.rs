//! The webhook worker: sends the outbox's due deliveries, signed, with
//! retries and exponential backoff, a few at a time per endpoint and per
//! tenant, every endpoint and tenant at once, and disables an endpoint that
//! keeps failing. Only public addresses are connected to
//! ([`webhook_target`]).
//!
//! Several replicas may run it: a delivery is claimed (`locked_until`) by
//! one conditional UPDATE before it is sent, so only one process sends
//! each attempt. A delivery is marked DELIVERED once its endpoint answered
//! 2xx and is never sent again; a process dying between the answer and the
//! mark sends it once more after the claim expires, with the same event id
//! for the receiver to de-duplicate.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Duration, Utc};
use entity::{webhook_delivery, webhook_endpoint};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::{
    config::WebhookSettings,
    error::AppResult,
    service::{
        configuration::tenant_config,
        events::webhook_target::{self, GuardedResolver},
        events::webhooks::{headers, sign},
    },
    tenancy::{TenantScope, Walled, across_tenants},
};

/// Deliveries claimed per tenant per pass.
const CLAIM_BATCH: u64 = 100;

/// The longest wait between two attempts.
const MAX_BACKOFF_SECS: i64 = 6 * 3600;

/// The HTTP client deliveries go through: no redirects (a receiver that
/// moved must be re-registered, and a redirect could point inside), the
/// configured timeout per request, names resolved by the system resolver
/// through [`GuardedResolver`], so that only public addresses are
/// connected to.
///
/// # Errors
/// When TLS cannot be set up.
pub fn client(settings: &WebhookSettings) -> anyhow::Result<reqwest::Client> {
    client_with_lookup(settings, webhook_target::system_lookup())
}

/// [`client`] with names resolved by `lookup`: tests play a DNS server
/// that answers what they choose.
///
/// # Errors
/// When TLS cannot be set up.
pub fn client_with_lookup(
    settings: &WebhookSettings,
    lookup: webhook_target::Lookup,
) -> anyhow::Result<reqwest::Client> {
    crate::tls::install_provider();
    Ok(reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve and connect on our behalf, past the check.
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver::new(
            lookup,
            settings.allow_http_localhost,
        )))
        .user_agent(concat!("LeadRank-Webhooks/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Runs the worker in the background until the process ends. Each poll
/// claims what is due and starts sending it without waiting for earlier
/// sends to finish, so a receiver that answers slowly holds only its own
/// endpoint's slots (and its tenant's), never the other endpoints' turns.
pub fn spawn(db: DatabaseConnection, settings: WebhookSettings) {
    tokio::spawn(async move {
        let client = match client(&settings) {
            Ok(client) => client,
            Err(err) => {
                tracing::error!(error = %err, "webhooks cannot be sent: the HTTP client failed to start");
                return;
            }
        };
        let mut ticker = tokio::time::interval(settings.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let dispatcher = Dispatcher::new(db, client, settings);
        loop {
            ticker.tick().await;
            // The sends run on; the next poll starts whatever else is due.
            if let Err(err) = dispatcher.pass(Utc::now()).await {
                tracing::warn!(error = %err, "webhook worker pass failed; retrying at the next poll");
            }
        }
    });
}

/// One pass that waits for its sends: sends every delivery due at `now`,
/// within the per-endpoint and per-tenant limits; returns how many were
/// attempted.
///
/// # Errors
/// Database errors.
pub async fn deliver_due(
    db: &DatabaseConnection,
    client: &reqwest::Client,
    settings: &WebhookSettings,
    now: DateTime<Utc>,
) -> AppResult<usize> {
    let dispatcher = Dispatcher::new(db.clone(), client.clone(), settings.clone());
    let sends = dispatcher.pass(now).await?;
    let count = sends.len();
    for send in sends {
        if let Err(err) = send.await {
            tracing::error!(error = %err, "a webhook send task failed");
        }
    }
    Ok(count)
}

/// Requests in flight from this process, per endpoint and per tenant.
#[derive(Default)]
struct InFlight {
    endpoints: HashMap<Uuid, usize>,
    tenants: HashMap<Uuid, usize>,
}

/// A request's place in [`InFlight`], given back when the send ends
/// (however it ends: the guard lives in the send's task).
struct Slot {
    in_flight: Arc<Mutex<InFlight>>,
    endpoint: Uuid,
    tenant: Uuid,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = lock(&self.in_flight);
        let in_flight = &mut *guard;
        for (map, key) in [
            (&mut in_flight.endpoints, self.endpoint),
            (&mut in_flight.tenants, self.tenant),
        ] {
            if let Some(n) = map.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

/// The counters stay right if a holder panicked: they are plain numbers.
fn lock(in_flight: &Mutex<InFlight>) -> std::sync::MutexGuard<'_, InFlight> {
    in_flight
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Claims due deliveries and starts each send as a task of its own, as
/// long as its endpoint has fewer than `per_endpoint` and its tenant fewer
/// than `per_tenant` requests in flight. A delivery over a limit stays
/// unclaimed for a later pass (or another replica).
#[derive(Clone)]
pub struct Dispatcher {
    db: DatabaseConnection,
    client: reqwest::Client,
    settings: Arc<WebhookSettings>,
    in_flight: Arc<Mutex<InFlight>>,
}

impl Dispatcher {
    /// A dispatcher with nothing in flight.
    #[must_use]
    pub fn new(db: DatabaseConnection, client: reqwest::Client, settings: WebhookSettings) -> Self {
        Self {
            db,
            client,
            settings: Arc::new(settings),
            in_flight: Arc::default(),
        }
    }

    /// A slot for one more request to `endpoint` of `tenant`, if both have room.
    fn reserve(&self, tenant: Uuid, endpoint: Uuid) -> Option<Slot> {
        let mut in_flight = lock(&self.in_flight);
        let at_endpoint = in_flight.endpoints.get(&endpoint).copied().unwrap_or(0);
        let at_tenant = in_flight.tenants.get(&tenant).copied().unwrap_or(0);
        if at_endpoint >= self.settings.per_endpoint || at_tenant >= self.settings.per_tenant {
            return None;
        }
        *in_flight.endpoints.entry(endpoint).or_default() += 1;
        *in_flight.tenants.entry(tenant).or_default() += 1;
        Some(Slot {
            in_flight: Arc::clone(&self.in_flight),
            endpoint,
            tenant,
        })
    }

    /// Claims what is due at `now` for every tenant and starts sending
    /// it; returns the sends, which run on whether or not they are awaited.
    ///
    /// # Errors
    /// Database errors.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn pass(&self, now: DateTime<Utc>) -> AppResult<Vec<JoinHandle<()>>> {
        // The one read across tenants: which tenants have something due. The
        // rest of the pass goes through each tenant's scope.
        let txn = across_tenants(&self.db).await?;
        #[allow(clippy::disallowed_methods)]
        let tenants: Vec<Uuid> = webhook_delivery::Entity::find()
            .select_only()
            .column(webhook_delivery::Column::TenantId)
            .distinct()
            .filter(webhook_delivery::Column::Status.eq("PENDING"))
            .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
            .into_tuple()
            .all(&txn)
            .await?;
        txn.commit().await?;
        let mut sends = Vec::new();
        for tenant in tenants {
            // One tenant's database trouble does not keep the others waiting.
            match self.dispatch_tenant(tenant, now).await {
                Ok(started) => sends.extend(started),
                Err(err) => {
                    tracing::warn!(tenant_id = %tenant, error = %err, "webhook deliveries could not be claimed");
                }
            }
        }
        Ok(sends)
    }

    async fn dispatch_tenant(
        &self,
        tenant: Uuid,
        now: DateTime<Utc>,
    ) -> AppResult<Vec<JoinHandle<()>>> {
        // Endpoints with no room are left out of the query, or a slow
        // endpoint's backlog would fill every claim and starve the
        // tenant's other endpoints.
        let full: Vec<Uuid> = {
            let in_flight = lock(&self.in_flight);
            if in_flight.tenants.get(&tenant).copied().unwrap_or(0) >= self.settings.per_tenant {
                return Ok(Vec::new());
            }
            in_flight
                .endpoints
                .iter()
                .filter(|(_, n)| **n >= self.settings.per_endpoint)
                .map(|(id, _)| *id)
                .collect()
        };
        let db = &self.db;
        let walled = Walled::new(db, tenant);
        let scope = walled.scope();
        let due = scope
            .select::<webhook_delivery::Entity>()
            .filter(webhook_delivery::Column::EndpointId.is_not_in(full))
            .filter(webhook_delivery::Column::Status.eq("PENDING"))
            .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
            .filter(
                Condition::any()
                    .add(webhook_delivery::Column::LockedUntil.is_null())
                    .add(webhook_delivery::Column::LockedUntil.lt(now)),
            )
            .order_by_asc(webhook_delivery::Column::NextAttemptAt)
            .order_by_asc(webhook_delivery::Column::Id)
            .limit(CLAIM_BATCH)
            .all(scope.conn())
            .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let endpoints: HashMap<Uuid, webhook_endpoint::Model> = scope
            .select::<webhook_endpoint::Entity>()
            .filter(webhook_endpoint::Column::Id.is_in(due.iter().map(|d| d.endpoint_id)))
            .all(scope.conn())
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        let lock = now
            + Duration::from_std(self.settings.timeout).unwrap_or_else(|_| Duration::seconds(10))
            + Duration::seconds(60);
        let mut sends = Vec::new();
        for delivery in due {
            let Some(endpoint) = endpoints.get(&delivery.endpoint_id).filter(|e| e.active) else {
                give_up(&scope, &delivery, "the endpoint is disabled or deleted").await?;
                continue;
            };
            // Full: a later pass sends it once a slot is free.
            let Some(slot) = self.reserve(tenant, endpoint.id) else {
                continue;
            };
            let won = scope
                .update_many::<webhook_delivery::Entity>()
                .col_expr(
                    webhook_delivery::Column::LockedUntil,
                    Expr::value(Some(lock)),
                )
                .filter(webhook_delivery::Column::Id.eq(delivery.id))
                .filter(webhook_delivery::Column::Status.eq("PENDING"))
                .filter(
                    Condition::any()
                        .add(webhook_delivery::Column::LockedUntil.is_null())
                        .add(webhook_delivery::Column::LockedUntil.lt(now)),
                )
                .exec(scope.conn())
                .await?;
            if won.rows_affected != 1 {
                continue;
            }
            let (db, client, settings, endpoint) = (
                self.db.clone(),
                self.client.clone(),
                Arc::clone(&self.settings),
                endpoint.clone(),
            );
            sends.push(tokio::spawn(async move {
                let _slot = slot;
                let walled = Walled::new(&db, tenant);
                let scope = walled.scope();
                if let Err(err) = attempt(&scope, &client, &settings, &endpoint, delivery).await {
                    tracing::warn!(tenant_id = %tenant, endpoint_id = %endpoint.id, error = %err, "a webhook attempt could not be recorded; it is retried once its claim expires");
                }
            }));
        }
        Ok(sends)
    }
}

/// What an attempt came to.
enum Answer {
    Delivered(u16),
    Refused(Option<u16>, String),
}

async fn post(
    client: &reqwest::Client,
    settings: &WebhookSettings,
    endpoint: &webhook_endpoint::Model,
    delivery: &webhook_delivery::Model,
) -> Answer {
    // An address in the URL is connected to without a lookup, so the
    // resolver never sees it: check the host here, also for endpoints
    // stored before URLs were checked at registration.
    let url = match reqwest::Url::parse(&endpoint.url) {
        Ok(url) => url,
        Err(err) => return Answer::Refused(None, format!("the URL is not valid: {err}")),
    };
    if let Err(refused) = url.host_str().map_or(Ok(()), |host| {
        webhook_target::check_host(host, settings.allow_http_localhost)
    }) {
        return Answer::Refused(None, format!("the URL {refused}"));
    }
    let body = match serde_json::to_vec(&delivery.payload) {
        Ok(body) => body,
        Err(err) => return Answer::Refused(None, format!("the payload cannot be encoded: {err}")),
    };
    let timestamp = Utc::now().timestamp();
    let sent = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(headers::EVENT_ID, delivery.event_id.to_string())
        .header(headers::EVENT_TYPE, &delivery.event_type)
        .header(headers::TIMESTAMP, timestamp.to_string())
        .header(headers::SIGNATURE, sign(&endpoint.secret, timestamp, &body))
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => {
            Answer::Delivered(response.status().as_u16())
        }
        Ok(response) => Answer::Refused(
            Some(response.status().as_u16()),
            format!("the endpoint answered HTTP {}", response.status()),
        ),
        Err(err) => match webhook_target::refused_in(&err) {
            Some(refused) => Answer::Refused(None, format!("the URL {refused}")),
            // Without the URL: it may carry a receiver's own token.
            None => Answer::Refused(None, err.without_url().to_string()),
        },
    }
}

async fn attempt(
    scope: &TenantScope<'_, Walled>,
    client: &reqwest::Client,
    settings: &WebhookSettings,
    endpoint: &webhook_endpoint::Model,
    delivery: webhook_delivery::Model,
) -> AppResult<()> {
    let answer = post(client, settings, endpoint, &delivery).await;
    let now = Utc::now();
    let attempts = delivery.attempts + 1;
    let update = scope
        .update_many::<webhook_delivery::Entity>()
        .filter(webhook_delivery::Column::Id.eq(delivery.id))
        .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempts))
        .col_expr(
            webhook_delivery::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    match answer {
        Answer::Delivered(code) => {
            crate::metrics::webhook_delivery("delivered");
            update
                .col_expr(webhook_delivery::Column::Status, Expr::value("DELIVERED"))
                .col_expr(
                    webhook_delivery::Column::LastStatusCode,
                    Expr::value(Some(i32::from(code))),
                )
                .col_expr(
                    webhook_delivery::Column::DeliveredAt,
                    Expr::value(Some(now)),
                )
                .exec(scope.conn())
                .await?;
            scope
                .update_many::<webhook_endpoint::Entity>()
                .col_expr(
                    webhook_endpoint::Column::ConsecutiveFailures,
                    Expr::value(0),
                )
                .filter(webhook_endpoint::Column::Id.eq(endpoint.id))
                .exec(scope.conn())
                .await?;
        }
        Answer::Refused(code, error) => {
            tracing::warn!(
                tenant_id = %scope.tenant_id(), endpoint_id = %endpoint.id, delivery_id = %delivery.id,
                event_type = %delivery.event_type, attempts, error = %error,
                "webhook delivery failed"
            );
            let status = if attempts >= settings.max_attempts {
                "FAILED"
            } else {
                "PENDING"
            };
            crate::metrics::webhook_delivery(if status == "FAILED" {
                "failed"
            } else {
                "retry"
            });
            update
                .col_expr(webhook_delivery::Column::Status, Expr::value(status))
                .col_expr(
                    webhook_delivery::Column::LastStatusCode,
                    Expr::value(code.map(i32::from)),
                )
                .col_expr(
                    webhook_delivery::Column::LastError,
                    Expr::value(Some(error.chars().take(1000).collect::<String>())),
                )
                .col_expr(
                    webhook_delivery::Column::NextAttemptAt,
                    Expr::value(now + backoff(settings, attempts)),
                )
                .exec(scope.conn())
                .await?;
            scope
                .update_many::<webhook_endpoint::Entity>()
                .col_expr(
                    webhook_endpoint::Column::ConsecutiveFailures,
                    sea_orm::sea_query::ExprTrait::add(
                        Expr::col(webhook_endpoint::Column::ConsecutiveFailures),
                        1,
                    ),
                )
                .filter(webhook_endpoint::Column::Id.eq(endpoint.id))
                .exec(scope.conn())
                .await?;
            let disabled = scope
                .update_many::<webhook_endpoint::Entity>()
                .col_expr(webhook_endpoint::Column::Active, Expr::value(false))
                .col_expr(
                    webhook_endpoint::Column::DisabledReason,
                    Expr::value(Some(format!(
                        "disabled after {} failed attempts in a row; the last: {}",
                        settings.disable_after,
                        error.chars().take(500).collect::<String>()
                    ))),
                )
                .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(now))
                .filter(webhook_endpoint::Column::Id.eq(endpoint.id))
                .filter(webhook_endpoint::Column::Active.eq(true))
                .filter(webhook_endpoint::Column::ConsecutiveFailures.gte(settings.disable_after))
                .exec(scope.conn())
                .await?;
            if disabled.rows_affected == 1 {
                tracing::warn!(
                    tenant_id = %scope.tenant_id(), endpoint_id = %endpoint.id,
                    "webhook endpoint disabled after repeated failures"
                );
                // New events stop going to it, in every process.
                tenant_config::announce(scope, now).await?;
                tenant_config::invalidate(scope.tenant_id());
            }
        }
    }
    Ok(())
}

/// The wait after `attempts` failed attempts: the base, doubled each time.
fn backoff(settings: &WebhookSettings, attempts: i32) -> Duration {
    let base = i64::try_from(settings.retry_base.as_millis()).unwrap_or(i64::MAX);
    let factor = 1_i64 << attempts.clamp(1, 30).saturating_sub(1);
    Duration::milliseconds(base.saturating_mul(factor).min(MAX_BACKOFF_SECS * 1000))
}

async fn give_up(
    scope: &TenantScope<'_, Walled>,
    delivery: &webhook_delivery::Model,
    why: &str,
) -> AppResult<()> {
    scope
        .update_many::<webhook_delivery::Entity>()
        .col_expr(webhook_delivery::Column::Status, Expr::value("FAILED"))
        .col_expr(webhook_delivery::Column::LastError, Expr::value(Some(why)))
        .col_expr(
            webhook_delivery::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(webhook_delivery::Column::Id.eq(delivery.id))
        .exec(scope.conn())
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_six_hours() {
        let settings = WebhookSettings {
            worker: true,
            poll_interval: std::time::Duration::from_secs(1),
            timeout: std::time::Duration::from_secs(10),
            retry_base: std::time::Duration::from_secs(30),
            max_attempts: 10,
            disable_after: 50,
            per_endpoint: 4,
            per_tenant: 16,
            allow_http_localhost: false,
        };
        assert_eq!(backoff(&settings, 1), Duration::seconds(30));
        assert_eq!(backoff(&settings, 2), Duration::seconds(60));
        assert_eq!(backoff(&settings, 3), Duration::seconds(120));
        assert_eq!(backoff(&settings, 20), Duration::hours(6));
    }
}
