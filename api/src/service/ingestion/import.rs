//! Importing leads from a CSV file: their fields, owner, team, stage,
//! outcome and activity history, so a company starts with what it knows
//! and its close-probability model learns from its past deals at once.
//!
//! Every row is checked before anything is written, and a dry run stops
//! there. A real run reads the file again and writes the valid rows in
//! batches of [`ROWS_PER_TRANSACTION`] (fewer when they hold many
//! activities), each lead scored as it lands; new leads go in
//! as multi-row inserts, as the demo loader writes them, because one
//! `createLead` per row would take minutes for a large file. A row with an
//! `external_id` already in the tenant updates that lead, and a row that
//! would change nothing is left alone, so importing a file twice changes
//! nothing the second time.
//!
//! The format is described in the README's import section.

use entity::{LeadId, TeamId, UserId};
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use entity::{
    activity,
    enums::{Direction, JobStatus, LeadStatus, StageKind},
    job_run, lead, lead_event, pipeline, stage, team, user,
};
use scoring::ActivityState;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, FromQueryResult,
    QueryFilter, QuerySelect,
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::domain::{Email, Parse, Phone};
use crate::service::{
    assignment::{Assigner, Candidate, Turns},
    begin_write,
    configuration::tenant_config::{self, TenantConfig},
    leads::attributes::{cell_value, check_attribute},
    leads::lead_writer,
    leads::rescore_run::{self as rescore, Trigger},
    leads::rescoring::{self, ModelInUse, secs},
    validate,
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::{TenantScope, Walled},
};

/// Rows written per transaction. One batch is written while the next is
/// prepared, so two are in memory at once.
pub const ROWS_PER_TRANSACTION: usize = 500;
/// Activities written per transaction, however few rows hold them: with
/// the rows, what bounds the memory of an import.
const ACTIVITIES_PER_TRANSACTION: usize = 25_000;
/// Occurrences one `signal:<key>` cell may hold.
const MAX_OCCURRENCES: usize = 1000;
/// Activities one row may hold, all its signal cells together.
pub const MAX_ACTIVITIES_PER_ROW: usize = 2000;
/// Activities one file may hold: a few kilobytes of counts must not turn
/// into hours of writing. A 100,000-lead file with history holds about
/// 800,000.
pub const MAX_ACTIVITIES_PER_FILE: usize = 5_000_000;
/// Problems listed in a report; the rest are counted.
pub const MAX_REPORTED_ERRORS: usize = 200;

/// One problem with the file: its line (the header is line 1), the column
/// and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    pub line: u64,
    pub field: Option<String>,
    pub message: String,
}

/// What an import did, or for a dry run would do.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Data rows in the file.
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    /// Rows that match their lead already.
    pub unchanged: u64,
    /// Rows refused for the problems in `errors`.
    pub refused: u64,
    /// The first [`MAX_REPORTED_ERRORS`] problems, by line.
    pub errors: Vec<ImportError>,
    /// Every problem found, listed or not.
    pub error_count: u64,
    /// The import's own run, whose counters show progress.
    pub import_run: Option<job_run::Model>,
    /// The re-scoring run queued to retrain the predictor, when closed
    /// leads were imported.
    pub rescoring_run: Option<job_run::Model>,
}

impl ImportReport {
    /// Counts a problem, and lists it while the list is short: a header of
    /// a million unknown columns must not answer with a million messages.
    fn problem(&mut self, error: ImportError) {
        self.error_count += 1;
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(error);
        }
    }
}

/// The columns a file may have; lead fields and signals by key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Column {
    Name,
    Company,
    Email,
    Phone,
    Industry,
    DealValue,
    ExternalId,
    Source,
    CreatedAt,
    OwnerEmail,
    Team,
    Stage,
    Status,
    ClosedAt,
    CloseReason,
    ExpectedCloseAt,
    Field(usize),
    Signal(usize),
}

const FIXED_COLUMNS: [(&str, Column); 17] = [
    ("name", Column::Name),
    ("company", Column::Company),
    ("email", Column::Email),
    ("phone", Column::Phone),
    ("industry", Column::Industry),
    ("deal_value", Column::DealValue),
    ("external_id", Column::ExternalId),
    ("source", Column::Source),
    ("created_at", Column::CreatedAt),
    ("owner_email", Column::OwnerEmail),
    ("team", Column::Team),
    ("stage", Column::Stage),
    ("status", Column::Status),
    ("outcome", Column::Status),
    ("closed_at", Column::ClosedAt),
    ("close_reason", Column::CloseReason),
    ("expected_close_at", Column::ExpectedCloseAt),
];

/// A row that passed every check, ready to write.
struct Row {
    line: u64,
    name: String,
    company: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    industry: Option<String>,
    source: Option<String>,
    deal_value: Option<f64>,
    external_id: Option<String>,
    created_at: Option<DateTime<Utc>>,
    owner: Option<UserId>,
    team: Option<TeamId>,
    /// The open stage the lead is (or was, before closing) in.
    stage: Option<usize>,
    status: LeadStatus,
    closed_at: Option<DateTime<Utc>>,
    close_reason: Option<String>,
    expected_close_at: Option<DateTime<Utc>>,
    attributes: Map<String, Value>,
    /// (signal index, when), oldest first, from cells of dates.
    activities: Vec<(usize, DateTime<Utc>)>,
    /// (signal index, how many), from cells of counts.
    counts: Vec<(usize, usize)>,
    /// The lead this row updates.
    existing: Option<LeadId>,
}

