//! Event ingestion: behaviour signals in bulk from websites, products and
//! integration platforms (`POST /v1/events`, `recordActivities`).
//!
//! Each event is judged on its own and answered `accepted`, `duplicate` or
//! `rejected` with the reason and the field; a rejected event writes
//! nothing, and the others are written together in one transaction. The
//! rules are those of `recordActivity` (a known, current signal; a time not
//! in the future; a finite amount), and each lead's events are folded into
//! its signal state in time order, then the lead is scored once and
//! written through the lead writer's bulk path, the nightly job's. Every
//! changed lead is announced, so subscriptions and webhooks see it.
//!
//! An event may carry an idempotency key: the tenant remembers it with the
//! activity it recorded, and the same key again (in the same request or a
//! later one) is a duplicate, never a second activity. Leads are found by
//! id, external id or email; one found by external id or email that does
//! not exist yet is created when the event says `createIfMissing`.

use entity::LeadId;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{activity, enums::Direction, ingestion_key, lead, lead_score};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    DbBackend, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::Email;
use crate::service::{
    assignment::{Assigner, Candidate},
    begin_write,
    configuration::tenant_config,
    events::{self, ByRule, LeadState, LeadSummary, Outgoing},
    leads::bulk,
    leads::lead_writer,
    leads::rescoring,
    leads::visibility::LeadVisibility,
    validate,
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// The most events one request may carry.
pub const MAX_EVENTS: usize = 10_000;

/// The longest idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

/// Ids, external ids or emails looked up per statement.
const LOOKUP_CHUNK: usize = 2_000;

/// How a lead is named by an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LeadRef {
    Id(LeadId),
    ExternalId(String),
    /// Lower-cased, as leads keep it.
    Email(String),
}

impl LeadRef {
    fn describe(&self) -> String {
        match self {
            Self::Id(id) => format!("no lead with id {id}"),
            Self::ExternalId(x) => format!("no lead with externalId \"{x}\""),
            Self::Email(e) => format!("no lead with email \"{e}\""),
        }
    }
}

/// A lead to create when an event's lead does not exist yet.
#[derive(Clone, Debug, PartialEq)]
pub struct NewLeadFields {
    pub name: String,
    pub company: Option<String>,
    pub industry: Option<String>,
    pub source: Option<String>,
}

/// One event, its shape checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub lead: LeadRef,
    pub signal: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub direction: Option<Direction>,
    pub amount: Option<f64>,
    pub note: Option<String>,
    pub idempotency_key: Option<String>,
    pub create_if_missing: Option<NewLeadFields>,
}

/// Why an event was not recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// BAD_USER_INPUT, NOT_FOUND or CONFLICT.
    pub code: &'static str,
    /// The event's field, e.g. `lead.externalId` or `signal`.
    pub field: String,
    pub message: String,
}

impl Rejection {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            code: "BAD_USER_INPUT",
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// What became of one event.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Recorded now (on a lead created now when `created`).
    Accepted {
        lead_id: LeadId,
        activity_id: Uuid,
        created: bool,
    },
    /// Its idempotency key was seen before: the activity recorded then.
    Duplicate { lead_id: LeadId, activity_id: Uuid },
    /// Not recorded, and nothing of it written.
    Rejected(Rejection),
}

/// The fields an event may have.
const EVENT_FIELDS: &[&str] = &[
    "lead",
    "signal",
    "occurredAt",
    "direction",
    "amount",
    "note",
    "idempotencyKey",
    "createIfMissing",
];

fn optional_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a str>, Rejection> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Rejection::invalid(field, "must be a string")),
    }
}

fn text(field: &str, value: Option<&str>, max: usize) -> Result<Option<String>, Rejection> {
    validate::optional_text(field, value, max).map_err(rejection)
}

fn rejection(err: AppError) -> Rejection {
    match err {
        AppError::InvalidInput { field, message } => Rejection {
            code: "BAD_USER_INPUT",
            field,
            message,
        },
        other => Rejection {
            code: other.code(),
            field: String::new(),
            message: other.to_string(),
        },
    }
}

