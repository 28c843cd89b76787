//! Webhook endpoints and their delivery log (OWNER and ADMIN).

use crate::graphql::cost;
use crate::graphql::id_at;
use async_graphql::{
    Context, Enum, ID, InputObject, Json, MaybeUndefined, Object, Result, SimpleObject,
};
use chrono::{DateTime, Utc};
use entity::{webhook_delivery, webhook_endpoint};
use serde_json::Value;

use crate::graphql::RequestContext;
use crate::{
    config::WebhookSettings,
    error::IntoGraphql,
    service::{
        events::EventType,
        events::webhooks::{self, EndpointChanges, NewEndpoint},
        validate,
    },
};

/// What an endpoint can be sent.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum WebhookEventType {
    /// `lead.tier_changed`: a lead's tier moved (or a new lead got its first).
    LeadTierChanged,
    /// `lead.became_urgent`: an urgent signal arrived.
    LeadBecameUrgent,
    /// `lead.went_cold`: no reply for the model's cold days.
    LeadWentCold,
    /// `lead.assigned`: a lead got an owner, by a person or a rule.
    LeadAssigned,
    /// `lead.closed`: won or lost.
    LeadClosed,
    /// `lead.returned_to_pool`: an owned open lead went back to the shared
    /// pool (neglected or long cold, or its owner's leads were moved there).
    LeadReturnedToPool,
    /// `job.finished`: a re-scoring run ended, with its counts.
    JobFinished,
    /// `lead.churn_risk`: a lead (a customer, usually) became a churn risk,
    /// with its causes (`data.causes`).
    LeadChurnRisk,
    /// `lead.went_stale`: a lead sat in its stage past the stage's rotting days.
    LeadWentStale,
    /// `digest.weekly`: every Monday at the company's nightly hour, the
    /// week's figures of the company (`data.team` null) and of each team:
    /// new leads, won and lost, won rate per tier, overdue share, top
    /// movers.
    DigestWeekly,
}

impl From<WebhookEventType> for EventType {
    fn from(t: WebhookEventType) -> Self {
        match t {
            WebhookEventType::LeadTierChanged => Self::TierChanged,
            WebhookEventType::LeadBecameUrgent => Self::BecameUrgent,
            WebhookEventType::LeadWentCold => Self::WentCold,
            WebhookEventType::LeadAssigned => Self::Assigned,
            WebhookEventType::LeadClosed => Self::Closed,
            WebhookEventType::LeadReturnedToPool => Self::ReturnedToPool,
            WebhookEventType::JobFinished => Self::JobFinished,
            WebhookEventType::LeadChurnRisk => Self::ChurnRisk,
            WebhookEventType::LeadWentStale => Self::WentStale,
            WebhookEventType::DigestWeekly => Self::WeeklyDigest,
        }
    }
}

impl From<EventType> for WebhookEventType {
    fn from(t: EventType) -> Self {
        match t {
            EventType::TierChanged => Self::LeadTierChanged,
            EventType::BecameUrgent => Self::LeadBecameUrgent,
            EventType::WentCold => Self::LeadWentCold,
            EventType::Assigned => Self::LeadAssigned,
            EventType::Closed => Self::LeadClosed,
            EventType::ReturnedToPool => Self::LeadReturnedToPool,
            EventType::JobFinished => Self::JobFinished,
            EventType::ChurnRisk => Self::LeadChurnRisk,
            EventType::WentStale => Self::LeadWentStale,
            EventType::WeeklyDigest => Self::DigestWeekly,
        }
    }
}