impl Row {
    /// The activities the row brings, counted and dated.
    fn activity_count(&self) -> usize {
        self.activities.len() + self.counts.iter().map(|(_, n)| n).sum::<usize>()
    }
}

/// The keys an existing lead may be found by.
#[derive(FromQueryResult)]
struct KnownLead {
    id: LeadId,
    external_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    dedupe_key: Option<String>,
}

/// What the tenant already has that rows refer to.
struct Context {
    config: std::sync::Arc<TenantConfig>,
    users: HashMap<String, UserId>,
    teams: HashMap<String, TeamId>,
    pipeline: pipeline::Model,
    stages: Vec<stage::Model>,
    /// external id → lead id
    external: HashMap<String, LeadId>,
    /// email, phone and company+name → lead id, for duplicates
    emails: HashMap<String, LeadId>,
    phones: HashMap<String, LeadId>,
    dedupe: HashMap<String, LeadId>,
}

impl Context {
    async fn load<C: ConnectionTrait>(scope: &TenantScope<'_, C>) -> AppResult<Self> {
        let config = tenant_config::get(scope).await?;
        let users = scope
            .select::<user::Entity>()
            .filter(user::Column::Active.eq(true))
            .all(scope.conn())
            .await?
            .into_iter()
            .map(|u| (u.email.to_lowercase(), u.id))
            .collect();
        let teams = scope
            .select::<team::Entity>()
            .all(scope.conn())
            .await?
            .into_iter()
            .map(|t| (t.name.trim().to_lowercase(), t.id))
            .collect();
        let default = config
            .default_pipeline()
            .ok_or_else(|| AppError::not_found("pipeline", "default"))?;
        let (pipeline, stages) = (default.0.clone(), default.1.clone());
        let known: Vec<KnownLead> = scope
            .select::<lead::Entity>()
            .select_only()
            .columns([
                lead::Column::Id,
                lead::Column::ExternalId,
                lead::Column::Email,
                lead::Column::Phone,
                lead::Column::DedupeKey,
            ])
            .into_model()
            .all(scope.conn())
            .await?;
        let mut context = Self {
            config,
            users,
            teams,
            pipeline,
            stages,
            external: HashMap::new(),
            emails: HashMap::new(),
            phones: HashMap::new(),
            dedupe: HashMap::new(),
        };
        for known in known {
            for (map, key) in [
                (&mut context.external, known.external_id),
                (&mut context.emails, known.email),
                (&mut context.phones, known.phone),
                (&mut context.dedupe, known.dedupe_key),
            ] {
                if let Some(key) = key {
                    map.insert(key, known.id);
                }
            }
        }
        Ok(context)
    }

    fn stage_named(&self, value: &str) -> Option<usize> {
        let wanted = value.trim().to_lowercase();
        self.stages
            .iter()
            .position(|s| s.key == wanted || s.name.trim().to_lowercase() == wanted)
    }
}