/// Reads one event of a `POST /v1/events` body: its shape, not yet its
/// signal or lead, which need the tenant.
///
/// # Errors
/// The rejection naming the field.
pub fn parse_event(value: &Value) -> Result<Event, Rejection> {
    let Value::Object(object) = value else {
        return Err(Rejection::invalid("", "an event must be a JSON object"));
    };
    if let Some(unknown) = object.keys().find(|k| !EVENT_FIELDS.contains(&k.as_str())) {
        return Err(Rejection::invalid(
            unknown,
            format!(
                "is not a field of an event (expected one of: {})",
                EVENT_FIELDS.join(", ")
            ),
        ));
    }
    let lead = match object.get("lead") {
        Some(Value::Object(lead)) => lead_ref(lead)?,
        _ => {
            return Err(Rejection::invalid(
                "lead",
                "must be an object with one of id, externalId or email",
            ));
        }
    };
    let signal = optional_str(object, "signal", "signal")?
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Rejection::invalid("signal", "must name a signal type, e.g. \"website_visit\"")
        })?
        .to_owned();
    let occurred_at = optional_str(object, "occurredAt", "occurredAt")?
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw.trim())
                .map(|at| at.with_timezone(&Utc))
                .map_err(|_| {
                    Rejection::invalid(
                        "occurredAt",
                        "must be an RFC 3339 time, e.g. \"2026-12-04T09:30:00Z\"",
                    )
                })
        })
        .transpose()?;
    let direction = match optional_str(object, "direction", "direction")? {
        None => None,
        Some("INBOUND") => Some(Direction::Inbound),
        Some("OUTBOUND") => Some(Direction::Outbound),
        Some(_) => {
            return Err(Rejection::invalid(
                "direction",
                "must be INBOUND or OUTBOUND",
            ));
        }
    };
    let amount = match object.get("amount") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64().filter(|a| a.is_finite()),
        Some(_) => return Err(Rejection::invalid("amount", "must be a number")),
    };
    if object.get("amount").is_some_and(Value::is_number) && amount.is_none() {
        return Err(Rejection::invalid("amount", "must be a finite number"));
    }
    let note = text("note", optional_str(object, "note", "note")?, 5000)?;
    let idempotency_key =
        idempotency_key(optional_str(object, "idempotencyKey", "idempotencyKey")?)?;
    let create_if_missing = match object.get("createIfMissing") {
        None | Some(Value::Null) => None,
        Some(Value::Object(fields)) => Some(new_lead_fields(fields)?),
        Some(_) => {
            return Err(Rejection::invalid(
                "createIfMissing",
                "must be an object with at least a name",
            ));
        }
    };
    if create_if_missing.is_some() && matches!(lead, LeadRef::Id(_)) {
        return Err(Rejection::invalid(
            "createIfMissing",
            "a lead named by id exists or not; name it by externalId or email to create it",
        ));
    }
    Ok(Event {
        lead,
        signal,
        occurred_at,
        direction,
        amount,
        note,
        idempotency_key,
        create_if_missing,
    })
}

fn lead_ref(lead: &Map<String, Value>) -> Result<LeadRef, Rejection> {
    let given: Vec<&str> = ["id", "externalId", "email"]
        .into_iter()
        .filter(|k| lead.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    if let Some(unknown) = lead
        .keys()
        .find(|k| !["id", "externalId", "email"].contains(&k.as_str()))
    {
        return Err(Rejection::invalid(
            &format!("lead.{unknown}"),
            "is not a way to name a lead (id, externalId or email)",
        ));
    }
    let [one] = given.as_slice() else {
        return Err(Rejection::invalid(
            "lead",
            "name the lead by exactly one of id, externalId or email",
        ));
    };
    let field = format!("lead.{one}");
    let value = optional_str(lead, one, &field)?.unwrap_or_default();
    match *one {
        "id" => validate::id(&field, value)
            .map(LeadRef::Id)
            .map_err(rejection),
        "externalId" => text(&field, Some(value), 200)?
            .map(LeadRef::ExternalId)
            .ok_or_else(|| Rejection::invalid(&field, "must not be empty")),
        _ => validate::parse::<Email>(&field, value)
            .map(|email| LeadRef::Email(email.into()))
            .map_err(rejection),
    }
}

fn new_lead_fields(fields: &Map<String, Value>) -> Result<NewLeadFields, Rejection> {
    const KNOWN: &[&str] = &["name", "company", "industry", "source"];
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(Rejection::invalid(
            &format!("createIfMissing.{unknown}"),
            format!(
                "is not a field of a new lead here (expected one of: {})",
                KNOWN.join(", ")
            ),
        ));
    }
    let name = optional_str(fields, "name", "createIfMissing.name")?.unwrap_or_default();
    Ok(NewLeadFields {
        name: validate::required_text("createIfMissing.name", name, 200).map_err(rejection)?,
        company: text(
            "createIfMissing.company",
            optional_str(fields, "company", "createIfMissing.company")?,
            200,
        )?,
        industry: text(
            "createIfMissing.industry",
            optional_str(fields, "industry", "createIfMissing.industry")?,
            120,
        )?,
        source: text(
            "createIfMissing.source",
            optional_str(fields, "source", "createIfMissing.source")?,
            120,
        )?,
    })
}

