//! Leads out as CSV, in the import's columns, so that a file exported from
//! one company re-imports cleanly into another (or the same one): the
//! lead columns, then one column per lead field. Activities stay behind:
//! a re-import would count them twice.
//!
//! The file is written a page of leads at a time, in id order, so memory
//! holds one page however many leads match.

use entity::{LeadId, StageId, TeamId, UserId};
use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use entity::{
    enums::{LeadStatus, Role},
    lead, team, user,
};
use futures_util::Stream;
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

use crate::service::{
    accounts::audit,
    configuration::tenant_config,
    leads::lead_query::{self, LeadFilter},
};
use crate::{
    auth::{
        Principal,
        tokens::{SessionClaims, TokenKeys},
    },
    error::{AppError, AppResult},
    tenancy::{TenantScope, Walled},
};

/// Leads per page read from the database.
const PAGE: u64 = 1_000;

/// The lead columns, as the import names them.
pub const LEAD_COLUMNS: [&str; 16] = [
    "external_id",
    "name",
    "company",
    "email",
    "phone",
    "industry",
    "source",
    "deal_value",
    "created_at",
    "owner_email",
    "team",
    "stage",
    "status",
    "closed_at",
    "close_reason",
    "expected_close_at",
];

/// What an export writes: the leads the caller may see that match the
/// filter, with or without the byte-order mark Excel needs to read UTF-8
/// (Chinese names and companies) correctly.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ExportRequest {
    pub filter: LeadFilter,
    pub bom: bool,
}

/// How long an export link works.
pub const LINK_LIFETIME_MINUTES: i64 = 10;

/// What a REP may not do, at the link's making and at its download.
pub const MAY_EXPORT: &str = "export leads";

/// A signed link to an export of `request` for `principal` (MANAGER and
/// above: a rep does not take the company's leads away in bulk), recorded
/// in the audit log with its filter.
///
/// # Errors
/// FORBIDDEN for a REP; INTERNAL when signing fails.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn link(
    db: &DatabaseConnection,
    principal: &Principal,
    session: SessionClaims,
    keys: &TokenKeys,
    request: &ExportRequest,
    now: DateTime<Utc>,
) -> AppResult<(String, DateTime<Utc>)> {
    principal.require_at_least(Role::Manager, MAY_EXPORT)?;
    let expires_at = now + chrono::Duration::minutes(LINK_LIFETIME_MINUTES);
    let signed = keys
        .sign_export(principal, session, request, now, expires_at)
        .map_err(AppError::Internal)?;
    let walled = Walled::new(db, principal.tenant_id);
    let scope = walled.scope();
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "leads.exported",
            entity: "lead",
            entity_id: None,
            before: None,
            after: serde_json::to_value(request).ok(),
        },
        now,
    )
    .await?;
    Ok((format!("/v1/exports/{signed}"), expires_at))
}

/// What a page of leads is written with: the names behind the ids.
struct Names {
    fields: Vec<String>,
    /// Active users' emails: a departed owner's would not re-import.
    owners: HashMap<UserId, String>,
    teams: HashMap<TeamId, String>,
    stages: HashMap<StageId, String>,
}

impl Names {
    async fn load(scope: &TenantScope<'_, Walled>) -> AppResult<Self> {
        let config = tenant_config::get(scope).await?;
        let owners = scope
            .select::<user::Entity>()
            .select_only()
            .columns([user::Column::Id, user::Column::Email])
            .filter(user::Column::Active.eq(true))
            .into_tuple::<(UserId, String)>()
            .all(scope.conn())
            .await?
            .into_iter()
            .collect();
        let teams = scope
            .select::<team::Entity>()
            .select_only()
            .columns([team::Column::Id, team::Column::Name])
            .into_tuple::<(TeamId, String)>()
            .all(scope.conn())
            .await?
            .into_iter()
            .collect();
        Ok(Self {
            // A field keyed like a lead column (`source`) would not come
            // back in: the import reads that column as the lead's own.
            fields: config
                .catalog
                .fields
                .iter()
                .map(|f| f.key.clone())
                .filter(|k| !LEAD_COLUMNS.contains(&k.as_str()) && k != "outcome")
                .collect(),
            owners,
            teams,
            stages: config
                .pipelines()
                .iter()
                .flat_map(|p| p.1.iter())
                .map(|s| (s.id, s.key.clone()))
                .collect(),
        })
    }