/// Checks `csv` and, unless `dry_run`, writes its valid rows; `progress`
/// hears (rows done, rows to write) after each batch.
///
/// # Errors
/// FORBIDDEN below ADMIN; database errors. Problems with the file are in
/// the report, not errors.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, dry_run = dry_run, bytes = csv.len()))]
pub async fn import(
    db: &DatabaseConnection,
    principal: &Principal,
    csv: &[u8],
    dry_run: bool,
    mut progress: impl FnMut(u64, u64),
    now: DateTime<Utc>,
) -> AppResult<ImportReport> {
    principal.require_admin("import leads")?;
    let walled = Walled::new(db, principal.tenant_id);
    let scope = walled.scope();
    let context = Context::load(&scope).await?;
    let mut report = ImportReport::default();
    // The file is read twice, a row at a time: once to check every row,
    // then to write the valid ones in batches, so memory holds a batch of
    // rows rather than the whole file parsed.
    let Some(mut rows) = RowReader::open(&context, csv, now, &mut report) else {
        return Ok(report);
    };
    let (mut valid, mut new) = (0u64, 0u64);
    while let Some(row) = rows.next_valid(&mut report) {
        valid += 1;
        new += u64::from(row.existing.is_none());
    }
    if dry_run || valid == 0 {
        report.created = new;
        report.updated = valid - new;
        return Ok(report);
    }

    let run = job_run::ActiveModel {
        kind: Set("import".to_owned()),
        status: Set(JobStatus::Running),
        started_at: Set(Some(now)),
        heartbeat_at: Set(Some(now)),
        ..rescore::queued_run(Trigger::Manual, None, Some(principal.user_id), now)
    };
    let run = scope.insert(run).await?;
    let mut writer = Writer {
        scope,
        context: &context,
        principal,
        models: HashMap::new(),
        pinners: rescoring::Pinners::default(),
        assigner: Assigner::load(&scope).await?,
        now,
        closed_written: 0,
    };
    // The same checks again find the same valid rows; their problems were
    // reported by the first reading.
    let mut again = ImportReport::default();
    let mut rows = RowReader::open(&context, csv, now, &mut again).ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!(
            "the import file read differently the second time"
        ))
    })?;
    let mut done = 0u64;
    let mut failure = None;
    let mut pending: Option<Prepared> = None;
    // Where the time goes, in the run's details: reading and scoring the
    // file's batches, and writing them (the two overlap).
    let (mut prepare_ms, mut write_ms) = (0u128, 0u128);
    loop {
        // The next batch is read and scored while this one is written, so
        // the database writes while this process scores instead of each
        // waiting for the other (as the nightly job does).
        // The write runs as a task of its own: on a multi-threaded runtime
        // (the command line) it proceeds on another core while this one
        // scores, instead of waiting for the scoring to yield.
        let writing = pending
            .take()
            .map(|prepared| tokio::spawn(write(db.clone(), principal.tenant_id, prepared)));
        let writing = async {
            match writing {
                Some(task) => match task.await {
                    Ok(written) => written.map(Some),
                    Err(err) => Err(AppError::Internal(anyhow::anyhow!(
                        "writing an import batch stopped: {err}"
                    ))),
                },
                None => Ok(None),
            }
        };
        let preparing = async {
            let batch = next_batch(&mut rows, &mut again);
            if batch.is_empty() {
                return Ok(None);
            }
            let started = std::time::Instant::now();
            let prepared = writer.prepare(db, &batch).await;
            prepare_ms += started.elapsed().as_millis();
            prepared.map(Some)
        };
        // Not try_join: a batch being written is finished and counted even
        // when the next one fails to prepare.
        let (written, prepared) = tokio::join!(writing, preparing);
        match written {
            Ok(Some(written)) => {
                report.created += written.created;
                report.updated += written.updated;
                report.unchanged += written.unchanged;
                done += written.rows;
                write_ms += written.ms;
                progress(done, valid);
                scope
                    .update_many::<job_run::Entity>()
                    .col_expr(
                        job_run::Column::LeadsScanned,
                        i64::try_from(done).unwrap_or(i64::MAX).into(),
                    )
                    .col_expr(
                        job_run::Column::LeadsChanged,
                        i64::try_from(report.created + report.updated)
                            .unwrap_or(i64::MAX)
                            .into(),
                    )
                    .col_expr(job_run::Column::HeartbeatAt, Some(Utc::now()).into())
                    .filter(job_run::Column::Id.eq(run.id))
                    .exec(scope.conn())
                    .await?;
            }
            Ok(None) => {}
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
        match prepared {
            Ok(Some(prepared)) => pending = Some(prepared),
            Ok(None) => break,
            Err(err) => {
                failure = Some(err);
                break;
            }
        }
    }
    let mut finished: job_run::ActiveModel = run.into();
    finished.finished_at = Set(Some(Utc::now()));
    finished.details = Set(Some(json!({
        "rows": report.rows,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "refused": report.refused,
        "prepareMs": u64::try_from(prepare_ms).unwrap_or(u64::MAX),
        "writeMs": u64::try_from(write_ms).unwrap_or(u64::MAX),
    })));
    match &failure {
        None => finished.status = Set(JobStatus::Succeeded),
        Some(err) => {
            finished.status = Set(JobStatus::Failed);
            finished.error = Set(Some(err.to_string()));
        }
    }
    report.import_run = Some(scope.update(finished).await?);
    if report.created + report.updated >= ROWS_PER_TRANSACTION as u64 {
        crate::db::refresh_statistics(db, crate::db::LEAD_TABLES).await?;
    }
    if let Some(err) = failure {
        return Err(err);
    }
    if writer.closed_written > 0 {
        // Past outcomes teach the close-probability model: retrain now
        // rather than at night.
        report.rescoring_run = Some(
            rescore::enqueue(
                db,
                principal.tenant_id,
                Trigger::Import,
                None,
                Some(principal.user_id),
                now,
            )
            .await?,
        );
    }
    Ok(report)
}

/// The file's rows, read and checked one at a time.
struct RowReader<'a> {
    context: &'a Context,
    records: csv::StringRecordsIntoIter<&'a [u8]>,
    header: csv::StringRecord,
    columns: Vec<Column>,
    /// Keys and activities taken by the rows read so far.
    seen: Seen,
    now: DateTime<Utc>,
}

impl<'a> RowReader<'a> {
    /// Reads the header; `None`, with the problems and every row refused
    /// in `report`, when the rows cannot be read by it.
    fn open(
        context: &'a Context,
        csv: &'a [u8],
        now: DateTime<Utc>,
        report: &mut ImportReport,
    ) -> Option<Self> {
        let csv = csv.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(csv);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(csv);
        let header = match reader.headers() {
            Ok(h) => h.clone(),
            Err(err) => {
                report.problem(ImportError {
                    line: 1,
                    field: None,
                    message: format!("the header row cannot be read: {err}"),
                });
                return None;
            }
        };
        match read_header(context, &header) {
            Ok(columns) => Some(Self {
                context,
                records: reader.into_records(),
                header,
                columns,
                seen: Seen::default(),
                now,
            }),
            Err(errors) => {
                for error in errors {
                    report.problem(error);
                }
                // Without knowing every column, no row can be read right.
                report.rows = reader.records().count() as u64;
                report.refused = report.rows;
                None
            }
        }
    }

    /// The next row without a problem; the rows with one are counted as
    /// refused and their problems go to `report`.
    fn next_valid(&mut self, report: &mut ImportReport) -> Option<Row> {
        for record in self.records.by_ref() {
            report.rows += 1;
            let record = match record {
                Ok(r) => r,
                Err(err) => {
                    report.refused += 1;
                    report.problem(ImportError {
                        line: err.position().map_or(report.rows + 1, |p| p.line()),
                        field: None,
                        message: format!("the row cannot be read: {err}"),
                    });
                    continue;
                }
            };
            let line = record.position().map_or(report.rows + 1, |p| p.line());
            if record.len() != self.columns.len() {
                report.refused += 1;
                report.problem(ImportError {
                    line,
                    field: None,
                    message: format!(
                        "has {} values; the header has {} columns",
                        record.len(),
                        self.columns.len()
                    ),
                });
                continue;
            }
            let mut errors = Vec::new();
            let row = check_row(
                self.context,
                &self.columns,
                &self.header,
                &record,
                line,
                self.now,
                &mut self.seen,
                &mut errors,
            );
            if errors.is_empty() {
                return Some(row);
            }
            report.refused += 1;
            for error in errors {
                report.problem(error);
            }
        }
        None
    }
}

