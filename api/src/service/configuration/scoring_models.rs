//! Versions of a scoring model: drafts, the what-if preview against the
//! model in use, activation and rollback, and judging a model on closed
//! leads.
//!
//! A model's *scope* is the tenant default (`team_id` none) or one team.
//! The tenant default scores every lead whose team has no active model of
//! its own; a team model scores that team's leads.

use entity::{LeadId, PipelineId, ScoringModelId, TeamId};
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{
    enums::{LeadStatus, ModelStatus, Role, StageKind},
    job_run, lead, lead_event, scoring_model, stage, team,
};
use scoring::{CompiledModel, ConfigError, ModelConfig, evaluate};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, FromQueryResult,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::service::{
    accounts::audit,
    begin_write, configuration,
    configuration::tenant_config,
    leads::rescore_run::{self as rescore, Trigger},
    leads::rescoring::{self, FactColumns, ModelInUse, TenantCatalog, secs},
    validate,
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::{TenantScope, Walled},
};

/// Leads read per query by the preview and the evaluation.
const PAGE: u64 = 5000;
/// Leads listed as the biggest moves of a preview.
const BIGGEST_MOVES: usize = 20;

/// The fields of `ScoringModelInput`; the parts are JSON in the scoring
/// crate's shape.
pub struct DraftSpec {
    pub team_id: Option<TeamId>,
    pub name: String,
    pub template: Option<String>,
    pub copy_active: bool,
    pub dimensions: Option<Vec<Value>>,
    pub tiers: Option<Vec<Value>>,
    pub overrides: Option<Vec<Value>>,
}

/// Refuses unless the caller may draft and preview models of `team`'s
/// scope: OWNER and ADMIN any, a MANAGER only a team of theirs.
async fn require_may_draft<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    team: Option<TeamId>,
    action: &'static str,
) -> AppResult<()> {
    match (principal.role, team) {
        (Role::Owner | Role::Admin, _) => Ok(()),
        (Role::Manager, Some(team))
            if tenant_config::teams_of(scope, principal.user_id)
                .await?
                .contains(&team) =>
        {
            Ok(())
        }
        _ => Err(AppError::Forbidden { action }),
    }
}

/// A configuration problem as BAD_USER_INPUT: the first problem's path
/// under `input.`, or under `base` when the faulty part was not given but
/// came from a template or the active model.
fn config_error(errors: &[ConfigError], given: &[&str], base: &str) -> AppError {
    let Some(first) = errors.first() else {
        return AppError::invalid("", "the model is invalid");
    };
    let part = first
        .path
        .split(['.', '['])
        .next()
        .unwrap_or_default()
        .to_owned();
    let field = if given.contains(&part.as_str()) || base.is_empty() {
        if first.path.is_empty() {
            String::new()
        } else {
            first.path.clone()
        }
    } else {
        base.to_owned()
    };
    let mut message = if field == base {
        first.to_string()
    } else {
        first.message.clone()
    };
    if errors.len() > 1 {
        let rest: Vec<String> = errors.iter().skip(1).map(ToString::to_string).collect();
        message = format!("{message} (also: {})", rest.join("; "));
    }
    AppError::invalid(field, message)
}