/// Where deliveries go. The signing secret is shown only by
/// `createWebhookEndpoint` and `rotateWebhookSecret`.
#[derive(SimpleObject)]
pub struct WebhookEndpoint {
    pub id: ID,
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<WebhookEventType>,
    /// An inactive endpoint gets no new deliveries.
    pub active: bool,
    /// Why LeadRank disabled it, after failures in a row.
    pub disabled_reason: Option<String>,
    pub consecutive_failures: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<webhook_endpoint::Model> for WebhookEndpoint {
    fn from(e: webhook_endpoint::Model) -> Self {
        Self {
            id: ID(e.id.to_string()),
            url: e.url,
            description: e.description,
            event_types: e
                .event_types
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(EventType::parse)
                .map(Into::into)
                .collect(),
            active: e.active,
            disabled_reason: e.disabled_reason,
            consecutive_failures: e.consecutive_failures,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum WebhookDeliveryStatus {
    /// Waiting for its first attempt or a retry.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Every attempt failed, or the endpoint was disabled.
    Failed,
}

impl WebhookDeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Delivered => "DELIVERED",
            Self::Failed => "FAILED",
        }
    }
}

/// One event for one endpoint, and how sending it went.
#[derive(SimpleObject)]
pub struct WebhookDelivery {
    pub id: ID,
    pub endpoint_id: ID,
    /// Sent as `LeadRank-Event-Id`, the same on every retry.
    pub event_id: ID,
    pub event_type: String,
    pub status: WebhookDeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// The body as sent.
    pub payload: Json<Value>,
}

impl From<webhook_delivery::Model> for WebhookDelivery {
    fn from(d: webhook_delivery::Model) -> Self {
        Self {
            id: ID(d.id.to_string()),
            endpoint_id: ID(d.endpoint_id.to_string()),
            event_id: ID(d.event_id.to_string()),
            event_type: d.event_type,
            status: match d.status.as_str() {
                "DELIVERED" => WebhookDeliveryStatus::Delivered,
                "FAILED" => WebhookDeliveryStatus::Failed,
                _ => WebhookDeliveryStatus::Pending,
            },
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
            payload: Json(d.payload),
        }
    }
}

#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// https; http to localhost only with LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST.
    pub url: String,
    pub event_types: Vec<WebhookEventType>,
    pub description: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateWebhookEndpointInput {
    pub id: ID,
    pub url: Option<String>,
    pub event_types: Option<Vec<WebhookEventType>>,
    pub description: MaybeUndefined<String>,
    /// `true` re-enables a disabled endpoint and clears its failures.
    pub active: Option<bool>,
}

/// An endpoint with its signing secret, shown this once.
#[derive(SimpleObject)]
pub struct WebhookSecretPayload {
    pub endpoint: WebhookEndpoint,
    /// Keep it: LeadRank shows it only now.
    pub secret: String,
}

/// The result of `updateWebhookEndpoint`.
#[derive(SimpleObject)]
pub struct WebhookEndpointPayload {
    pub endpoint: WebhookEndpoint,
}

/// The result of `deleteWebhookEndpoint`.
#[derive(SimpleObject)]
pub struct DeleteWebhookEndpointPayload {
    pub deleted_id: ID,
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// The tenant's webhook endpoints (OWNER and ADMIN).
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn webhook_endpoints(&self, ctx: &Context<'_>) -> Result<Vec<WebhookEndpoint>> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        Ok(webhooks::endpoints(&scope, &principal)
            .await
            .gql()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The delivery log, newest first (OWNER and ADMIN).
    #[graphql(
        complexity = "cost::READ + usize::try_from(first).unwrap_or(0).max(1) * child_complexity"
    )]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: Option<ID>,
        status: Option<WebhookDeliveryStatus>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<WebhookDelivery>> {
        let (principal, scope) = ctx.data::<RequestContext>()?.scope().gql()?;
        let endpoint = endpoint_id
            .map(|id| validate::id("endpointId", &id))
            .transpose()
            .gql()?;
        let first = u64::try_from(first.clamp(1, 500)).unwrap_or(50);
        Ok(webhooks::deliveries(
            &scope,
            &principal,
            endpoint,
            status.map(WebhookDeliveryStatus::as_str),
            first,
        )
        .await
        .gql()?
        .into_iter()
        .map(Into::into)
        .collect())
    }
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers an endpoint; the answer holds its signing secret, shown once.
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> Result<WebhookSecretPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let settings = ctx.data::<WebhookSettings>()?;
        let (endpoint, secret) = webhooks::create_endpoint(
            &rc.db,
            &principal,
            NewEndpoint {
                url: input.url,
                event_types: input.event_types.into_iter().map(Into::into).collect(),
                description: input.description,
            },
            settings,
            Utc::now(),
        )
        .await
        .gql_at("input")?;
        Ok(WebhookSecretPayload {
            endpoint: endpoint.into(),
            secret,
        })
    }

    /// Changes an endpoint, or re-enables one LeadRank disabled.
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: UpdateWebhookEndpointInput,
    ) -> Result<WebhookEndpointPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        let settings = ctx.data::<WebhookSettings>()?;
        let id = id_at("input.id", &input.id)?;
        let changes = EndpointChanges {
            url: input.url,
            event_types: input
                .event_types
                .map(|types| types.into_iter().map(Into::into).collect()),
            description: input.description.into(),
            active: input.active,
        };
        let saved =
            webhooks::update_endpoint(&rc.db, &principal, id, changes, settings, Utc::now())
                .await
                .gql_at("input")?;
        Ok(WebhookEndpointPayload {
            endpoint: saved.into(),
        })
    }

    /// Replaces an endpoint's signing secret at once; the answer holds the
    /// new one, shown once.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<WebhookSecretPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql()?;
        let uuid = validate::id("id", &id).gql()?;
        let (endpoint, secret) = webhooks::rotate_secret(&rc.db, &principal, uuid, Utc::now())
            .await
            .gql()?;
        Ok(WebhookSecretPayload {
            endpoint: endpoint.into(),
            secret,
        })
    }

    /// Deletes an endpoint and its delivery log.
    async fn delete_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<DeleteWebhookEndpointPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql()?;
        let uuid = validate::id("id", &id).gql()?;
        webhooks::delete_endpoint(&rc.db, &principal, uuid, Utc::now())
            .await
            .gql()?;
        Ok(DeleteWebhookEndpointPayload { deleted_id: id })
    }
}