fn read_header(
    context: &Context,
    header: &csv::StringRecord,
) -> Result<Vec<Column>, Vec<ImportError>> {
    let mut columns = Vec::new();
    let mut errors = Vec::new();
    let error = |field: &str, message: String| ImportError {
        line: 1,
        field: Some(field.to_owned()),
        message,
    };
    for name in header {
        let key = name.trim().to_lowercase();
        let column = if let Some((_, c)) = FIXED_COLUMNS.iter().find(|(n, _)| *n == key) {
            Some(*c)
        } else if let Some(signal) = key.strip_prefix("signal:") {
            match context
                .config
                .catalog
                .signals
                .iter()
                .position(|s| s.key == signal)
            {
                Some(i) if context.config.catalog.signals[i].retired => {
                    errors.push(error(
                        name,
                        format!("the signal \"{signal}\" is retired and takes no new activities"),
                    ));
                    None
                }
                Some(i) => Some(Column::Signal(i)),
                None => {
                    errors.push(error(name, format!("there is no signal type \"{signal}\"")));
                    None
                }
            }
        } else if let Some(i) = context
            .config
            .catalog
            .fields
            .iter()
            .position(|f| f.key == key)
        {
            Some(Column::Field(i))
        } else {
            errors.push(error(
                name,
                "unknown column: expected a lead column (name, company, email, phone, industry, deal_value, external_id, source, created_at, owner_email, team, stage, status, closed_at, close_reason, expected_close_at), a lead field key or signal:<key>".to_owned(),
            ));
            None
        };
        if let Some(column) = column {
            if columns.contains(&column) {
                errors.push(error(name, "appears twice".to_owned()));
            }
            columns.push(column);
        }
    }
    if !columns.contains(&Column::Name) {
        errors.push(ImportError {
            line: 1,
            field: Some("name".into()),
            message: "the name column is required".into(),
        });
    }
    if errors.is_empty() {
        Ok(columns)
    } else {
        Err(errors)
    }
}

/// Keys taken by earlier rows of the file, with their line.
#[derive(Default)]
struct Seen {
    external: HashMap<String, u64>,
    emails: HashMap<String, u64>,
    phones: HashMap<String, u64>,
    dedupe: HashMap<String, u64>,
    /// Activities of the valid rows so far.
    activities: usize,
}

