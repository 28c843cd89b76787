//! The re-scoring job of one tenant: retrain the close-probability
//! predictor from closed leads, then stream the open leads (and the won
//! leads carrying on as customers in post-sale stages) in id order,
//! score each at the run's `now`, and write back in bulk only the leads
//! whose score, tier, flags or follow-up moved.
//!
//! Safe to run from several processes: a lease makes one run per tenant at
//! a time; a run that dies leaves its checkpoint (the last lead id done) on
//! its job run row, and the next claimant resumes from there under the same
//! run id, so score events are not written twice. A write only lands when
//! the lead's version is still the one read: a mutation that re-scored the
//! lead meanwhile wins.
//!
//! It lives in the service layer, not in `jobs`, because services start
//! runs too (activating a model, an import); the nightly scheduler in
//! `jobs` is one more caller.

use entity::{LeadId, PipelineId, ScoringModelId, StageId, TeamId, UserId};
use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use chrono::{DateTime, Duration, Utc};
use entity::{
    enums::{JobStatus, LeadStatus},
    job_run, lead, predictor_model, stage,
};
use scoring::{FeatureSpace, LeadFlag, Predictor, TrainOptions};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    service::{
        assignment,
        configuration::tenant_config::{self, TenantConfig},
        events::{self, Event, Outgoing},
        leads::follow_up,
        leads::lead_writer::{self, Rescored},
        leads::pool,
        leads::rescoring::{
            self, FactColumns, FactSource, ModelInUse, Pinners, TenantCatalog, from_secs, secs,
        },
        lease::{Clock, Lease, LeaseLost},
    },
    tenancy::{TenantScope, Walled},
};

/// The job's kind in `job_runs` and `job_leases`.
pub const KIND: &str = "rescore";

/// Why a run started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Manual,
    ModelActivation,
    Import,
}

impl Trigger {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "SCHEDULE",
            Self::Manual => "MANUAL",
            Self::ModelActivation => "MODEL_ACTIVATION",
            Self::Import => "IMPORT",
        }
    }
}

/// How a run goes.
#[derive(Clone, Debug)]
pub struct Options {
    /// Leads read, scored and written per batch; memory is bounded by it.
    /// `None` for the database's own: PostgreSQL writes a lead in two
    /// thirds of the time at 5,000 per transaction as at 2,000, while
    /// SQLite takes the same time per lead at either and larger batches
    /// only cost memory (peak RSS 291 MB at 2,000 and 324 MB at 5,000 on
    /// a million leads).
    pub batch_size: Option<u64>,
    /// How long a lease lives without a heartbeat.
    pub lease_ttl: Duration,
    /// Who runs: host and process. Each run claims the lease under this
    /// and an id of its own.
    pub holder: String,
    /// The time the lease is claimed and renewed at; `None` for the run's
    /// `now` plus the time elapsed since it started. Tests inject one.
    pub clock: Option<Clock>,
    /// Closed leads needed of each outcome before a predictor is trained.
    pub min_closed_per_outcome: usize,
    /// For tests: stop as if the process died after this many batches.
    pub crash_after_batches: Option<usize>,
    /// For tests: after the first batch is read and scored, wait on the
    /// first barrier, then on the second before writing, so a test can
    /// change a lead in between.
    pub pause_before_first_write:
        Option<std::sync::Arc<(tokio::sync::Barrier, tokio::sync::Barrier)>>,
    /// For tests: after each batch is written and the lease renewed, wait
    /// on the first barrier, then on the second, so a test can move the
    /// clock or start another runner in between.
    pub pause_after_each_batch:
        Option<std::sync::Arc<(tokio::sync::Barrier, tokio::sync::Barrier)>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            batch_size: None,
            lease_ttl: Duration::seconds(120),
            holder: format!(
                "{}:{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "leadrank".into()),
                std::process::id()
            ),
            min_closed_per_outcome: 10,
            crash_after_batches: None,
            pause_before_first_write: None,
            clock: None,
            pause_after_each_batch: None,
        }
    }
}

impl Options {
    /// Leads per batch on `backend`.
    pub fn batch_size(&self, backend: DbBackend) -> u64 {
        self.batch_size.unwrap_or(match backend {
            DbBackend::Postgres => 5000,
            _ => 2000,
        })
    }
}

/// What a run amounted to.
#[derive(Debug)]
pub enum Outcome {
    /// The run finished (or failed) and its row says how.
    Finished(Box<job_run::Model>),
    /// Another process holds the tenant's lease; nothing was done.
    Busy,
}