/// Checks an idempotency key's length.
///
/// # Errors
/// The rejection for `idempotencyKey`.
pub fn idempotency_key(raw: Option<&str>) -> Result<Option<String>, Rejection> {
    match raw.map(str::trim) {
        None => Ok(None),
        Some("") => Err(Rejection::invalid("idempotencyKey", "must not be empty")),
        Some(k) if k.chars().count() > MAX_IDEMPOTENCY_KEY => Err(Rejection::invalid(
            "idempotencyKey",
            format!("must be at most {MAX_IDEMPOTENCY_KEY} characters"),
        )),
        Some(k) => Ok(Some(k.to_owned())),
    }
}

/// Records `events` (each already parsed, or its rejection) as `principal`
/// at `now`. A lead changed by someone else while the batch was written
/// makes the batch start over from a fresh read, up to three times.
///
/// # Errors
/// BAD_USER_INPUT for more than [`MAX_EVENTS`]; CONFLICT when the leads
/// kept changing; database errors. Problems of single events are in their
/// outcomes, not errors.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, events = events.len()))]
pub async fn record_events(
    db: &DatabaseConnection,
    principal: &Principal,
    events: &[Result<Event, Rejection>],
    now: DateTime<Utc>,
) -> AppResult<Vec<Outcome>> {
    if events.len() > MAX_EVENTS {
        return Err(AppError::invalid(
            "events",
            format!(
                "a request may carry at most {MAX_EVENTS} events, got {}; send them in several requests",
                events.len()
            ),
        ));
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        match write_events(db, principal, events, now).await {
            Err(AppError::Conflict { .. }) if attempt < 3 => {
                tracing::info!(
                    attempt,
                    "an ingested batch met a concurrent change; retrying"
                );
            }
            // The bulk writer's message speaks of an import.
            Err(AppError::Conflict { existing_id, .. }) => {
                return Err(AppError::Conflict {
                    message: "the leads of these events kept changing while they were written; \
                              send them again (idempotency keys make that safe)"
                        .into(),
                    existing_id,
                });
            }
            done => return done,
        }
    }
}

/// An event that passed the checks that need the tenant, waiting for its
/// lead.
struct Ready<'e> {
    index: usize,
    event: &'e Event,
    signal: &'e entity::signal_type::Model,
    occurred_at: DateTime<Utc>,
    direction: Direction,
}

/// One lead's accepted events and what it was before them.
struct Touched {
    before: Option<lead::Model>,
    lead: lead::Model,
    events: Vec<(usize, Uuid)>,
}