#[allow(clippy::too_many_arguments)]
fn check_row(
    context: &Context,
    columns: &[Column],
    header: &csv::StringRecord,
    record: &csv::StringRecord,
    line: u64,
    now: DateTime<Utc>,
    seen: &mut Seen,
    errors: &mut Vec<ImportError>,
) -> Row {
    let mut row = Row {
        line,
        name: String::new(),
        company: None,
        email: None,
        phone: None,
        industry: None,
        source: None,
        deal_value: None,
        external_id: None,
        created_at: None,
        owner: None,
        team: None,
        stage: None,
        status: LeadStatus::Open,
        closed_at: None,
        close_reason: None,
        expected_close_at: None,
        attributes: Map::new(),
        activities: Vec::new(),
        counts: Vec::new(),
        existing: None,
    };
    let mut signal_cells = Vec::new();
    for ((column, value), name) in columns.iter().zip(record).zip(header) {
        let value = value.trim();
        let mut fail = |message: String| {
            errors.push(ImportError {
                line,
                field: Some(name.trim().to_owned()),
                message,
            });
        };
        let text = |max: usize| -> Result<Option<String>, String> {
            validate::optional_text("", Some(value), max)
                .map_err(|e| e.to_string())
                .map(|v| v.filter(|v| !v.is_empty()))
        };
        let result: Result<(), String> = (|| {
            match *column {
                Column::Name => {
                    row.name = text(200)?.ok_or("is required")?;
                }
                Column::Company => row.company = text(200)?,
                Column::Industry => row.industry = text(120)?,
                Column::Source => row.source = text(120)?,
                Column::CloseReason => row.close_reason = text(500)?,
                Column::ExternalId => row.external_id = text(200)?,
                Column::Email if !value.is_empty() => {
                    row.email = Some(
                        Email::parse(value)
                            .map_err(|_| "is not an email address")?
                            .into(),
                    );
                }
                Column::Phone if !value.is_empty() => {
                    row.phone = Some(Phone::parse(value)?.into());
                }
                Column::DealValue if !value.is_empty() => {
                    let v: f64 = value.parse().map_err(|_| "must be a number")?;
                    row.deal_value = lead_writer::check_deal_value(Some(v))?;
                }
                Column::CreatedAt if !value.is_empty() => {
                    row.created_at = Some(lead_writer::check_created_at(parse_time(value)?, now)?);
                }
                Column::ClosedAt if !value.is_empty() => {
                    let at = parse_time(value)?;
                    if at > now {
                        return Err("must not be in the future".into());
                    }
                    row.closed_at = Some(at);
                }
                Column::ExpectedCloseAt if !value.is_empty() => {
                    row.expected_close_at = Some(parse_time(value)?);
                }
                Column::OwnerEmail if !value.is_empty() => {
                    row.owner = Some(
                        *context
                            .users
                            .get(&value.to_lowercase())
                            .ok_or("no active user of your company has this email")?,
                    );
                }
                Column::Team if !value.is_empty() => {
                    row.team = Some(
                        *context
                            .teams
                            .get(&value.to_lowercase())
                            .ok_or_else(|| format!("there is no team \"{value}\""))?,
                    );
                }
                Column::Stage if !value.is_empty() => {
                    row.stage = Some(context.stage_named(value).ok_or_else(|| {
                        format!(
                            "the pipeline \"{}\" has no stage \"{value}\"; use a stage key or name",
                            context.pipeline.name
                        )
                    })?);
                }
                Column::Status if !value.is_empty() => {
                    row.status = match value.to_lowercase().as_str() {
                        "open" => LeadStatus::Open,
                        "won" => LeadStatus::Won,
                        "lost" => LeadStatus::Lost,
                        _ => return Err("must be open, won or lost".into()),
                    };
                }
                Column::Field(i) if !value.is_empty() => {
                    let field = &context.config.catalog.fields[i];
                    let parsed = cell_value(field, value)?;
                    let checked = check_attribute(field, &parsed, "").map_err(|e| e.to_string())?;
                    row.attributes.insert(field.key.clone(), checked);
                }
                Column::Signal(i) if !value.is_empty() => signal_cells.push((i, value)),
                _ => {}
            }
            Ok(())
        })();
        if let Err(message) = result {
            fail(message);
        }
    }
    check_stage_and_outcome(context, &mut row, header, columns, errors);
    for (signal, cell) in signal_cells {
        let column = format!("signal:{}", context.config.catalog.signals[signal].key);
        match occurrences(cell, now) {
            Ok(Occurrences::Count(n)) => row.counts.push((signal, n)),
            Ok(Occurrences::Dates(times)) => row
                .activities
                .extend(times.into_iter().map(|at| (signal, at))),
            Err(message) => errors.push(ImportError {
                line,
                field: Some(column),
                message,
            }),
        }
    }
    row.activities.sort_by_key(|(_, at)| *at);
    for field in context.config.catalog.fields.iter().filter(|f| f.required) {
        if !row.attributes.contains_key(&field.key) && row.external_id.is_none() {
            errors.push(ImportError {
                line,
                field: Some(field.key.clone()),
                message: "is required".into(),
            });
        }
    }
    check_duplicates(context, &mut row, seen, errors);
    let activities = row.activity_count();
    if activities > MAX_ACTIVITIES_PER_ROW {
        errors.push(ImportError {
            line,
            field: None,
            message: format!(
                "its signal cells hold {activities} activities; a row may hold at most \
                 {MAX_ACTIVITIES_PER_ROW}"
            ),
        });
    } else if errors.is_empty() {
        if seen.activities + activities > MAX_ACTIVITIES_PER_FILE {
            errors.push(ImportError {
                line,
                field: None,
                message: format!(
                    "the file's activities pass {MAX_ACTIVITIES_PER_FILE} here; import the \
                     rows from this line on in another file"
                ),
            });
        } else {
            seen.activities += activities;
        }
    }
    row
}

fn check_stage_and_outcome(
    context: &Context,
    row: &mut Row,
    header: &csv::StringRecord,
    columns: &[Column],
    errors: &mut Vec<ImportError>,
) {
    let column_name = |wanted: Column, fallback: &str| {
        columns
            .iter()
            .zip(header)
            .find(|(c, _)| **c == wanted)
            .map_or(fallback.to_owned(), |(_, n)| n.trim().to_owned())
    };
    let mut fail = |column: Column, fallback: &str, message: &str| {
        errors.push(ImportError {
            line: row.line,
            field: Some(column_name(column, fallback)),
            message: message.to_owned(),
        });
    };
    let closing = row
        .stage
        .and_then(|i| context.stages.get(i))
        .map(|s| s.kind);
    match (row.status, closing) {
        // A won or lost stage in the stage column says the outcome.
        (LeadStatus::Open, Some(StageKind::Won)) if !columns.contains(&Column::Status) => {
            row.status = LeadStatus::Won;
        }
        (LeadStatus::Open, Some(StageKind::Lost)) if !columns.contains(&Column::Status) => {
            row.status = LeadStatus::Lost;
        }
        (LeadStatus::Open, Some(StageKind::Won | StageKind::Lost)) => fail(
            Column::Stage,
            "stage",
            "is a won or lost stage but the status is open",
        ),
        (LeadStatus::Won, Some(StageKind::Lost)) | (LeadStatus::Lost, Some(StageKind::Won)) => {
            fail(Column::Stage, "stage", "contradicts the status")
        }
        _ => {}
    }
    if matches!(closing, Some(StageKind::Won | StageKind::Lost)) {
        // The stage before the close is unknown; the close stage follows
        // from the status.
        row.stage = None;
    }
    match (row.status, row.closed_at) {
        (LeadStatus::Open, Some(_)) => fail(
            Column::ClosedAt,
            "closed_at",
            "is only for won or lost leads",
        ),
        (LeadStatus::Won | LeadStatus::Lost, None) => fail(
            Column::ClosedAt,
            "closed_at",
            "is required for a won or lost lead",
        ),
        (_, Some(closed)) if row.created_at.is_some_and(|c| c > closed) => {
            fail(Column::ClosedAt, "closed_at", "is before created_at")
        }
        _ => {}
    }
}

