//! `recordActivities`: many signals in one mutation, each accepted,
//! duplicate or rejected on its own (the GraphQL side of
//! `POST /v1/events`).

use std::sync::Arc;

use async_graphql::{Context, Enum, ErrorExtensions, ID, Object, Result, SimpleObject};
use chrono::Utc;

use crate::graphql::{RequestContext, leads::lead::RecordActivityInput};
use crate::{
    error::IntoGraphql,
    rate_limit::EventRateLimit,
    service::{
        ingestion::ingest::{self, Event, LeadRef, Outcome, Rejection},
        validate,
    },
};

/// What became of one event.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum EventStatus {
    /// Recorded now.
    Accepted,
    /// Its idempotency key was seen before; nothing new was recorded.
    Duplicate,
    /// Not recorded; `code`, `field` and `message` say why.
    Rejected,
}

/// One event's result, in the order they were sent.
#[derive(SimpleObject)]
pub struct EventResult {
    /// The event's position in the input, from 0.
    pub index: i32,
    pub status: EventStatus,
    pub lead_id: Option<ID>,
    pub activity_id: Option<ID>,
    /// For a rejection: BAD_USER_INPUT, NOT_FOUND or CONFLICT.
    pub code: Option<String>,
    /// For a rejection: the input path, e.g. `input[3].signalKey`.
    pub field: Option<String>,
    pub message: Option<String>,
}

/// The result of `recordActivities`.
#[derive(SimpleObject)]
pub struct RecordActivitiesPayload {
    pub accepted: i32,
    pub duplicates: i32,
    pub rejected: i32,
    pub results: Vec<EventResult>,
}

impl RecordActivitiesPayload {
    /// The payload of `outcomes`; `field` names an event's field in the
    /// caller's terms.
    pub fn from_outcomes(outcomes: Vec<Outcome>, field: impl Fn(usize, &str) -> String) -> Self {
        let mut payload = Self {
            accepted: 0,
            duplicates: 0,
            rejected: 0,
            results: Vec::with_capacity(outcomes.len()),
        };
        for (index, outcome) in outcomes.into_iter().enumerate() {
            let mut result = EventResult {
                index: i32::try_from(index).unwrap_or(i32::MAX),
                status: EventStatus::Accepted,
                lead_id: None,
                activity_id: None,
                code: None,
                field: None,
                message: None,
            };
            match outcome {
                Outcome::Accepted {
                    lead_id,
                    activity_id,
                    ..
                } => {
                    payload.accepted += 1;
                    result.lead_id = Some(ID(lead_id.to_string()));
                    result.activity_id = Some(ID(activity_id.to_string()));
                }
                Outcome::Duplicate {
                    lead_id,
                    activity_id,
                } => {
                    payload.duplicates += 1;
                    result.status = EventStatus::Duplicate;
                    result.lead_id = Some(ID(lead_id.to_string()));
                    result.activity_id = Some(ID(activity_id.to_string()));
                }
                Outcome::Rejected(Rejection {
                    code,
                    field: name,
                    message,
                }) => {
                    payload.rejected += 1;
                    result.status = EventStatus::Rejected;
                    result.code = Some(code.to_owned());
                    result.field = Some(field(index, &name));
                    result.message = Some(message);
                }
            }
            payload.results.push(result);
        }
        payload
    }
}

/// The GraphQL input's name for an event's field.
fn input_field(index: usize, name: &str) -> String {
    let name = match name {
        "lead" | "lead.id" => "leadId",
        "signal" => "signalKey",
        other => other,
    };
    format!("input[{index}].{name}")
}

/// A refusal by the events' rate limit, with the wait.
#[must_use]
pub fn rate_limited(retry_after_secs: u64) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "this key (or user) is sending events faster than allowed; try again in {retry_after_secs} seconds"
    ))
    .extend_with(|_, ext| {
        ext.set("code", "RATE_LIMITED");
        ext.set("retryAfter", retry_after_secs);
    })
}

#[derive(Default)]
pub struct IngestMutation;

#[Object]
impl IngestMutation {
    /// Records many activities at once (up to 10,000), each judged on its
    /// own: the result lists each as accepted or rejected with the field and
    /// reason, and a rejected one writes nothing. Leads are scored once per
    /// request, and subscriptions and webhooks see the changes. Counts
    /// against the caller's events rate limit.
    async fn record_activities(
        &self,
        ctx: &Context<'_>,
        input: Vec<RecordActivityInput>,
    ) -> Result<RecordActivitiesPayload> {
        let rc = ctx.data::<RequestContext>()?;
        let principal = rc.principal().gql_at("input")?;
        if input.len() > ingest::MAX_EVENTS {
            return Err(crate::error::AppError::invalid(
                "input",
                format!(
                    "at most {} activities per request, got {}",
                    ingest::MAX_EVENTS,
                    input.len()
                ),
            )
            .extend());
        }
        if let Err(wait) = ctx
            .data::<Arc<EventRateLimit>>()?
            .check(principal.user_id.uuid(), input.len())
        {
            return Err(rate_limited(wait));
        }
        let events: Vec<Result<Event, Rejection>> = input.into_iter().map(event_of).collect();
        let outcomes = ingest::record_events(&rc.db, &principal, &events, Utc::now())
            .await
            .gql_at("input")?;
        let payload = RecordActivitiesPayload::from_outcomes(outcomes, input_field);
        let leads: std::collections::HashSet<&String> = payload
            .results
            .iter()
            .filter(|r| r.status == EventStatus::Accepted)
            .filter_map(|r| r.lead_id.as_ref().map(|id| &id.0))
            .collect();
        crate::metrics::events_ingested(
            u64::try_from(payload.accepted).unwrap_or(0),
            u64::try_from(payload.duplicates).unwrap_or(0),
            u64::try_from(payload.rejected).unwrap_or(0),
            leads.len() as u64,
        );
        Ok(payload)
    }
}

fn event_of(input: RecordActivityInput) -> Result<Event, Rejection> {
    let id = validate::id("lead.id", &input.lead_id).map_err(|_| Rejection {
        code: "BAD_USER_INPUT",
        field: "lead.id".into(),
        message: "is not a valid id".into(),
    })?;
    let note =
        validate::optional_text("note", input.note.as_deref(), 5000).map_err(|e| Rejection {
            code: "BAD_USER_INPUT",
            field: "note".into(),
            message: e.to_string(),
        })?;
    if input.amount.is_some_and(|a| !a.is_finite()) {
        return Err(Rejection {
            code: "BAD_USER_INPUT",
            field: "amount".into(),
            message: "must be a finite number".into(),
        });
    }
    Ok(Event {
        lead: LeadRef::Id(id),
        signal: input.signal_key,
        occurred_at: input.occurred_at,
        direction: input.direction.map(Into::into),
        amount: input.amount,
        note,
        idempotency_key: None,
        create_if_missing: None,
    })
}