#[allow(clippy::too_many_lines)]
async fn write_events(
    db: &DatabaseConnection,
    principal: &Principal,
    events: &[Result<Event, Rejection>],
    now: DateTime<Utc>,
) -> AppResult<Vec<Outcome>> {
    let tenant_id = principal.tenant_id;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, tenant_id).await?;
    let config = tenant_config::get(&scope).await?;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; events.len()];

    // The checks that need the tenant's signals.
    let mut ready = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let event = match event {
            Ok(event) => event,
            Err(rejected) => {
                outcomes[index] = Some(Outcome::Rejected(rejected.clone()));
                continue;
            }
        };
        match check_event(&config, event, now) {
            Ok((signal, occurred_at, direction)) => ready.push(Ready {
                index,
                event,
                signal,
                occurred_at,
                direction,
            }),
            Err(rejected) => outcomes[index] = Some(Outcome::Rejected(rejected)),
        }
    }

    // Idempotency keys seen before, then the first of each key in this
    // request wins.
    let keys: Vec<String> = ready
        .iter()
        .filter_map(|r| r.event.idempotency_key.clone())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut seen: HashMap<String, (LeadId, Uuid)> = HashMap::new();
    for chunk in keys.chunks(LOOKUP_CHUNK) {
        let rows = scope
            .select::<ingestion_key::Entity>()
            .filter(ingestion_key::Column::IdempotencyKey.is_in(chunk.iter().cloned()))
            .all(&txn)
            .await?;
        seen.extend(
            rows.into_iter()
                .map(|r| (r.idempotency_key, (r.lead_id, r.activity_id))),
        );
    }

    // The leads, as the caller may see them.
    let visible = LeadVisibility::load(&scope, principal).await?.condition();
    // Each name an event uses, and the id of the lead it names.
    let mut by_ref: HashMap<LeadRef, LeadId> = HashMap::new();
    let refs: HashSet<&LeadRef> = ready.iter().map(|r| &r.event.lead).collect();
    let ids: Vec<LeadId> = refs
        .iter()
        .filter_map(|r| match r {
            LeadRef::Id(id) => Some(*id),
            _ => None,
        })
        .collect();
    let externals: Vec<String> = refs
        .iter()
        .filter_map(|r| match r {
            LeadRef::ExternalId(x) => Some(x.clone()),
            _ => None,
        })
        .collect();
    let emails: Vec<String> = refs
        .iter()
        .filter_map(|r| match r {
            LeadRef::Email(e) => Some(e.clone()),
            _ => None,
        })
        .collect();
    let mut found: Vec<lead::Model> = Vec::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        found.extend(
            scope
                .select::<lead::Entity>()
                .filter(visible.clone())
                .filter(lead::Column::Id.is_in(chunk.iter().copied()))
                .all(&txn)
                .await?,
        );
    }
    for chunk in externals.chunks(LOOKUP_CHUNK) {
        found.extend(
            scope
                .select::<lead::Entity>()
                .filter(visible.clone())
                .filter(lead::Column::ExternalId.is_in(chunk.iter().cloned()))
                .all(&txn)
                .await?,
        );
    }
    for chunk in emails.chunks(LOOKUP_CHUNK) {
        found.extend(
            scope
                .select::<lead::Entity>()
                .filter(visible.clone())
                .filter(lead::Column::Email.is_in(chunk.iter().cloned()))
                .all(&txn)
                .await?,
        );
    }
    let mut ambiguous: HashSet<String> = HashSet::new();
    let mut leads: HashMap<LeadId, lead::Model> = HashMap::new();
    for lead in found {
        let mut names = vec![LeadRef::Id(lead.id)];
        names.extend(lead.external_id.clone().map(LeadRef::ExternalId));
        names.extend(lead.email.clone().map(LeadRef::Email));
        for name in names {
            if !refs.contains(&name) {
                continue;
            }
            match by_ref.get(&name) {
                Some(other) if *other != lead.id => {
                    if let LeadRef::Email(e) = &name {
                        ambiguous.insert(e.clone());
                    }
                }
                _ => {
                    by_ref.insert(name, lead.id);
                }
            }
        }
        leads.insert(lead.id, lead);
    }
    lock_found(&scope, &visible, &mut leads).await?;

    // Each event finds its lead (or creates it), in request order.
    let mut touched: HashMap<LeadId, Touched> = HashMap::new();
    let mut order: Vec<LeadId> = Vec::new();
    let mut accepted: Vec<(Ready<'_>, LeadId, Uuid)> = Vec::new();
    let pipeline = config.default_pipeline();
    for r in ready {
        if let Some(key) = &r.event.idempotency_key
            && let Some((lead_id, activity_id)) = seen.get(key)
        {
            outcomes[r.index] = Some(Outcome::Duplicate {
                lead_id: *lead_id,
                activity_id: *activity_id,
            });
            continue;
        }
        if let LeadRef::Email(e) = &r.event.lead
            && ambiguous.contains(e)
        {
            outcomes[r.index] = Some(Outcome::Rejected(Rejection {
                code: "CONFLICT",
                field: "lead.email".into(),
                message: format!(
                    "several leads have the email \"{e}\"; name the lead by id or externalId"
                ),
            }));
            continue;
        }
        let existing = by_ref.get(&r.event.lead).copied();
        let lead_id = match (existing, &r.event.create_if_missing) {
            (Some(id), _) => id,
            (None, None) => {
                outcomes[r.index] = Some(Outcome::Rejected(Rejection {
                    code: "NOT_FOUND",
                    field: "lead".into(),
                    message: format!(
                        "{}; add createIfMissing with the lead's name to create it",
                        r.event.lead.describe()
                    ),
                }));
                continue;
            }
            (None, Some(fields)) => {
                let Some(default) = pipeline else {
                    return Err(AppError::not_found("pipeline", "default"));
                };
                let (pipeline, stages) = (&default.0, &default.1);
                let Some(stage) = stages
                    .iter()
                    .find(|s| s.kind == entity::enums::StageKind::Open)
                else {
                    return Err(AppError::invalid(
                        "createIfMissing",
                        "the default pipeline has no open stage",
                    ));
                };
                let mut new = lead::Model {
                    name: fields.name.clone(),
                    company: fields.company.clone(),
                    industry: fields.industry.clone(),
                    source: fields.source.clone(),
                    stage_id: stage.id,
                    ..lead_writer::blank(
                        tenant_id,
                        LeadId::new(),
                        principal.user_id,
                        pipeline.id,
                        now,
                    )
                };
                match &r.event.lead {
                    LeadRef::ExternalId(x) => new.external_id = Some(x.clone()),
                    LeadRef::Email(e) => new.email = Some(e.clone()),
                    LeadRef::Id(_) => {}
                }
                let id = new.id;
                by_ref.insert(r.event.lead.clone(), id);
                touched.insert(
                    id,
                    Touched {
                        before: None,
                        lead: new,
                        events: Vec::new(),
                    },
                );
                order.push(id);
                id
            }
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = touched.entry(lead_id) {
            let Some(current) = leads.remove(&lead_id) else {
                return Err(AppError::Internal(anyhow::anyhow!(
                    "a found lead went missing"
                )));
            };
            slot.insert(Touched {
                lead: current.clone(),
                before: Some(current),
                events: Vec::new(),
            });
            order.push(lead_id);
        }
        let activity_id = Uuid::now_v7();
        if let Some(key) = &r.event.idempotency_key {
            seen.insert(key.clone(), (lead_id, activity_id));
        }
        if let Some(t) = touched.get_mut(&lead_id) {
            t.events.push((accepted.len(), activity_id));
        }
        accepted.push((r, lead_id, activity_id));
    }

    // Fold each lead's events in time order, score it once, and queue the
    // writes.
    let mut batch = lead_writer::Bulk::new(tenant_id, txn.get_database_backend());
    let mut pinners = rescoring::Pinners::default();
    pinners
        .load_for_leads(&scope, touched.values().filter_map(|t| t.before.as_ref()))
        .await?;
    let mut assigner = if touched.values().any(|t| t.before.is_none()) {
        Assigner::load(&scope).await?
    } else {
        None
    };
    let mut out = Outgoing::default();
    let mut idempotency: Vec<ingestion_key::ActiveModel> = Vec::new();
    let mut created_ids: HashSet<LeadId> = HashSet::new();
    for lead_id in &order {
        // Each lead is folded once: it leaves the map, and its rows move
        // into the batch instead of being copied there.
        let Some(Touched {
            before,
            mut lead,
            events,
        }) = touched.remove(lead_id)
        else {
            continue;
        };
        let mut mine: Vec<&(Ready<'_>, LeadId, Uuid)> = events
            .iter()
            .filter_map(|(i, _)| accepted.get(*i))
            .collect();
        mine.sort_by_key(|(r, _, _)| r.occurred_at);
        let mut state = scoring::ActivityState::from_bytes(&lead.signal_state).unwrap_or_default();
        for (r, _, activity_id) in &mine {
            let scoring_direction = match r.direction {
                Direction::Inbound => scoring::Direction::Inbound,
                Direction::Outbound => scoring::Direction::Outbound,
            };
            state.record_as(
                &rescoring::signal_def(r.signal),
                scoring_direction,
                rescoring::secs(r.occurred_at),
                r.event.amount,
            );
            lead.last_activity_at = lead.last_activity_at.max(Some(r.occurred_at));
            let last = match r.direction {
                Direction::Inbound => &mut lead.last_inbound_at,
                Direction::Outbound => &mut lead.last_outbound_at,
            };
            *last = (*last).max(Some(r.occurred_at));
            batch.activity(activity::ActiveModel {
                tenant_id: Set(tenant_id),
                id: Set(*activity_id),
                lead_id: Set(*lead_id),
                signal_key: Set(r.signal.key.clone()),
                direction: Set(r.direction),
                occurred_at: Set(r.occurred_at),
                note: Set(r.event.note.clone()),
                amount: Set(r.event.amount),
                created_by: Set(Some(principal.user_id)),
                created_at: Set(now),
            });
            if let Some(key) = &r.event.idempotency_key {
                idempotency.push(ingestion_key::ActiveModel {
                    tenant_id: Set(tenant_id),
                    idempotency_key: Set(key.clone()),
                    activity_id: Set(*activity_id),
                    lead_id: Set(*lead_id),
                    // The caller is the key (see `ApiKeyCaller::principal`).
                    api_key_id: Set(Some(principal.user_id.uuid())),
                    created_at: Set(now),
                });
            }
        }
        lead.signal_state = state.to_bytes();
        let model = config.model(lead.team_id)?;
        let stages = config.stages(lead.pipeline_id);
        let pinner = pinners.name(lead.pinned_by).map(str::to_owned);
        lead_writer::score(&mut lead, pinner.as_deref(), stages, &model, now)?;
        let reason = match mine.as_slice() {
            [(one, _, _)] => format!("activity: {}", one.signal.key),
            many => format!("{} activities ingested", many.len()),
        };
        match before {
            Some(before) => {
                out.lead(
                    tenant_id,
                    Some(&LeadState::from(&before)),
                    &LeadSummary::from(&lead),
                    &reason,
                    None,
                    now,
                );
                batch.update(&before, lead, &reason, now);
            }
            None => {
                let pick = assigner.as_mut().and_then(|a| {
                    a.pick(&Candidate {
                        team_id: lead.team_id,
                        tier: &lead.tier,
                        source: lead.source.as_deref(),
                        attributes: &lead.attributes,
                    })
                });
                if let Some(pick) = &pick {
                    lead.owner_id = Some(pick.user_id);
                    batch.lead_event(pick.event(tenant_id, lead.id, now));
                }
                out.lead(
                    tenant_id,
                    None,
                    &LeadSummary::from(&lead),
                    "created",
                    pick.as_ref().map(|p| ByRule {
                        id: p.rule_id,
                        name: &p.rule_name,
                    }),
                    now,
                );
                created_ids.insert(lead.id);
                batch.insert(lead, "created", now);
            }
        }
    }

    batch.prepared().write(&txn).await?;
    let per_statement =
        bulk::rows_per_statement::<ingestion_key::ActiveModel>(txn.get_database_backend());
    for chunk in idempotency.chunks(per_statement) {
        scope.insert_many(chunk.iter().cloned()).await?;
    }
    if let Some(assigner) = &mut assigner {
        assigner.save(&scope).await?;
    }
    let notices = events::emit_after_commit(&scope, &out, now).await?;
    txn.commit().await?;
    notices.send(db).await;

    for (r, lead_id, activity_id) in &accepted {
        outcomes[r.index] = Some(Outcome::Accepted {
            lead_id: *lead_id,
            activity_id: *activity_id,
            created: created_ids.contains(lead_id),
        });
    }
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Outcome::Rejected(Rejection {
                    code: "INTERNAL",
                    field: String::new(),
                    message: "the event was not judged".into(),
                })
            })
        })
        .collect())
}