fn check_duplicates(
    context: &Context,
    row: &mut Row,
    seen: &mut Seen,
    errors: &mut Vec<ImportError>,
) {
    let line = row.line;
    if let Some(external) = &row.external_id {
        if let Some(first) = seen.external.get(external) {
            errors.push(ImportError {
                line,
                field: Some("external_id".into()),
                message: format!("repeats the external id of line {first}"),
            });
        } else {
            seen.external.insert(external.clone(), line);
        }
        row.existing = context.external.get(external).copied();
    }
    let dedupe = lead_writer::dedupe_key(row.company.as_deref(), &row.name);
    let checks = [
        (
            "email",
            row.email.clone(),
            &context.emails,
            &mut seen.emails,
        ),
        (
            "phone",
            row.phone.clone(),
            &context.phones,
            &mut seen.phones,
        ),
        ("company", dedupe, &context.dedupe, &mut seen.dedupe),
    ];
    for (column, key, existing, seen) in checks {
        let Some(key) = key else { continue };
        let what = if column == "company" {
            "company and name".to_owned()
        } else {
            column.to_owned()
        };
        if let Some(other) = existing.get(&key).filter(|id| Some(**id) != row.existing) {
            errors.push(ImportError {
                line,
                field: Some(column.into()),
                message: format!("a lead with the same {what} already exists ({other})"),
            });
        } else if let Some(first) = seen.get(&key) {
            errors.push(ImportError {
                line,
                field: Some(column.into()),
                message: format!("has the same {what} as line {first}"),
            });
        } else {
            seen.insert(key, line);
        }
    }
}

/// A date or time: RFC 3339, `YYYY-MM-DD HH:MM[:SS]` (UTC) or `YYYY-MM-DD`.
fn parse_time(value: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(value, format) {
            return Ok(at.and_utc());
        }
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc())
        .ok_or_else(|| format!("\"{value}\" is not a date; use YYYY-MM-DD or RFC 3339"))
}

/// What a `signal:<key>` cell holds.
enum Occurrences {
    /// How many times, when is not known: spread over the lead's life.
    Count(usize),
    Dates(Vec<DateTime<Utc>>),
}

/// A `signal:<key>` cell: a count or `;`-separated dates.
fn occurrences(cell: &str, now: DateTime<Utc>) -> Result<Occurrences, String> {
    if let Ok(count) = cell.parse::<usize>() {
        if count > MAX_OCCURRENCES {
            return Err(format!("at most {MAX_OCCURRENCES} occurrences"));
        }
        return Ok(Occurrences::Count(count));
    }
    let times: Vec<DateTime<Utc>> = cell
        .split(';')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(parse_time)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{e}; or give a count"))?;
    if times.len() > MAX_OCCURRENCES {
        return Err(format!("at most {MAX_OCCURRENCES} occurrences"));
    }
    if times.iter().any(|t| *t > now) {
        return Err("dates must not be in the future".into());
    }
    Ok(Occurrences::Dates(times))
}

/// `count` times spread evenly between `start` and `end`, both excluded.
fn spread(count: usize, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let span = (end - start).num_seconds().max(0);
    let parts = i64::try_from(count + 1).unwrap_or(i64::MAX);
    (1..=count)
        .map(|i| start + chrono::Duration::seconds(span * i64::try_from(i).unwrap_or(0) / parts))
        .collect()
}

/// Times of the activities a lead has, by lead and signal key.
type KnownActivities = HashMap<(LeadId, String), Vec<i64>>;

/// Writes batches of checked rows.
struct Writer<'a> {
    scope: TenantScope<'a, Walled>,
    context: &'a Context,
    principal: &'a Principal,
    models: HashMap<Option<TeamId>, std::sync::Arc<ModelInUse>>,
    pinners: rescoring::Pinners,
    /// Hands the file's open, unowned leads to reps by the tenant's rules.
    assigner: Option<Assigner>,
    now: DateTime<Utc>,
    closed_written: u64,
}