/// The configuration of a stored version, parsed and compiled against the
/// tenant's catalog; BAD_USER_INPUT at `field` when it no longer fits.
fn compile_stored(
    model: &scoring_model::Model,
    catalog: &TenantCatalog,
    field: &str,
) -> AppResult<CompiledModel> {
    ModelConfig::parse(&model.config, &catalog.catalog)
        .and_then(|c| c.compile(&catalog.catalog))
        .map_err(|errors| {
            AppError::invalid(
                field,
                format!(
                    "version {} no longer fits the tenant's fields and signals: {}",
                    model.version,
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )
        })
}

/// What the audit log keeps of a version.
fn audit_json(model: &scoring_model::Model) -> Value {
    json!({
        "id": model.id,
        "teamId": model.team_id,
        "name": model.name,
        "version": model.version,
        "status": model.status,
        "config": model.config,
    })
}

/// Creates a draft from a template, from the active model or from
/// scratch; parts given explicitly replace the base's.
///
/// # Errors
/// FORBIDDEN for a REP, or a MANAGER outside the team; NOT_FOUND for an
/// unknown team; BAD_USER_INPUT naming the field, with nothing saved.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, team_id = ?spec.team_id))]
pub async fn create_draft(
    db: &DatabaseConnection,
    principal: &Principal,
    spec: DraftSpec,
    now: DateTime<Utc>,
) -> AppResult<scoring_model::Model> {
    let team = spec.team_id;
    let name = validate::required_text("name", &spec.name, 200)?;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    if let Some(team) = team {
        scope.get::<team::Entity>(team).await?;
    }
    require_may_draft(&scope, principal, team, "create scoring model drafts").await?;
    let catalog = TenantCatalog::load(&scope).await?;

    let (base, base_field) = match (spec.copy_active, spec.template.as_deref()) {
        (true, Some(_)) => {
            return Err(AppError::invalid(
                "template",
                "give a template or copyActive, not both",
            ));
        }
        (true, None) => (
            Some(
                configuration::active_scoring_model(&scope, team)
                    .await?
                    .config,
            ),
            "copy_active",
        ),
        (false, Some(name)) => {
            let template = scoring::templates::by_name(name).ok_or_else(|| {
                AppError::invalid(
                    "template",
                    format!(
                        "unknown template \"{name}\"; expected one of {}",
                        scoring::templates::TEMPLATE_NAMES.join(", ")
                    ),
                )
            })?;
            (Some(template.to_json()), "template")
        }
        (false, None) => (None, ""),
    };
    if base.is_none() && (spec.dimensions.is_none() || spec.tiers.is_none()) {
        let field = if spec.dimensions.is_none() {
            "dimensions"
        } else {
            "tiers"
        };
        return Err(AppError::invalid(
            field,
            "a model from scratch needs its dimensions and tiers; or start from a template or copyActive",
        ));
    }
    let mut config = match base {
        Some(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let mut given = Vec::new();
    for (part, value) in [
        ("dimensions", spec.dimensions),
        ("tiers", spec.tiers),
        ("overrides", spec.overrides),
    ] {
        if let Some(value) = value {
            config.insert(part.to_owned(), Value::Array(value));
            given.push(part);
        }
    }
    let config = Value::Object(config);
    let parsed = ModelConfig::parse(&config, &catalog.catalog)
        .map_err(|errors| config_error(&errors, &given, base_field))?;
    parsed
        .compile(&catalog.catalog)
        .map_err(|errors| config_error(&errors, &given, base_field))?;

    let version = latest_version(&scope, team).await? + 1;
    let saved = scope
        .insert(scoring_model::ActiveModel {
            id: Set(ScoringModelId::new()),
            team_id: Set(team),
            version: Set(version),
            status: Set(ModelStatus::Draft),
            name: Set(name),
            config: Set(parsed.to_json()),
            created_by: Set(Some(principal.user_id)),
            created_at: Set(now),
            activated_at: Set(None),
            retired_at: Set(None),
            ..Default::default()
        })
        .await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "scoring_model.draft_created",
            entity: "scoring_model",
            entity_id: Some(saved.id.into()),
            before: None,
            after: Some(audit_json(&saved)),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

async fn latest_version<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    team: Option<TeamId>,
) -> AppResult<i32> {
    Ok(in_scope(scope.select::<scoring_model::Entity>(), team)
        .order_by_desc(scoring_model::Column::Version)
        .one(scope.conn())
        .await?
        .map_or(0, |m| m.version))
}

fn in_scope(
    query: sea_orm::Select<scoring_model::Entity>,
    team: Option<TeamId>,
) -> sea_orm::Select<scoring_model::Entity> {
    match team {
        Some(team) => query.filter(scoring_model::Column::TeamId.eq(team)),
        None => query.filter(scoring_model::Column::TeamId.is_null()),
    }
}

/// Which leads a model of `team`'s scope scores: the team's, or for the
/// tenant default every lead outside the teams that have their own model.
async fn leads_of_scope<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    team: Option<TeamId>,
) -> AppResult<Condition> {
    if let Some(team) = team {
        return Ok(Condition::all().add(lead::Column::TeamId.eq(team)));
    }
    let own: Vec<Option<Uuid>> = scope
        .select::<scoring_model::Entity>()
        .select_only()
        .column(scoring_model::Column::TeamId)
        .filter(scoring_model::Column::Status.eq(ModelStatus::Active))
        .filter(scoring_model::Column::TeamId.is_not_null())
        .into_tuple()
        .all(scope.conn())
        .await?;
    let own: Vec<Uuid> = own.into_iter().flatten().collect();
    Ok(if own.is_empty() {
        Condition::all()
    } else {
        Condition::any()
            .add(lead::Column::TeamId.is_null())
            .add(lead::Column::TeamId.is_not_in(own))
    })
}

/// The columns scoring reads, and the stored result to compare with.
#[derive(FromQueryResult)]
struct Row {
    #[sea_orm(nested)]
    facts: FactColumns,
    score: f64,
    tier: String,
    status: LeadStatus,
    closed_at: Option<DateTime<Utc>>,
}

fn row_columns(query: sea_orm::Select<lead::Entity>) -> sea_orm::Select<lead::Entity> {
    FactColumns::select(query).columns([
        lead::Column::Score,
        lead::Column::Tier,
        lead::Column::Status,
        lead::Column::ClosedAt,
    ])
}

/// Works out `each` for every lead matching `filter` on all cores and
/// hands the results to `keep` in id order, a page at a time, so memory
/// holds one page. Reading a lead's facts (parsing its JSON) and scoring it
/// are the work; the database reads each lead once.
async fn for_each_lead<C: ConnectionTrait, T: Send>(
    scope: &TenantScope<'_, C>,
    filter: Condition,
    each: impl Fn(&Row) -> T + Sync,
    mut keep: impl FnMut(T),
) -> AppResult<()> {
    use rayon::prelude::*;
    let mut after: Option<LeadId> = None;
    loop {
        let mut query = row_columns(scope.select::<lead::Entity>())
            .filter(filter.clone())
            .order_by_asc(lead::Column::Id)
            .limit(PAGE);
        if let Some(after) = after {
            query = query.filter(lead::Column::Id.gt(after));
        }
        let rows: Vec<Row> = query.into_model().all(scope.conn()).await?;
        let full = rows.len() as u64 == PAGE;
        after = rows.last().map(|r| r.facts.id);
        let done: Vec<T> = rows.par_iter().map(&each).collect();
        done.into_iter().for_each(&mut keep);
        if !full {
            return Ok(());
        }
    }
}

/// The facts of an open lead as the re-scoring job sees them: the
/// predictor in use re-predicts the close probability.
fn open_facts(row: &Row, stages: &[stage::Model], model: &ModelInUse) -> scoring::LeadFacts {
    let mut facts = rescoring::facts_of(
        // A pinned lead keeps its pin under any version, so the preview
        // holds it at its tier too; only tiers are compared here, so the
        // pinner's name is not needed.
        &row.facts.source(None),
        stages,
    );
    facts.predicted_close_probability = model
        .predictor
        .as_ref()
        .map(|p| p.predict(&facts))
        .or(row.facts.close_probability);
    facts
}

/// Closed leads as they stood just before closing: in the stage they left
/// for the won or lost one, scored at the close. Judging them in the won
/// stage would let the stage dimension give the answer away.
struct ClosedLeads {
    /// Stage each closed lead left when it closed, by lead.
    left: HashMap<LeadId, String>,
}

impl ClosedLeads {
    async fn load<C: ConnectionTrait>(
        scope: &TenantScope<'_, C>,
        stages: &HashMap<PipelineId, Vec<stage::Model>>,
    ) -> AppResult<Self> {
        let closing: Vec<String> = stages
            .values()
            .flatten()
            .filter(|s| s.kind != StageKind::Open)
            .map(|s| s.key.clone())
            .collect();
        let events: Vec<(LeadId, Option<String>)> = scope
            .select::<lead_event::Entity>()
            .select_only()
            .column(lead_event::Column::LeadId)
            .column(lead_event::Column::FromValue)
            .filter(lead_event::Column::Kind.eq("STAGE"))
            .filter(lead_event::Column::ToValue.is_in(closing))
            .order_by_asc(lead_event::Column::At)
            .into_tuple()
            .all(scope.conn())
            .await?;
        // The latest close wins, for a lead closed, reopened and closed again.
        let left = events
            .into_iter()
            .filter_map(|(lead, from)| Some((lead, from?)))
            .collect();
        Ok(Self { left })
    }

    /// The facts of a closed lead before its close, and when that was.
    fn facts(&self, row: &Row, stages: &[stage::Model]) -> (scoring::LeadFacts, i64) {
        let closed_at = row.closed_at.unwrap_or(row.facts.stage_entered_at);
        // A lead closed without a recorded move (imported history) is
        // judged in the pipeline's first stage: no stage advantage.
        let before = self
            .left
            .get(&row.facts.id)
            .and_then(|key| stages.iter().find(|s| &s.key == key))
            .or_else(|| stages.iter().find(|s| s.kind == StageKind::Open));
        let mut source = row.facts.source(None);
        if let Some(stage) = before {
            source.stage_id = stage.id;
        }
        // The model is judged on its own tiers, not on a manager's pin.
        source.pin = None;
        source.stage_entered_at = closed_at;
        (rescoring::facts_of(&source, stages), secs(closed_at))
    }
}

/// One closed lead under a model: score, tier and outcome.
struct Judged {
    score: f64,
    tier: String,
    won: bool,
}

/// Scores every closed lead of `filter` under each of `models`.
async fn judge_closed<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    filter: Condition,
    stages: &HashMap<PipelineId, Vec<stage::Model>>,
    models: &[&CompiledModel],
) -> AppResult<Vec<Vec<Judged>>> {
    let closed = ClosedLeads::load(scope, stages).await?;
    let mut judged: Vec<Vec<Judged>> = models.iter().map(|_| Vec::new()).collect();
    let filter = Condition::all()
        .add(filter)
        .add(lead::Column::Status.is_in([LeadStatus::Won, LeadStatus::Lost]));
    for_each_lead(
        scope,
        filter,
        |row| {
            let pipeline = stages
                .get(&row.facts.pipeline_id)
                .map_or(&[][..], Vec::as_slice);
            let (facts, at) = closed.facts(row, pipeline);
            let won = row.status == LeadStatus::Won;
            models
                .iter()
                .map(|model| {
                    let summary = model.score_summary(&facts, at);
                    Judged {
                        score: summary.total,
                        tier: model.tier_key(summary.tier_rank).to_owned(),
                        won,
                    }
                })
                .collect::<Vec<_>>()
        },
        |scored| {
            for (one, out) in scored.into_iter().zip(judged.iter_mut()) {
                out.push(one);
            }
        },
    )
    .await?;
    Ok(judged)
}

fn auc(judged: &[Judged]) -> Option<f64> {
    let scores: Vec<f64> = judged.iter().map(|j| j.score).collect();
    let won: Vec<bool> = judged.iter().map(|j| j.won).collect();
    evaluate::roc_auc(&scores, &won)
}

/// What activating a version would do, from `scoring::evaluate::compare`,
/// with the leads behind the biggest moves.
pub struct Preview {
    pub comparison: scoring::Comparison,
    /// The lead of each of `comparison.biggest_moves`, in order.
    pub moved_leads: Vec<LeadId>,
    /// Closed leads judged, and each model's AUC on them; none without
    /// closed leads.
    pub closed: Option<(usize, Option<f64>, Option<f64>)>,
    /// Time spent on the open leads and on the closed ones, for the log and
    /// the benchmark.
    pub open_ms: u128,
    pub closed_ms: u128,
}

/// Compares a version with the model in use over the open leads it would
/// score: their stored scores and tiers before, the version's score now
/// after, which is what activating it writes. Changes nothing.
///
/// # Errors
/// FORBIDDEN as for drafts; NOT_FOUND; BAD_USER_INPUT when the version no
/// longer fits the tenant's fields and signals.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, model_id = %model_id))]
pub async fn preview<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    model_id: ScoringModelId,
    now: DateTime<Utc>,
) -> AppResult<Preview> {
    let id = model_id;
    let candidate = scope.get::<scoring_model::Entity>(id).await?;
    require_may_draft(
        scope,
        principal,
        candidate.team_id,
        "preview scoring models",
    )
    .await?;
    let config = tenant_config::get(scope).await?;
    let compiled = compile_stored(&candidate, &config.catalog, "model_id")?;
    let current = config.model(candidate.team_id)?;
    let stages = config.stages_by_pipeline();
    let filter = leads_of_scope(scope, candidate.team_id).await?;

    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    let mut before: Vec<(f64, String)> = Vec::new();
    let mut after: Vec<(f64, u8)> = Vec::new();
    let at = secs(now);
    for_each_lead(
        scope,
        Condition::all()
            .add(filter.clone())
            .add(lead::Column::Status.eq(LeadStatus::Open)),
        |row| {
            let pipeline = stages
                .get(&row.facts.pipeline_id)
                .map_or(&[][..], Vec::as_slice);
            let facts = open_facts(row, pipeline, &current);
            let summary = compiled.score_summary(&facts, at);
            (
                row.facts.id,
                (row.score, row.tier.clone()),
                (summary.total, summary.tier_rank),
            )
        },
        |(id, was, now)| {
            ids.push(id);
            before.push(was);
            after.push(now);
        },
    )
    .await?;
    let before: Vec<(f64, &str)> = before.iter().map(|(s, t)| (*s, t.as_str())).collect();
    let after: Vec<(f64, &str)> = after
        .iter()
        .map(|(s, rank)| (*s, compiled.tier_key(*rank)))
        .collect();
    let comparison = evaluate::compare(&before, &after, BIGGEST_MOVES);
    let moved_leads = comparison
        .biggest_moves
        .iter()
        .filter_map(|m| ids.get(m.index).copied())
        .collect();

    let open_ms = started.elapsed().as_millis();
    let started = std::time::Instant::now();
    let judged = judge_closed(scope, filter, &stages, &[&current.compiled, &compiled]).await?;
    let closed = match judged.as_slice() {
        [old, new] if !old.is_empty() => Some((old.len(), auc(old), auc(new))),
        _ => None,
    };
    let closed_ms = started.elapsed().as_millis();
    tracing::info!(
        model_id = %candidate.id, leads = comparison.leads_evaluated,
        open_ms = open_ms as u64, closed_ms = closed_ms as u64,
        "scoring model previewed"
    );
    Ok(Preview {
        comparison,
        moved_leads,
        closed,
        open_ms,
        closed_ms,
    })
}