/// The columns the job reads: everything scoring needs and what it
/// compares against, but not the stored breakdown, which is the bulk of a
/// row and is rewritten when anything changed.
#[derive(FromQueryResult)]
struct Row {
    #[sea_orm(nested)]
    facts: FactColumns,
    version: i32,
    /// OPEN, or WON for a customer in a post-sale stage.
    status: LeadStatus,
    name: String,
    company: Option<String>,
    owner_id: Option<UserId>,
    team_id: Option<TeamId>,
    score: f64,
    tier: String,
    tier_rank: i32,
    flags: i32,
    bucket: i16,
    next_follow_up_at: Option<DateTime<Utc>>,
    scoring_model_id: Option<ScoringModelId>,
    scored_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
}

impl Row {
    /// Whether the lead has a tier pin still in force at `now`.
    fn pinned_at(&self, now: DateTime<Utc>) -> bool {
        self.facts.pinned_tier.is_some() && follow_up::pin_in_force(self.facts.pin_expires_at, now)
    }

    /// Whether a pin lapsed since the lead was last scored: its stored tier
    /// and explanation still show the pin.
    fn pin_lapsed_since_scored(&self, now: DateTime<Utc>) -> bool {
        let expires_at = self.facts.pin_expires_at;
        self.facts.pinned_tier.is_some()
            && !follow_up::pin_in_force(expires_at, now)
            && expires_at.is_some_and(|end| self.scored_at.is_none_or(|at| at < end))
    }
}

/// Counters kept on the job run row.
#[derive(Default)]
struct Progress {
    scanned: i64,
    changed: i64,
    tier_moves: BTreeMap<(String, String), i64>,
    newly_cold: i32,
    stale: i32,
    churn_risk: i32,
    read_ms: u128,
    score_ms: u128,
    write_ms: u128,
}