impl Writer<'_> {
    /// Reads what one batch changes and scores it, ready to be written in
    /// one transaction.
    async fn prepare(&mut self, db: &DatabaseConnection, rows: &[Row]) -> AppResult<Prepared> {
        for row in rows {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.models.entry(row.team) {
                slot.insert(self.context.config.model(row.team)?);
            }
        }
        let updates: Vec<LeadId> = rows.iter().filter_map(|r| r.existing).collect();
        let mut existing: HashMap<LeadId, lead::Model> = self
            .scope
            .select::<lead::Entity>()
            .filter(lead::Column::Id.is_in(updates.iter().copied()))
            .all(self.scope.conn())
            .await?
            .into_iter()
            .map(|l| (l.id, l))
            .collect();
        let mut known_activities: KnownActivities = HashMap::new();
        let stored: Vec<(LeadId, String, DateTime<Utc>)> = self
            .scope
            .select::<activity::Entity>()
            .select_only()
            .columns([
                activity::Column::LeadId,
                activity::Column::SignalKey,
                activity::Column::OccurredAt,
            ])
            .filter(activity::Column::LeadId.is_in(updates.iter().copied()))
            .into_tuple()
            .all(self.scope.conn())
            .await?;
        for (lead, key, at) in stored {
            known_activities
                .entry((lead, key))
                .or_default()
                .push(secs(at));
        }

        // A pinned lead's breakdown names who pinned it.
        let mut pinners = rescoring::Pinners::default();
        pinners
            .load_for_leads(&self.scope, existing.values())
            .await?;
        self.pinners = pinners;
        let mut batch = lead_writer::Bulk::new(self.principal.tenant_id, db.get_database_backend());
        let (mut created, mut updated, mut unchanged) = (0, 0, 0);
        for row in rows {
            let current = row.existing.and_then(|id| existing.remove(&id));
            match self.lead_of(row, current.as_ref(), &mut known_activities, &mut batch)? {
                Outcome::Created => created += 1,
                Outcome::Updated => updated += 1,
                Outcome::Unchanged => unchanged += 1,
            }
        }

        Ok(Prepared {
            bulk: batch.prepared(),
            turns: self
                .assigner
                .as_mut()
                .map(Assigner::take_turns)
                .unwrap_or_default(),
            counts: Written {
                rows: rows.len() as u64,
                created,
                updated,
                unchanged,
                ms: 0,
            },
        })
    }

    /// The lead a row describes, new or changed, queued for writing with
    /// its activities and events.
    fn lead_of(
        &mut self,
        row: &Row,
        current: Option<&lead::Model>,
        known_activities: &mut KnownActivities,
        batch: &mut lead_writer::Bulk,
    ) -> AppResult<Outcome> {
        let tenant_id = self.principal.tenant_id;
        let context = self.context;
        let now = self.now;
        let id = current.map_or_else(LeadId::new, |c| c.id);
        let open_stage = row
            .stage
            .and_then(|i| context.stages.get(i))
            .or_else(|| {
                current
                    .and_then(|c| context.stages.iter().find(|s| s.id == c.stage_id))
                    .filter(|s| s.kind == StageKind::Open)
            })
            .or_else(|| context.stages.iter().find(|s| s.kind == StageKind::Open))
            .ok_or_else(|| AppError::invalid("stage", "the default pipeline has no open stage"))?;
        let created_at = row
            .created_at
            .or(current.map(|c| c.created_at))
            .unwrap_or(now);

        let mut lead = match current {
            Some(c) => c.clone(),
            None => lead_writer::blank(
                tenant_id,
                id,
                self.principal.user_id,
                context.pipeline.id,
                now,
            ),
        };
        lead.name.clone_from(&row.name);
        for (slot, value) in [
            (&mut lead.company, &row.company),
            (&mut lead.email, &row.email),
            (&mut lead.phone, &row.phone),
            (&mut lead.industry, &row.industry),
            (&mut lead.source, &row.source),
            (&mut lead.external_id, &row.external_id),
            (&mut lead.close_reason, &row.close_reason),
        ] {
            if value.is_some() {
                slot.clone_from(value);
            }
        }
        if row.deal_value.is_some() {
            lead.deal_value = row.deal_value;
        }
        if row.expected_close_at.is_some() {
            lead.expected_close_at = row.expected_close_at;
        }
        if row.owner.is_some() {
            lead.owner_id = row.owner;
        }
        if row.team.is_some() {
            lead.team_id = row.team;
        }
        lead.created_at = created_at;
        let mut attributes = lead.attributes.as_object().cloned().unwrap_or_default();
        attributes.extend(row.attributes.clone());
        lead.attributes = Value::Object(attributes);

        // The outcome: a lead closes as the file says; a closed one stays so.
        let was_open = current.is_none_or(|c| c.status == LeadStatus::Open);
        let closes = was_open && row.status != LeadStatus::Open;
        if was_open && !closes {
            if lead.stage_id != open_stage.id || current.is_none() {
                lead.stage_entered_at = if current.is_none() { created_at } else { now };
            }
            lead.stage_id = open_stage.id;
        }
        if closes {
            let kind = if row.status == LeadStatus::Won {
                StageKind::Won
            } else {
                StageKind::Lost
            };
            let closing = context
                .stages
                .iter()
                .find(|s| s.kind == kind)
                .ok_or_else(|| {
                    AppError::invalid(
                        "status",
                        "the default pipeline has no stage for this outcome",
                    )
                })?;
            let closed_at = row.closed_at.unwrap_or(now);
            lead.stage_id = closing.id;
            lead.stage_entered_at = closed_at;
            lead.status = row.status;
            lead.closed_at = Some(closed_at);
            batch.lead_event(lead_event::ActiveModel {
                tenant_id: Set(tenant_id),
                id: Set(Uuid::now_v7()),
                lead_id: Set(id),
                kind: Set("STAGE".into()),
                actor_id: Set(Some(self.principal.user_id)),
                at: Set(closed_at),
                from_value: Set(Some(open_stage.key.clone())),
                to_value: Set(Some(closing.key.clone())),
                data: Set(Some(json!({"reason": "imported"}))),
            });
            self.closed_written += 1;
        }

        // Activities not already recorded, folded into the signal state the
        // way `recordActivity` folds them.
        let mut state = ActivityState::from_bytes(&lead.signal_state).unwrap_or_default();
        let mut new: Vec<(usize, DateTime<Utc>)> = Vec::new();
        for (signal, at) in &row.activities {
            let known = known_activities
                .entry((id, context.config.catalog.signals[*signal].key.clone()))
                .or_default();
            if !known.contains(&secs(*at)) {
                known.push(secs(*at));
                new.push((*signal, *at));
            }
        }
        // A count is a total: a second import of the same count adds none.
        let end = lead.closed_at.unwrap_or(now);
        for (signal, count) in &row.counts {
            let known = known_activities
                .entry((id, context.config.catalog.signals[*signal].key.clone()))
                .or_default();
            let missing = count.saturating_sub(known.len());
            let times = spread(missing, lead.created_at.min(end), end);
            known.extend(times.iter().map(|t| secs(*t)));
            new.extend(times.into_iter().map(|at| (*signal, at)));
        }
        new.sort_by_key(|(_, at)| *at);
        let added = new.len();
        for (signal, at) in &new {
            let def = &context.config.catalog.catalog.signals[*signal];
            let stored = &context.config.catalog.signals[*signal];
            state.record_as(def, def.direction, secs(*at), None);
            let last = match stored.direction {
                Direction::Inbound => &mut lead.last_inbound_at,
                Direction::Outbound => &mut lead.last_outbound_at,
            };
            *last = (*last).max(Some(*at));
            batch.activity(activity::ActiveModel {
                tenant_id: Set(tenant_id),
                id: Set(Uuid::now_v7()),
                lead_id: Set(id),
                signal_key: Set(def.key.clone()),
                direction: Set(stored.direction),
                occurred_at: Set(*at),
                note: Set(None),
                amount: Set(None),
                created_by: Set(Some(self.principal.user_id)),
                created_at: Set(now),
            });
        }
        lead.last_activity_at = lead.last_inbound_at.max(lead.last_outbound_at);
        lead.signal_state = state.to_bytes();

        if let Some(current) = current
            && added == 0
            && same_facts(current, &lead)
        {
            return Ok(Outcome::Unchanged);
        }
        let Some(model) = self.models.get(&lead.team_id) else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "no model loaded for the lead's team"
            )));
        };
        let pinner = self.pinners.name(lead.pinned_by).map(str::to_owned);
        lead_writer::score(&mut lead, pinner.as_deref(), &context.stages, model, now)?;
        if lead.status == LeadStatus::Open
            && lead.owner_id.is_none()
            && let Some(assigner) = &mut self.assigner
            && let Some(pick) = assigner.pick(&Candidate {
                team_id: lead.team_id,
                tier: &lead.tier,
                source: lead.source.as_deref(),
                attributes: &lead.attributes,
            })
        {
            lead.owner_id = Some(pick.user_id);
            batch.lead_event(pick.event(tenant_id, id, now));
        }
        match current {
            None => {
                batch.insert(lead, "imported", now);
                Ok(Outcome::Created)
            }
            Some(current) => {
                batch.update(current, lead, "imported", now);
                Ok(Outcome::Updated)
            }
        }
    }
}

