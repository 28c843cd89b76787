//! `POST /v1/events`: behaviour signals from machines, with an API key
//! holding the INGEST scope.
//!
//! The body is a JSON array of events or JSON lines (one event per line;
//! `Content-Type: application/x-ndjson` or `application/jsonl`, or any body
//! that does not start with `[`). The answer lists each event's outcome in
//! order (see [`crate::service::ingestion::ingest`]); request-level refusals use the
//! GraphQL error shape with `extensions.code`: 401 UNAUTHENTICATED for a
//! missing, unknown or revoked key, 403 FORBIDDEN without INGEST, 429
//! RATE_LIMITED with `Retry-After`, 400 BAD_REQUEST for a body that is not
//! events.

use std::{collections::HashSet, sync::Arc};

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web,
};
use chrono::Utc;
use sea_orm::DatabaseConnection;
use serde_json::{Value, json};

use crate::{
    auth::{Authentication, tokens::TokenKeys},
    caller::{Caller, authenticate},
    rate_limit::EventRateLimit,
    service::{
        accounts::api_keys::Scope,
        ingestion::ingest::{self, Event, Outcome, Rejection},
    },
};

/// What the endpoint needs of the server.
pub struct Deps {
    pub db: DatabaseConnection,
    pub keys: Arc<crate::service::accounts::account::Auth>,
    pub limit: Arc<EventRateLimit>,
}

impl Deps {
    fn token_keys(&self) -> &TokenKeys {
        &self.keys.keys
    }
}

fn refuse(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "errors": [{"message": message, "extensions": {"code": code}}]
    }))
}

/// Splits a body into its events: a JSON array, or JSON lines. A line that
/// is not JSON is that event's rejection; a body that is neither is
/// refused whole.
fn events_of(req: &HttpRequest, body: &[u8]) -> Result<Vec<Result<Value, Rejection>>, String> {
    let media = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let lines = matches!(
        media.as_str(),
        "application/x-ndjson" | "application/jsonl" | "application/jsonlines"
    ) || body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b != b'[');
    if !lines {
        return match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(events)) => Ok(events.into_iter().map(Ok).collect()),
            Ok(_) => Err("the body must be a JSON array of events, or JSON lines".into()),
            Err(err) => Err(format!("the body is not JSON: {err}")),
        };
    }
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    Ok(text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str::<Value>(line).map_err(|err| Rejection {
                code: "BAD_USER_INPUT",
                field: String::new(),
                message: format!("this line is not JSON: {err}"),
            })
        })
        .collect())
}

fn result_of(index: usize, outcome: Outcome) -> Value {
    match outcome {
        Outcome::Accepted {
            lead_id,
            activity_id,
            created,
        } => json!({"index": index, "status": "accepted", "leadId": lead_id,
                    "activityId": activity_id, "created": created}),
        Outcome::Duplicate {
            lead_id,
            activity_id,
        } => json!({"index": index, "status": "duplicate", "leadId": lead_id,
                    "activityId": activity_id}),
        Outcome::Rejected(r) => json!({"index": index, "status": "rejected", "code": r.code,
                    "field": r.field, "message": r.message}),
    }
}

/// `POST /v1/events`.
pub async fn post_events(
    req: HttpRequest,
    body: web::Bytes,
    deps: web::Data<Deps>,
) -> HttpResponse {
    let started = std::time::Instant::now();
    let response = handle(&req, &body, &deps).await;
    crate::metrics::route(
        "POST /v1/events",
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

async fn handle(req: &HttpRequest, body: &[u8], deps: &Deps) -> HttpResponse {
    let Caller {
        authentication,
        api_key,
        ..
    } = authenticate(req, &deps.db, deps.token_keys()).await;
    let key = match (authentication, api_key) {
        (Authentication::Authenticated(_), Some(key)) => key,
        (Authentication::Unavailable, _) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "something went wrong on our side; it has been logged",
            );
        }
        (Authentication::Rejected(why), _) => {
            return refuse(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", why);
        }
        _ => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "send an API key with the INGEST scope as `Authorization: Bearer lrk_…`",
            );
        }
    };
    // The request's span (see `startup::trace_request`).
    let span = tracing::Span::current();
    span.record("tenant_id", tracing::field::display(key.tenant_id));
    span.record("api_key_id", tracing::field::display(key.id));
    if !key.scopes.has(Scope::Ingest) {
        return refuse(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "this API key lacks the INGEST scope, which sending events needs",
        );
    }
    let raw = match events_of(req, body) {
        Ok(raw) => raw,
        Err(why) => return refuse(StatusCode::BAD_REQUEST, "BAD_REQUEST", &why),
    };
    if raw.len() > ingest::MAX_EVENTS {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BAD_REQUEST",
            &format!(
                "a request may carry at most {} events, got {}; send them in several requests",
                ingest::MAX_EVENTS,
                raw.len()
            ),
        );
    }
    if let Err(wait) = deps.limit.check(key.id, raw.len()) {
        tracing::info!(api_key_id = %key.id, retry_after_secs = wait, "events refused by the rate limit");
        return HttpResponse::TooManyRequests()
            .insert_header((header::RETRY_AFTER, wait.to_string()))
            .json(json!({"errors": [{
                "message": format!("this key is sending events faster than allowed; try again in {wait} seconds"),
                "extensions": {"code": "RATE_LIMITED", "retryAfter": wait}
            }]}));
    }
    let events: Vec<Result<Event, Rejection>> = raw
        .iter()
        .map(|r| {
            r.as_ref()
                .map_err(Clone::clone)
                .and_then(ingest::parse_event)
        })
        .collect();
    match ingest::record_events(&deps.db, &key.principal(), &events, Utc::now()).await {
        Ok(outcomes) => {
            let (mut accepted, mut duplicates, mut rejected) = (0, 0, 0);
            for outcome in &outcomes {
                match outcome {
                    Outcome::Accepted { .. } => accepted += 1,
                    Outcome::Duplicate { .. } => duplicates += 1,
                    Outcome::Rejected(_) => rejected += 1,
                }
            }
            tracing::info!(accepted, duplicates, rejected, "events ingested");
            let leads: HashSet<_> = outcomes
                .iter()
                .filter_map(|o| match o {
                    Outcome::Accepted { lead_id, .. } => Some(*lead_id),
                    _ => None,
                })
                .collect();
            crate::metrics::events_ingested(accepted, duplicates, rejected, leads.len() as u64);
            let results: Vec<Value> = outcomes
                .into_iter()
                .enumerate()
                .map(|(i, o)| result_of(i, o))
                .collect();
            HttpResponse::Ok().json(json!({
                "accepted": accepted, "duplicates": duplicates, "rejected": rejected,
                "results": results
            }))
        }
        Err(err) => {
            let code = err.code();
            let status = match code {
                "CONFLICT" => StatusCode::CONFLICT,
                "BAD_USER_INPUT" => StatusCode::BAD_REQUEST,
                "NOT_FOUND" => StatusCode::NOT_FOUND,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(error = ?err, "ingesting events failed");
                "something went wrong on our side; it has been logged".to_owned()
            } else {
                err.to_string()
            };
            refuse(status, code, &message)
        }
    }
}