/// A version made active, and the background run re-scoring its leads
/// when they were too many to re-score in the request.
pub struct Activated {
    pub model: scoring_model::Model,
    pub job_run: Option<job_run::Model>,
}

/// Makes a version the active one of its scope; the version it replaces
/// is retired and kept. Activating a retired version rolls back to it.
/// The scope's open leads are re-scored by it: in the request when there
/// are at most `inline_limit`, else by the re-scoring job, returned at once.
///
/// # Errors
/// FORBIDDEN below ADMIN; NOT_FOUND; BAD_USER_INPUT when the version no
/// longer fits the tenant's fields and signals.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, model_id = %model_id))]
pub async fn activate(
    db: &DatabaseConnection,
    principal: &Principal,
    model_id: ScoringModelId,
    inline_limit: u64,
    now: DateTime<Utc>,
) -> AppResult<Activated> {
    principal.require_admin("activate scoring models")?;
    let id = model_id;
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let target = scope.get::<scoring_model::Entity>(id).await?;
    if target.status == ModelStatus::Active {
        return Ok(Activated {
            model: target,
            job_run: None,
        });
    }
    let catalog = TenantCatalog::load(&scope).await?;
    compile_stored(&target, &catalog, "model_id")?;
    let previous = in_scope(scope.select::<scoring_model::Entity>(), target.team_id)
        .filter(scoring_model::Column::Status.eq(ModelStatus::Active))
        .all(&txn)
        .await?;
    for old in &previous {
        let mut row = old.clone().into_active_model();
        row.status = Set(ModelStatus::Retired);
        row.retired_at = Set(Some(now));
        scope.update(row).await?;
    }
    let rollback = target.status == ModelStatus::Retired;
    let mut row = target.clone().into_active_model();
    row.status = Set(ModelStatus::Active);
    row.activated_at = Set(Some(now));
    row.retired_at = Set(None);
    let active = scope.update(row).await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: if rollback {
                "scoring_model.rolled_back"
            } else {
                "scoring_model.activated"
            },
            entity: "scoring_model",
            entity_id: Some(active.id.into()),
            before: Some(json!({
                "active": previous.first().map(audit_json),
                "this": audit_json(&target),
            })),
            after: Some(json!({ "active": audit_json(&active) })),
        },
        now,
    )
    .await?;
    let affected = lead_count(&scope, target.team_id).await?;
    // Queued in the activation's transaction: should this process stop
    // before re-scoring, the next run picks it up.
    let queued = scope
        .insert(rescore::queued_run(
            Trigger::ModelActivation,
            target.team_id,
            Some(principal.user_id),
            now,
        ))
        .await?;
    tenant_config::commit_change(txn, principal.tenant_id, now).await?;

    if affected <= inline_limit {
        let options = rescore::Options::default();
        rescore::run(
            db,
            principal.tenant_id,
            Trigger::ModelActivation,
            Some(principal.user_id),
            now,
            &options,
        )
        .await?;
        let walled = Walled::new(db, principal.tenant_id);
        let scope = walled.scope();
        let run = scope.get::<job_run::Entity>(queued.id).await?;
        if run.status != entity::enums::JobStatus::Queued {
            return Ok(Activated {
                model: active,
                job_run: None,
            });
        }
    }
    rescore::spawn_queued(db.clone(), principal.tenant_id);
    Ok(Activated {
        model: active,
        job_run: Some(queued),
    })
}