/// Locks the leads found, in id order, until the batch commits, and reads
/// again the few another writer changed before the lock. Without it two
/// batches naming the same lead could both read it, and the second write's
/// version guard would send its whole batch back to start over; with four
/// clients sending a thousand events at a time that was most batches. The
/// order keeps two batches from each waiting on the other. SQLite's write
/// transaction already holds the whole database.
async fn lock_found(
    scope: &TenantScope<'_, DatabaseTransaction>,
    visible: &sea_orm::Condition,
    leads: &mut HashMap<LeadId, lead::Model>,
) -> AppResult<()> {
    let txn = scope.conn();
    if txn.get_database_backend() != DbBackend::Postgres || leads.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<LeadId> = leads.keys().copied().collect();
    ids.sort_unstable();
    let mut changed: Vec<LeadId> = Vec::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let locked: Vec<(LeadId, i32)> = scope
            .select::<lead_score::Entity>()
            .select_only()
            .columns([lead_score::Column::LeadId, lead_score::Column::Version])
            .filter(lead_score::Column::LeadId.is_in(chunk.iter().copied()))
            .order_by_asc(lead_score::Column::LeadId)
            .lock_exclusive()
            .into_tuple()
            .all(txn)
            .await?;
        changed.extend(
            locked
                .into_iter()
                .filter(|(id, version)| leads.get(id).is_some_and(|l| l.version != *version))
                .map(|(id, _)| id),
        );
    }
    if changed.is_empty() {
        return Ok(());
    }
    let again = scope
        .select::<lead::Entity>()
        .filter(visible.clone())
        .filter(lead::Column::Id.is_in(changed.iter().copied()))
        .all(txn)
        .await?;
    if again.len() != changed.len() {
        // Gone or out of sight since the first read: the batch starts over.
        return Err(AppError::Conflict {
            message: "a lead of the batch changed while it was read".into(),
            existing_id: changed.first().copied().map(Uuid::from),
        });
    }
    for lead in again {
        leads.insert(lead.id, lead);
    }
    Ok(())
}