impl Progress {
    fn from_run(run: &job_run::Model) -> Self {
        let tier_moves = run
            .tier_changes
            .as_array()
            .map(|moves| {
                moves
                    .iter()
                    .filter_map(|m| {
                        Some((
                            (m["from"].as_str()?.to_owned(), m["to"].as_str()?.to_owned()),
                            m["count"].as_i64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            scanned: run.leads_scanned,
            changed: run.leads_changed,
            tier_moves,
            newly_cold: run.newly_cold,
            stale: run.stale,
            churn_risk: run.churn_risk,
            ..Self::default()
        }
    }

    /// Counts a batch in once its `written` leads are written.
    fn add(&mut self, batch: &Self, written: u64) {
        self.scanned += batch.scanned;
        self.changed += i64::try_from(written).unwrap_or(i64::MAX);
        for (tiers, count) in &batch.tier_moves {
            *self.tier_moves.entry(tiers.clone()).or_default() += count;
        }
        self.newly_cold += batch.newly_cold;
        self.stale += batch.stale;
        self.churn_risk += batch.churn_risk;
        self.read_ms += batch.read_ms;
        self.score_ms += batch.score_ms;
    }

    fn tier_changes(&self) -> serde_json::Value {
        json!(
            self.tier_moves
                .iter()
                .map(|((from, to), count)| json!({"from": from, "to": to, "count": count}))
                .collect::<Vec<_>>()
        )
    }
}

/// Runs the job for one tenant at `now`.
///
/// # Errors
/// Only when the run could not even be recorded; a failure during the run
/// is recorded on the run row (status FAILED with the error) and returned
/// as [`Outcome::Finished`].
#[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, trigger = trigger.as_str()))]
pub async fn run(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    trigger: Trigger,
    requested_by: Option<UserId>,
    now: DateTime<Utc>,
    options: &Options,
) -> AppResult<Outcome> {
    let clock = options
        .clock
        .clone()
        .unwrap_or_else(|| Clock::starting_at(now));
    let holder = Lease::holder_for_run(&options.holder);
    let walled = Walled::new(db, tenant_id);
    let scope = walled.scope();
    let Some(lease) = Lease::claim(&scope, KIND, &holder, options.lease_ttl, clock).await? else {
        return Ok(Outcome::Busy);
    };
    // A run left RUNNING holds a checkpoint: its process died, its lease
    // expired (we hold it now), so carry on from there.
    let resumable = scope
        .select::<job_run::Entity>()
        .filter(job_run::Column::Kind.eq(KIND))
        .filter(job_run::Column::Status.eq(JobStatus::Running))
        .order_by_desc(job_run::Column::Id)
        .one(scope.conn())
        .await?;
    let queued = match resumable {
        Some(_) => None,
        None => {
            scope
                .select::<job_run::Entity>()
                .filter(job_run::Column::Kind.eq(KIND))
                .filter(job_run::Column::Status.eq(JobStatus::Queued))
                .order_by_asc(job_run::Column::Id)
                .one(scope.conn())
                .await?
        }
    };
    let run = match (resumable, queued) {
        (Some(run), _) => run,
        (None, Some(queued)) => {
            let mut row: job_run::ActiveModel = queued.into();
            row.status = Set(JobStatus::Running);
            row.started_at = Set(Some(now));
            row.heartbeat_at = Set(Some(now));
            scope.update(row).await?
        }
        (None, None) => {
            let mut row = queued_run(trigger, None, requested_by, now);
            row.status = Set(JobStatus::Running);
            row.started_at = Set(Some(now));
            row.heartbeat_at = Set(Some(now));
            scope.insert(row).await?
        }
    };
    let started = Instant::now();
    let result = rescore(db, &scope, &lease, &run, now, options).await;
    if let Err(AppError::Internal(err)) = &result
        && err.to_string() == SIMULATED_CRASH
    {
        // As if the process died: leave the run RUNNING and the lease to expire.
        let left = scope.get::<job_run::Entity>(run.id).await?;
        return Ok(Outcome::Finished(Box::new(left)));
    }
    if let Err(err) = &result
        && LeaseLost::is(err)
    {
        return lost(&scope, &run, err).await;
    }
    let finished =
        now + Duration::milliseconds(i64::try_from(started.elapsed().as_millis()).unwrap_or(0));
    let mut row: job_run::ActiveModel = scope.get::<job_run::Entity>(run.id).await?.into();
    row.finished_at = Set(Some(finished));
    match &result {
        Ok(()) => row.status = Set(JobStatus::Succeeded),
        Err(err) => {
            tracing::error!(tenant_id = %tenant_id, run_id = %run.id, error = %err, "re-scoring failed");
            row.status = Set(JobStatus::Failed);
            row.error = Set(Some(err.to_string()));
        }
    }
    let txn = crate::service::begin_write(db).await?;
    let in_txn = TenantScope::enter(&txn, tenant_id).await?;
    if let Err(err) = lease.fence(&in_txn, run.id).await {
        txn.rollback().await?;
        if LeaseLost::is(&err) {
            return lost(&scope, &run, &err).await;
        }
        return Err(err);
    }
    let saved = in_txn.update(row).await?;
    crate::metrics::job_run(
        &saved.trigger,
        if result.is_ok() {
            "SUCCEEDED"
        } else {
            "FAILED"
        },
        started.elapsed(),
        u64::try_from(saved.leads_changed).unwrap_or(0),
    );
    let out = Outgoing {
        events: vec![Event::job_finished(&saved, finished)],
        ..Outgoing::default()
    };
    events::emit(&in_txn, &out, finished).await?;
    txn.commit().await?;
    lease.release(&scope).await?;
    Ok(Outcome::Finished(Box::new(saved)))
}

/// A run whose lease was taken: another run carries on under the same run
/// id, so this one writes nothing, not even its own end, and reports the
/// run as it stands.
async fn lost(
    scope: &TenantScope<'_, Walled>,
    run: &job_run::Model,
    err: &AppError,
) -> AppResult<Outcome> {
    tracing::warn!(tenant_id = %scope.tenant_id(), run_id = %run.id, error = %err, "re-scoring stopped: its lease was taken");
    let current = scope.get::<job_run::Entity>(run.id).await?;
    Ok(Outcome::Finished(Box::new(current)))
}

/// The tenant's newest re-scoring run.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %tenant_id))]
pub async fn latest_run(
    db: &DatabaseConnection,
    tenant_id: Uuid,
) -> AppResult<Option<job_run::Model>> {
    let walled = Walled::new(db, tenant_id);
    Ok(walled
        .scope()
        .select::<job_run::Entity>()
        .filter(job_run::Column::Kind.eq(KIND))
        .order_by_desc(job_run::Column::Id)
        .one(&walled)
        .await?)
}

/// Records a run to be done, for a caller who answers at once and lets
/// [`run`] pick it up.
///
/// # Errors
/// Database errors.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, trigger = trigger.as_str(), team_id = ?team_id))]
pub async fn enqueue(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    trigger: Trigger,
    team_id: Option<TeamId>,
    requested_by: Option<UserId>,
    now: DateTime<Utc>,
) -> AppResult<job_run::Model> {
    Walled::new(db, tenant_id)
        .scope()
        .insert(queued_run(trigger, team_id, requested_by, now))
        .await
}

/// A QUEUED run row with zeroed counters, for [`run`] to pick up.
pub fn queued_run(
    trigger: Trigger,
    team_id: Option<TeamId>,
    requested_by: Option<UserId>,
    now: DateTime<Utc>,
) -> job_run::ActiveModel {
    job_run::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set(KIND.to_owned()),
        trigger: Set(trigger.as_str().to_owned()),
        status: Set(JobStatus::Queued),
        team_id: Set(team_id),
        requested_by: Set(requested_by),
        queued_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        heartbeat_at: Set(None),
        leads_scanned: Set(0),
        leads_changed: Set(0),
        tier_changes: Set(json!([])),
        newly_cold: Set(0),
        stale: Set(0),
        churn_risk: Set(0),
        checkpoint: Set(None),
        details: Set(None),
        error: Set(None),
        ..Default::default()
    }
}

/// Runs a queued run in the background, waiting for the tenant's lease
/// while another run holds it.
pub fn spawn_queued(db: DatabaseConnection, tenant_id: Uuid) {
    tokio::spawn(async move {
        let options = Options::default();
        for _ in 0..120 {
            match run(&db, tenant_id, Trigger::Manual, None, Utc::now(), &options).await {
                Ok(Outcome::Busy) => tokio::time::sleep(std::time::Duration::from_secs(5)).await,
                Ok(Outcome::Finished(_)) => return,
                Err(err) => {
                    tracing::error!(tenant_id = %tenant_id, error = %err, "a queued re-scoring could not start");
                    return;
                }
            }
        }
        tracing::warn!(tenant_id = %tenant_id, "a queued re-scoring waited 10 minutes for the tenant's lease; the next run will pick it up");
    });
}

const SIMULATED_CRASH: &str = "simulated crash (test option crash_after_batches)";

async fn rescore(
    db: &DatabaseConnection,
    scope: &TenantScope<'_, Walled>,
    lease: &Lease,
    run: &job_run::Model,
    now: DateTime<Utc>,
    options: &Options,
) -> AppResult<()> {
    lease.heartbeat(scope, Some(run.id)).await?;
    // Read afresh, not from this process's copy: the run must score with
    // what is configured as it starts.
    let config = TenantConfig::load(scope).await?;
    let catalog = &config.catalog;
    let stages = config.stages_by_pipeline();
    // Re-scoring after a model activation keeps the predictor in use, so
    // the leads get exactly the scores the model's preview announced.
    let activation = run.trigger == Trigger::ModelActivation.as_str();
    let trained = if activation {
        None
    } else {
        retrain(scope, lease, run.id, catalog, &stages, now, options).await?
    };
    let reason = if activation {
        "scoring model activated"
    } else {
        "nightly re-scoring"
    };
    // Won leads in these stages are customers: scored like open leads so
    // that churn and staleness reach their owners.
    let customer_stages: Vec<StageId> = stages
        .values()
        .flatten()
        .filter(|s| s.post_sale)
        .map(|s| s.id)
        .collect();
    let mut scorer = Scorer {
        customer_stages,
        scope,
        team: run.team_id,
        batch_size: options.batch_size(db.get_database_backend()),
        now,
        config: &config,
        stages: &stages,
        trained: trained.as_ref(),
        models: HashMap::new(),
        pinners: Pinners::default(),
    };
    let mut progress = Progress::from_run(run);
    let mut last_log = Instant::now();
    let mut batches = 0usize;
    let mut next = scorer.next(run.checkpoint).await?;
    while let Some(batch) = next {
        if batches == 0
            && let Some(pause) = &options.pause_before_first_write
        {
            pause.0.wait().await;
            pause.1.wait().await;
        }
        // The next batch is read and scored while this one is written, so
        // the database writes while this process scores instead of each
        // waiting for the other.
        let write = async {
            let t = Instant::now();
            write_batch(db, lease, run.id, &batch, &mut progress, reason, now).await?;
            Ok::<_, AppError>(t.elapsed().as_millis())
        };
        let (write_ms, following) = tokio::try_join!(write, scorer.next(Some(batch.last)))?;
        progress.write_ms += write_ms;
        lease.heartbeat(scope, Some(run.id)).await?;
        next = following;
        if let Some(pause) = &options.pause_after_each_batch {
            pause.0.wait().await;
            pause.1.wait().await;
        }

        batches += 1;
        if last_log.elapsed().as_secs() >= 5 {
            tracing::info!(
                tenant_id = %scope.tenant_id(), run_id = %run.id,
                scanned = progress.scanned, changed = progress.changed,
                "re-scoring in progress"
            );
            last_log = Instant::now();
        }
        if options.crash_after_batches == Some(batches) {
            return Err(AppError::Internal(anyhow::anyhow!(SIMULATED_CRASH)));
        }
    }
    // The pool is handed out after scoring, so tier filters see tonight's
    // tiers. Its writes are not fenced (they are the assignment service's);
    // a heartbeat first keeps a run that lost its lease from starting them.
    lease.heartbeat(scope, Some(run.id)).await?;
    let assigned = assignment::assign_pool(db, scope.tenant_id(), run.team_id, now).await?;
    // Neglected leads go back after the pool is handed out, so that they
    // wait a day for a rep to claim them rather than go straight back to
    // a rule's next rep.
    let returned = pool::return_neglected(db, scope.tenant_id(), run.team_id, now).await?;
    let mut row: job_run::ActiveModel = scope.get::<job_run::Entity>(run.id).await?.into();
    row.details = Set(Some(json!({
        "leadsAssigned": assigned,
        "leadsReturnedToPool": returned,
        "readMs": progress.read_ms,
        "scoreMs": progress.score_ms,
        "writeMs": progress.write_ms,
        "predictorTrained": trained.is_some(),
    })));
    let txn = crate::service::begin_write(db).await?;
    let in_txn = TenantScope::enter(&txn, scope.tenant_id()).await?;
    lease.fence(&in_txn, run.id).await?;
    in_txn.update(row).await?;
    txn.commit().await?;
    tracing::info!(
        tenant_id = %scope.tenant_id(), run_id = %run.id,
        scanned = progress.scanned, changed = progress.changed,
        newly_cold = progress.newly_cold,
        read_ms = progress.read_ms as u64, score_ms = progress.score_ms as u64, write_ms = progress.write_ms as u64,
        "re-scoring finished"
    );
    Ok(())
}

/// Reads the open leads in id order a batch at a time and scores each at
/// the run's `now`.
struct Scorer<'a> {
    /// The tenant's post-sale stages, whose won leads are scored too.
    customer_stages: Vec<StageId>,
    scope: &'a TenantScope<'a, Walled>,
    /// Only this team's leads, for a team's run.
    team: Option<TeamId>,
    batch_size: u64,
    now: DateTime<Utc>,
    config: &'a TenantConfig,
    stages: &'a HashMap<PipelineId, Vec<stage::Model>>,
    /// Tonight's predictors, when the run retrained them.
    trained: Option<&'a Trained>,
    /// The model in use for each team's leads, loaded on first need.
    models: HashMap<Option<TeamId>, std::sync::Arc<ModelInUse>>,
    pinners: Pinners,
}

/// A batch read and scored, waiting to be written.
struct Scored {
    changes: Vec<Rescored>,
    /// The last lead read: the checkpoint once the batch is written.
    last: LeadId,
    /// What the batch adds to the run's counters once it is written; kept
    /// apart until then, so a run that dies before the write and resumes
    /// does not count the batch twice.
    tally: Progress,
}

impl Scorer<'_> {
    /// The batch after `after`, scored; `None` past the last lead.
    async fn next(&mut self, after: Option<LeadId>) -> AppResult<Option<Scored>> {
        let now = self.now;
        let mut tally = Progress::default();
        let t = Instant::now();
        let scored = if self.customer_stages.is_empty() {
            Condition::all().add(lead::Column::Status.eq(LeadStatus::Open))
        } else {
            Condition::any()
                .add(lead::Column::Status.eq(LeadStatus::Open))
                .add(
                    Condition::all()
                        .add(lead::Column::Status.eq(LeadStatus::Won))
                        .add(lead::Column::StageId.is_in(self.customer_stages.clone())),
                )
        };
        let mut query = lead_columns(self.scope.select::<lead::Entity>())
            .filter(scored)
            .order_by_asc(lead::Column::Id)
            .limit(self.batch_size);
        if let Some(after) = after {
            query = query.filter(lead::Column::Id.gt(after));
        }
        if let Some(team) = self.team {
            query = query.filter(lead::Column::TeamId.eq(team));
        }
        let rows: Vec<Row> = query.into_model().all(self.scope.conn()).await?;
        tally.read_ms = t.elapsed().as_millis();
        let Some(last) = rows.last().map(|r| r.facts.id) else {
            return Ok(None);
        };

        let t = Instant::now();
        // Pins are few: their pinners' names, for the explanation, come in
        // one small query per batch that has new ones, not a join on every row.
        self.pinners
            .load(
                self.scope,
                rows.iter()
                    .filter(|r| r.pinned_at(now))
                    .filter_map(|r| r.facts.pinned_by),
            )
            .await?;
        let mut changes = Vec::new();
        for row in &rows {
            let team = row.team_id;
            if let std::collections::hash_map::Entry::Vacant(slot) = self.models.entry(team) {
                slot.insert(self.config.model(team)?);
            }
            let Some(model) = self.models.get(&team) else {
                continue;
            };
            let pipeline = self
                .stages
                .get(&row.facts.pipeline_id)
                .map_or(&[][..], Vec::as_slice);
            // A lapsed pin is passed on too and ignored by the engine from its
            // expiry; its columns stay (the job writes scores, not the lead's
            // facts) until someone pins or unpins again, and `Lead.pin` hides it.
            let mut facts = rescoring::facts_of(
                &row.facts.source(self.pinners.name(row.facts.pinned_by)),
                pipeline,
            );
            let probability = self
                .trained
                .map(|t| t.for_team(team))
                .or(model.predictor.as_deref())
                .map(|p| p.predict(&facts))
                .or(row.facts.close_probability);
            facts.predicted_close_probability = probability;
            let mut card = model.compiled.score(&facts, secs(now));
            // Risen into a higher tier tonight: new to it from now, as the
            // lead writer judges a mutation's rise.
            let mut tier_rose_at = row.facts.tier_rose_at;
            if i64::from(card.tier_rank) < i64::from(row.tier_rank) {
                tier_rose_at = Some(now);
                facts.tier_rose_at = Some(secs(now));
                card = model.compiled.score(&facts, secs(now));
            }
            let flags = rescoring::flag_bits(&card);
            let was = |flag: LeadFlag| row.flags & i32::from(flag.bit()) != 0;
            if card.has_flag(LeadFlag::Cold) && !was(LeadFlag::Cold) {
                tally.newly_cold += 1;
            }
            tally.stale += i32::from(card.has_flag(LeadFlag::Stale));
            tally.churn_risk += i32::from(card.has_flag(LeadFlag::ChurnRisk));
            // Scores decay a little every night; a move under a hundredth of
            // a point is not worth a write when nothing else moved.
            let moved = (card.total - row.score).abs() >= 0.01
                || row.scoring_model_id != Some(model.row.id)
                || card.tier != row.tier
                || row.pin_lapsed_since_scored(now)
                || flags != row.flags
                || lead_writer::bucket(
                    row.status,
                    flags,
                    Some(from_secs(card.next_follow_up_at)),
                    now,
                ) != row.bucket
                || row.next_follow_up_at.map(secs) != Some(card.next_follow_up_at)
                || probability.map(|p| (p * 1e6).round())
                    != row.facts.close_probability.map(|p| (p * 1e6).round());
            if moved {
                if card.tier != row.tier {
                    *tally
                        .tier_moves
                        .entry((row.tier.clone(), card.tier.clone()))
                        .or_default() += 1;
                }
                changes.push(Rescored {
                    id: row.facts.id,
                    version: row.version,
                    status: row.status,
                    name: row.name.clone(),
                    company: row.company.clone(),
                    owner_id: row.owner_id,
                    team_id: row.team_id,
                    old_flags: row.flags,
                    old_score: row.score,
                    old_tier: row.tier.clone(),
                    card,
                    close_probability: probability,
                    model_id: model.row.id,
                    model_version: model.row.version,
                    tier_rose_at,
                });
            }
        }
        tally.scanned = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        tally.score_ms = t.elapsed().as_millis();
        Ok(Some(Scored {
            changes,
            last,
            tally,
        }))
    }
}

/// Predictors trained by one run: the tenant's, and each team's that had
/// enough closed leads of its own.
struct Trained {
    tenant: Predictor,
    teams: HashMap<TeamId, Predictor>,
}

impl Trained {
    /// The predictor for a lead of `team`: its team's, else the tenant's.
    fn for_team(&self, team: Option<TeamId>) -> &Predictor {
        team.and_then(|t| self.teams.get(&t))
            .unwrap_or(&self.tenant)
    }
}

/// Trains the tenant's close-probability predictor from its closed leads,
/// and one per team with enough closed leads of its own (a team sells
/// differently, and its history says how), and stores them as the new
/// active versions; `None` (keeping what open leads have) while the tenant
/// has too few won or lost leads to learn from.
async fn retrain(
    scope: &TenantScope<'_, Walled>,
    lease: &Lease,
    run: Uuid,
    catalog: &TenantCatalog,
    stages: &HashMap<PipelineId, Vec<stage::Model>>,
    now: DateTime<Utc>,
    options: &Options,
) -> AppResult<Option<Trained>> {
    // Closed leads are read in batches and encoded straight into feature
    // rows, so memory holds numbers, not every closed lead's JSON.
    let space = FeatureSpace::from_catalog(&catalog.catalog);
    let mut features: Vec<f64> = Vec::new();
    let mut labels: Vec<bool> = Vec::new();
    // When each closed: the most recent closes choose and calibrate the
    // model, and recent ones weigh more when the won rate drifts.
    let mut closed_at: Vec<i64> = Vec::new();
    let mut teams: Vec<Option<TeamId>> = Vec::new();
    for (status, won) in [(LeadStatus::Won, true), (LeadStatus::Lost, false)] {
        let mut after: Option<LeadId> = None;
        loop {
            let mut query = lead_columns(scope.select::<lead::Entity>())
                .filter(lead::Column::Status.eq(status))
                .order_by_asc(lead::Column::Id)
                .limit(options.batch_size(scope.conn().get_database_backend()));
            if let Some(after) = after {
                query = query.filter(lead::Column::Id.gt(after));
            }
            let rows: Vec<Row> = query.into_model().all(scope.conn()).await?;
            let Some(last) = rows.last().map(|r| r.facts.id) else {
                break;
            };
            for r in &rows {
                let pipeline = stages
                    .get(&r.facts.pipeline_id)
                    .map_or(&[][..], Vec::as_slice);
                // Neither the close probability nor a pin (a tier) is a
                // feature of the predictor it trains.
                let facts = rescoring::facts_of(
                    &FactSource {
                        close_probability: None,
                        pin: None,
                        ..r.facts.source(None)
                    },
                    pipeline,
                );
                space.encode_into(&facts, &mut features);
                labels.push(won);
                closed_at.push(secs(r.closed_at.unwrap_or(r.facts.stage_entered_at)));
                teams.push(r.team_id);
            }
            after = Some(last);
        }
    }
    if !enough(&labels, options.min_closed_per_outcome) {
        return Ok(None);
    }
    // Training is cubic in the columns: rare category options are pooled
    // and the columns capped, and the fit runs on a blocking thread, away
    // from the runtime that answers requests.
    let kept = space.kept_columns(&features, labels.len(), MAX_FEATURES, MIN_OPTION_ROWS);
    let features = space.project(&features, &kept);
    let space = space.select(&kept);
    let trained_at = secs(now);
    let min_per_outcome = options.min_closed_per_outcome;
    let (tenant, trained_teams) = tokio::task::spawn_blocking(move || {
        train_scopes(
            space,
            features,
            Outcomes {
                labels,
                closed_at,
                teams,
            },
            trained_at,
            min_per_outcome,
        )
    })
    .await
    .map_err(|err| {
        AppError::Internal(anyhow::anyhow!("training the predictor stopped: {err}"))
    })??;

    // Every scope's new version replaces all active ones, at once: a team
    // without enough history now falls back to the tenant's.
    let txn = crate::service::begin_write(scope.conn().pool()).await?;
    let in_txn = TenantScope::enter(&txn, scope.tenant_id()).await?;
    lease.fence(&in_txn, run).await?;
    in_txn
        .update_many::<predictor_model::Entity>()
        .col_expr(predictor_model::Column::Active, false.into())
        .filter(predictor_model::Column::Active.eq(true))
        .exec(&txn)
        .await?;
    store_predictor(&in_txn, None, &tenant.0, &tenant.1, now).await?;
    let mut teams = HashMap::new();
    for (team, (predictor, outcomes)) in trained_teams {
        store_predictor(&in_txn, Some(team), &predictor, &outcomes, now).await?;
        teams.insert(team, predictor);
    }
    // Mutations predict with the new version from now on.
    tenant_config::commit_change(txn, scope.tenant_id(), now).await?;
    Ok(Some(Trained {
        tenant: tenant.0,
        teams,
    }))
}

/// Most columns a predictor trains on.
const MAX_FEATURES: usize = 200;
/// Fewest closed leads a category option needs to get a column of its own.
const MIN_OPTION_ROWS: usize = 5;

/// Whether `labels` hold enough of each outcome to learn from.
fn enough(labels: &[bool], min_per_outcome: usize) -> bool {
    let won = labels.iter().filter(|w| **w).count();
    won >= min_per_outcome && labels.len() - won >= min_per_outcome
}

/// A predictor and the outcomes it learnt from.
type TrainedScope = (Predictor, Vec<bool>);

/// What each closed lead's feature row learns from: won or lost, when it
/// closed, and its team.
struct Outcomes {
    labels: Vec<bool>,
    closed_at: Vec<i64>,
    teams: Vec<Option<TeamId>>,
}

/// Trains the tenant's predictor on every row and each team's with enough
/// history on its own rows.
fn train_scopes(
    space: FeatureSpace,
    features: Vec<f64>,
    outcomes: Outcomes,
    trained_at: i64,
    min_per_outcome: usize,
) -> AppResult<(TrainedScope, HashMap<TeamId, TrainedScope>)> {
    let width = space.len();
    let train = |features: &[f64], labels: &[bool], closed_at: &[i64]| {
        Predictor::train_rows_at(
            space.clone(),
            features,
            labels,
            closed_at,
            TrainOptions::default(),
            trained_at,
        )
        .map_err(|err| AppError::Internal(anyhow::anyhow!("training the predictor failed: {err}")))
    };
    let Outcomes {
        labels,
        closed_at,
        teams,
    } = outcomes;
    let tenant = train(&features, &labels, &closed_at)?;
    /// One team's share of the rows.
    #[derive(Default)]
    struct TeamRows {
        features: Vec<f64>,
        labels: Vec<bool>,
        closed_at: Vec<i64>,
    }
    let mut by_team: HashMap<TeamId, TeamRows> = HashMap::new();
    for (i, team) in teams.iter().enumerate() {
        if let Some(team) = team {
            let rows = by_team.entry(*team).or_default();
            rows.features
                .extend_from_slice(&features[i * width..(i + 1) * width]);
            rows.labels.push(labels[i]);
            rows.closed_at.push(closed_at[i]);
        }
    }
    drop(features);
    let mut trained_teams = HashMap::new();
    for (team, rows) in by_team {
        if enough(&rows.labels, min_per_outcome) {
            let predictor = train(&rows.features, &rows.labels, &rows.closed_at)?;
            trained_teams.insert(team, (predictor, rows.labels));
        }
    }
    Ok(((tenant, labels), trained_teams))
}

/// Stores `predictor` as the active version of its scope (the tenant's,
/// or `team`'s), trained on `labels`.
async fn store_predictor<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    team: Option<TeamId>,
    predictor: &Predictor,
    labels: &[bool],
    now: DateTime<Utc>,
) -> AppResult<()> {
    let version = scope
        .select::<predictor_model::Entity>()
        .filter(match team {
            Some(team) => predictor_model::Column::TeamId.eq(team),
            None => predictor_model::Column::TeamId.is_null(),
        })
        .order_by_desc(predictor_model::Column::Version)
        .one(scope.conn())
        .await?
        .map_or(1, |p| p.version + 1);
    let won = labels.iter().filter(|w| **w).count();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    scope
        .insert(predictor_model::ActiveModel {
            id: Set(Uuid::now_v7()),
            team_id: Set(team),
            version: Set(version),
            active: Set(true),
            trained_at: Set(now),
            training_rows: Set(count(labels.len())),
            won: Set(count(won)),
            lost: Set(count(labels.len() - won)),
            metrics: Set(json!({})),
            model: Set(serde_json::to_value(predictor).map_err(|e| AppError::Internal(e.into()))?),
            ..Default::default()
        })
        .await?;
    Ok(())
}

fn lead_columns(query: sea_orm::Select<lead::Entity>) -> sea_orm::Select<lead::Entity> {
    FactColumns::select(query).columns([
        lead::Column::Version,
        lead::Column::Status,
        lead::Column::Name,
        lead::Column::Company,
        lead::Column::OwnerId,
        lead::Column::TeamId,
        lead::Column::Score,
        lead::Column::Tier,
        lead::Column::TierRank,
        lead::Column::Flags,
        lead::Column::Bucket,
        lead::Column::NextFollowUpAt,
        lead::Column::ScoringModelId,
        lead::Column::ScoredAt,
        lead::Column::ClosedAt,
    ])
}

async fn save_progress<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    run: Uuid,
    progress: &Progress,
    checkpoint: Option<LeadId>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    scope
        .update_many::<job_run::Entity>()
        .col_expr(job_run::Column::LeadsScanned, progress.scanned.into())
        .col_expr(job_run::Column::LeadsChanged, progress.changed.into())
        .col_expr(job_run::Column::TierChanges, progress.tier_changes().into())
        .col_expr(job_run::Column::NewlyCold, progress.newly_cold.into())
        .col_expr(job_run::Column::Stale, progress.stale.into())
        .col_expr(job_run::Column::ChurnRisk, progress.churn_risk.into())
        .col_expr(job_run::Column::Checkpoint, checkpoint.into())
        .col_expr(job_run::Column::HeartbeatAt, Some(now).into())
        .filter(job_run::Column::Id.eq(run))
        .exec(scope.conn())
        .await?;
    Ok(())
}

/// Writes a batch's changes through the lead writer (each guarded by the
/// version read, with their score events and what they announce) and
/// counts the batch into `progress` with its checkpoint, all in one
/// transaction: a run resumed after a crash starts exactly after the last
/// batch that landed, so nothing is announced or counted twice. The
/// lease fences the transaction: a run that lost it commits nothing.
async fn write_batch(
    db: &DatabaseConnection,
    lease: &Lease,
    run: Uuid,
    batch: &Scored,
    progress: &mut Progress,
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let txn = crate::service::begin_write(db).await?;
    let in_txn = TenantScope::enter(&txn, lease.tenant_id).await?;
    // First, so that a run that lost its lease writes nothing of the batch.
    lease.fence(&in_txn, run).await?;
    let written = lead_writer::write_rescored(&in_txn, run, &batch.changes, reason, now).await?;
    progress.add(&batch.tally, written.len() as u64);
    save_progress(&in_txn, run, progress, Some(batch.last), now).await?;
    txn.commit().await?;
    Ok(())
}