/// A batch read and scored, waiting for its transaction.
struct Prepared {
    bulk: lead_writer::PreparedBulk,
    /// The assignment rules' turns as they stand after this batch.
    turns: Turns,
    counts: Written,
}

/// What a written batch did to the file's rows.
#[derive(Clone, Copy)]
struct Written {
    rows: u64,
    created: u64,
    updated: u64,
    unchanged: u64,
    /// How long its transaction took.
    ms: u128,
}

/// Writes one prepared batch in one transaction.
async fn write(db: DatabaseConnection, tenant_id: Uuid, prepared: Prepared) -> AppResult<Written> {
    let started = std::time::Instant::now();
    let txn = begin_write(&db).await?;
    let scope = TenantScope::enter(&txn, tenant_id).await?;
    // A lead changed since the file was checked keeps that change: the
    // batch fails with CONFLICT.
    prepared.bulk.write(&txn).await?;
    prepared.turns.save(&scope).await?;
    txn.commit().await?;
    Ok(Written {
        ms: started.elapsed().as_millis(),
        ..prepared.counts
    })
}

/// The next rows to write together: at most [`ROWS_PER_TRANSACTION`] rows,
/// fewer when they hold [`ACTIVITIES_PER_TRANSACTION`] activities.
fn next_batch(rows: &mut RowReader<'_>, report: &mut ImportReport) -> Vec<Row> {
    let mut batch = Vec::new();
    let mut activities = 0;
    while batch.len() < ROWS_PER_TRANSACTION && activities < ACTIVITIES_PER_TRANSACTION {
        let Some(row) = rows.next_valid(report) else {
            break;
        };
        activities += row.activity_count();
        batch.push(row);
    }
    batch
}

enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// Whether two versions of a lead hold the same facts.
fn same_facts(a: &lead::Model, b: &lead::Model) -> bool {
    a.name == b.name
        && a.company == b.company
        && a.email == b.email
        && a.phone == b.phone
        && a.industry == b.industry
        && a.source == b.source
        && a.deal_value == b.deal_value
        && a.expected_close_at == b.expected_close_at
        && a.attributes == b.attributes
        && a.owner_id == b.owner_id
        && a.team_id == b.team_id
        && a.stage_id == b.stage_id
        && a.status == b.status
        && a.closed_at == b.closed_at
        && a.close_reason == b.close_reason
        && a.created_at == b.created_at
}

/// Line numbers and messages, for people reading a report.
pub fn describe(errors: &[ImportError]) -> String {
    let mut by_line: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for e in errors {
        let text = match &e.field {
            Some(f) => format!("{f}: {}", e.message),
            None => e.message.clone(),
        };
        by_line.entry(e.line).or_default().push(text);
    }
    by_line
        .into_iter()
        .map(|(line, problems)| format!("line {line}: {}", problems.join("; ")))
        .collect::<Vec<_>>()
        .join("\n")
}