/// The checks of `recordActivity` that need the tenant: the signal exists
/// and is current, the time is not in the future.
fn check_event<'c>(
    config: &'c tenant_config::TenantConfig,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<(&'c entity::signal_type::Model, DateTime<Utc>, Direction), Rejection> {
    let signal = config.catalog.signal(&event.signal).ok_or_else(|| {
        Rejection::invalid(
            "signal",
            format!("there is no signal type \"{}\"", event.signal),
        )
    })?;
    if signal.retired {
        return Err(Rejection::invalid(
            "signal",
            format!("the signal type \"{}\" is retired", signal.key),
        ));
    }
    let occurred_at = event.occurred_at.unwrap_or(now);
    if occurred_at > now + lead_writer::CLOCK_SKEW {
        return Err(Rejection::invalid(
            "occurredAt",
            "must not be in the future",
        ));
    }
    Ok((
        signal,
        occurred_at,
        event.direction.unwrap_or(signal.direction),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn rejected_field(value: Value) -> String {
        parse_event(&value).unwrap_err().field
    }

    #[test]
    fn an_event_names_its_lead_one_way() {
        let event = parse_event(
            &json!({"lead": {"email": " Ana@Acme.Example "}, "signal": "website_visit"}),
        )
        .unwrap();
        assert_eq!(event.lead, LeadRef::Email("ana@acme.example".into()));
        assert_eq!(
            rejected_field(json!({"lead": {"email": "a@b.co", "externalId": "x"}, "signal": "s"})),
            "lead"
        );
        assert_eq!(
            rejected_field(json!({"lead": {"id": "nope"}, "signal": "s"})),
            "lead.id"
        );
        assert_eq!(
            rejected_field(json!({"lead": {"phone": "1"}, "signal": "s"})),
            "lead.phone"
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let lead = json!({"externalId": "crm-1"});
        assert_eq!(
            rejected_field(json!({"lead": lead, "signal": ""})),
            "signal"
        );
        assert_eq!(
            rejected_field(json!({"lead": lead, "signal": "s", "occurredAt": "yesterday"})),
            "occurredAt"
        );
        assert_eq!(
            rejected_field(json!({"lead": lead, "signal": "s", "direction": "UP"})),
            "direction"
        );
        assert_eq!(
            rejected_field(json!({"lead": lead, "signal": "s", "amount": "9"})),
            "amount"
        );
        assert_eq!(
            rejected_field(json!({"lead": lead, "signal": "s", "idempotencyKey": "x".repeat(201)})),
            "idempotencyKey"
        );
        assert_eq!(
            rejected_field(json!({"lead": lead, "signal": "s", "occuredAt": "x"})),
            "occuredAt"
        );
        assert_eq!(
            rejected_field(
                json!({"lead": lead, "signal": "s", "createIfMissing": {"company": "x"}})
            ),
            "createIfMissing.name"
        );
        assert_eq!(
            rejected_field(
                json!({"lead": {"id": Uuid::now_v7().to_string()}, "signal": "s", "createIfMissing": {"name": "x"}})
            ),
            "createIfMissing"
        );
    }
}