async fn lead_count<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    team: Option<TeamId>,
) -> AppResult<u64> {
    use sea_orm::PaginatorTrait;
    let filter = leads_of_scope(scope, team).await?;
    Ok(scope
        .select::<lead::Entity>()
        .filter(filter)
        .filter(lead::Column::Status.eq(LeadStatus::Open))
        .count(scope.conn())
        .await?)
}

/// A version judged on the closed leads of its scope, as they stood just
/// before closing.
///
/// # Errors
/// FORBIDDEN for a REP, or a MANAGER for another team's model; NOT_FOUND;
/// BAD_USER_INPUT when the version no longer fits the catalog.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, model_id = %model_id))]
pub async fn evaluation<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    model_id: ScoringModelId,
) -> AppResult<Evaluation> {
    principal.require_at_least(Role::Manager, "evaluate scoring models")?;
    let id = model_id;
    let model = scope.get::<scoring_model::Entity>(id).await?;
    if model.team_id.is_some() {
        require_may_draft(scope, principal, model.team_id, "evaluate scoring models").await?;
    }
    let config = tenant_config::get(scope).await?;
    let compiled = compile_stored(&model, &config.catalog, "model_id")?;
    let stages = config.stages_by_pipeline();
    let filter = leads_of_scope(scope, model.team_id).await?;
    let judged = judge_closed(scope, filter, &stages, &[&compiled]).await?;
    let judged = judged.first().map_or(&[][..], Vec::as_slice);
    let closed: Vec<evaluate::ClosedLead<'_>> = judged
        .iter()
        .map(|j| evaluate::ClosedLead {
            score: j.score,
            tier: &j.tier,
            won: j.won,
        })
        .collect();
    let tiers: Vec<&str> = compiled
        .config()
        .tiers
        .iter()
        .map(|t| t.key.as_str())
        .collect();
    // The close-probability model the scope's leads use now, with how it
    // did on the recent closed leads it held out before they joined its
    // training.
    let predictor = config
        .model(model.team_id)
        .ok()
        .and_then(|m| m.predictor.as_ref().map(|p| p.metadata.clone()));
    Ok(Evaluation {
        scores: evaluate::evaluate(&tiers, &closed),
        predictor,
    })
}

/// A scoring model judged on closed leads, beside the close-probability
/// model in use for its scope.
pub struct Evaluation {
    pub scores: scoring::ModelEvaluation,
    /// What the predictor was trained on and how it did out of sample;
    /// none before one is trained.
    pub predictor: Option<scoring::TrainingMetadata>,
}