    fn header(&self) -> Vec<&str> {
        LEAD_COLUMNS
            .iter()
            .copied()
            .chain(self.fields.iter().map(String::as_str))
            .collect()
    }

    fn record(&self, lead: &lead::Model) -> Vec<String> {
        let time = |at: Option<DateTime<Utc>>| {
            at.map(|at| at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                .unwrap_or_default()
        };
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        fn of<K: Eq + std::hash::Hash>(map: &HashMap<K, String>, id: Option<K>) -> String {
            id.and_then(|id| map.get(&id).cloned()).unwrap_or_default()
        }
        let status = match lead.status {
            LeadStatus::Open => "open",
            LeadStatus::Won => "won",
            LeadStatus::Lost => "lost",
        };
        let mut out = vec![
            text(&lead.external_id),
            lead.name.clone(),
            text(&lead.company),
            text(&lead.email),
            text(&lead.phone),
            text(&lead.industry),
            text(&lead.source),
            lead.deal_value.map(|v| v.to_string()).unwrap_or_default(),
            time(Some(lead.created_at)),
            of(&self.owners, lead.owner_id),
            of(&self.teams, lead.team_id),
            of(&self.stages, Some(lead.stage_id)),
            status.to_owned(),
            time(lead.closed_at),
            text(&lead.close_reason),
            time(lead.expected_close_at),
        ];
        out.extend(
            self.fields
                .iter()
                .map(|key| match lead.attributes.get(key) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Bool(b)) => b.to_string(),
                    Some(Value::Number(n)) => n.to_string(),
                    Some(other) => other.to_string(),
                }),
        );
        out
    }
}

/// Where an export stands between pages.
struct Cursor {
    db: DatabaseConnection,
    principal: Principal,
    request: ExportRequest,
    names: Option<Names>,
    after: Option<LeadId>,
    done: bool,
}

impl Cursor {
    /// The next chunk of the file: the header (and mark) with the first
    /// page, then a page at a time; none at the end.
    async fn next(&mut self) -> AppResult<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let walled = Walled::new(&self.db, self.principal.tenant_id);
        let scope = walled.scope();
        let mut out = csv::WriterBuilder::new().from_writer(Vec::new());
        let first = self.names.is_none();
        if first {
            let names = Names::load(&scope).await?;
            out.write_record(names.header()).map_err(csv_error)?;
            self.names = Some(names);
        }
        let Some(names) = &self.names else {
            return Ok(None);
        };
        let mut page =
            lead_query::filtered(&scope, &self.principal, &self.request.filter, Utc::now())
                .await?
                .order_by_asc(lead::Column::Id)
                .limit(PAGE);
        if let Some(after) = self.after {
            page = page.filter(lead::Column::Id.gt(after));
        }
        let leads = page.all(scope.conn()).await?;
        self.done = (leads.len() as u64) < PAGE;
        self.after = leads.last().map(|l| l.id).or(self.after);
        for lead in &leads {
            out.write_record(names.record(lead)).map_err(csv_error)?;
        }
        let mut bytes = out
            .into_inner()
            .map_err(|e| AppError::Internal(anyhow::anyhow!("the CSV writer failed: {e}")))?;
        if first && self.request.bom {
            bytes.splice(0..0, *b"\xEF\xBB\xBF");
        }
        Ok(Some(bytes))
    }
}

fn csv_error(e: csv::Error) -> AppError {
    AppError::Internal(anyhow::anyhow!("the CSV writer failed: {e}"))
}

/// The CSV of the leads `principal` may see that match the request, as a
/// stream of chunks. A database error ends the stream with it, after the
/// rows already sent.
pub fn stream(
    db: DatabaseConnection,
    principal: Principal,
    request: ExportRequest,
) -> impl Stream<Item = AppResult<Vec<u8>>> {
    let cursor = Cursor {
        db,
        principal,
        request,
        names: None,
        after: None,
        done: false,
    };
    // One span for the whole download, entered while each page is read:
    // the stream outlives the call, so an attribute's span would not cover it.
    let span = tracing::info_span!("stream", tenant_id = %cursor.principal.tenant_id);
    futures_util::stream::unfold(cursor, move |mut cursor| {
        let span = span.clone();
        async move {
            match cursor.next().instrument(span).await {
                Ok(Some(chunk)) => Some((Ok(chunk), cursor)),
                Ok(None) => None,
                Err(e) => {
                    cursor.done = true;
                    Some((Err(e), cursor))
                }
            }
        }
    })
}
