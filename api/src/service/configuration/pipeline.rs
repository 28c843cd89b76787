//! Creating and changing pipelines. Every pipeline keeps exactly one WON
//! stage, at least one LOST and at least one OPEN stage. A stage whose key
//! remains keeps its id, since leads point at stage ids; a removed stage's
//! leads move where the admin says, in the same transaction.

use entity::{LeadId, PipelineId, StageId, TeamId};
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{
    enums::{LeadStatus, StageKind},
    lead, lead_event, pipeline, stage,
};
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, ExprTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::service::{
    accounts::account,
    accounts::audit,
    begin_write,
    configuration::PipelineWithStages,
    configuration::defaults,
    configuration::tenant_config::{self, TenantConfig},
    leads::lead_writer,
    leads::rescoring::{self, ModelInUse, Pinners},
    validate,
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// Most stages a pipeline may have.
pub const MAX_STAGES: usize = 50;

/// Longest idle time a stage may allow, in days.
const MAX_ROTTING_DAYS: i32 = 3650;

/// Leads re-scored per query while a pipeline changes.
const LEAD_PAGE: u64 = 500;

/// The fields of `StageInput`.
pub struct StageSpec {
    pub key: String,
    pub name: String,
    pub kind: StageKind,
    /// Probability of winning from this stage, 0 to 1.
    pub win_probability: f64,
    /// Days idle before a lead is flagged stale; `None` never.
    pub rotting_days: Option<i32>,
    /// A stage won leads go on to as customers; OPEN stages only.
    pub post_sale: bool,
}

/// The fields of `PipelineInput`.
pub struct NewPipeline {
    pub name: String,
    pub template: Option<String>,
    pub stages: Option<Vec<StageSpec>>,
}

/// The fields of `StageMove`: where the leads of a removed stage go.
pub struct StageMove {
    pub from_key: String,
    pub to_key: String,
}

/// The fields of `UpdatePipelineInput`; `None` leaves a part as it is, and
/// `stages` is the full new list in order.
pub struct PipelineChanges {
    pub id: PipelineId,
    pub name: Option<String>,
    pub stages: Option<Vec<StageSpec>>,
    pub move_leads_to: Vec<StageMove>,
}

/// Creates a pipeline from a template in the tenant's locale (`general`
/// when neither a template nor stages are given) or from explicit stages.
///
/// # Errors
/// FORBIDDEN below ADMIN; BAD_USER_INPUT naming the field; CONFLICT when
/// the name is taken.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id))]
pub async fn create_pipeline(
    db: &DatabaseConnection,
    principal: &Principal,
    input: NewPipeline,
    now: DateTime<Utc>,
) -> AppResult<PipelineWithStages> {
    principal.require_admin("change pipelines")?;
    let name = validate::required_text("name", &input.name, 200)?;
    let explicit = input.stages.map(check_stages).transpose()?;
    if explicit.is_some() && input.template.is_some() {
        return Err(AppError::invalid(
            "template",
            "give either a template or stages, not both",
        ));
    }

    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let specs = match explicit {
        Some(specs) => specs,
        None => {
            let locale = account::get_tenant(&scope).await?.locale;
            template_stages(input.template.as_deref().unwrap_or("general"), &locale)?
        }
    };
    refuse_taken_name(&scope, &name, None).await?;
    let pipeline = scope
        .insert(pipeline::ActiveModel {
            id: Set(PipelineId::new()),
            name: Set(name),
            is_default: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .await?;
    let stages: Vec<stage::Model> = specs
        .iter()
        .zip(0..)
        .map(|(spec, position)| new_stage(scope.tenant_id(), pipeline.id, spec, position, now))
        .collect();
    scope
        .insert_many(
            stages
                .iter()
                .cloned()
                .map(IntoActiveModel::into_active_model),
        )
        .await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "pipeline.created",
            entity: "pipeline",
            entity_id: Some(pipeline.id.into()),
            before: None,
            after: Some(snapshot(&pipeline, &stages)),
        },
        now,
    )
    .await?;
    tenant_config::commit_change(txn, principal.tenant_id, now).await?;
    tracing::info!(tenant_id = %principal.tenant_id, pipeline_id = %pipeline.id, "pipeline created");
    Ok(PipelineWithStages { pipeline, stages })
}

/// Renames a pipeline and replaces its stages with `changes.stages`:
/// stages are matched by key, so kept stages keep their ids and leads; new
/// keys are added; missing keys are removed, their leads moved as
/// `move_leads_to` says and re-scored. When the stages' scoring facts change
/// (order, kind, win probability, rotting days), the pipeline's open leads
/// are re-scored in the same transaction: one read per page and one write
/// per lead, which is fine for thousands of leads and slow for hundreds of
/// thousands.
///
/// # Errors
/// FORBIDDEN below ADMIN; NOT_FOUND for another tenant's pipeline;
/// BAD_USER_INPUT naming the field (including `input.moveLeadsTo` with the
/// number of leads a removed stage holds); CONFLICT when the name is taken.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, pipeline_id = %changes.id))]
pub async fn update_pipeline(
    db: &DatabaseConnection,
    principal: &Principal,
    changes: PipelineChanges,
    now: DateTime<Utc>,
) -> AppResult<PipelineWithStages> {
    principal.require_admin("change pipelines")?;
    let id = changes.id;
    let name = changes
        .name
        .map(|name| validate::required_text("name", &name, 200))
        .transpose()?;
    let specs = changes.stages.map(check_stages).transpose()?;
    if specs.is_none() && !changes.move_leads_to.is_empty() {
        return Err(AppError::invalid(
            "move_leads_to",
            "only applies when `stages` removes a stage",
        ));
    }

    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    // Locked so two admins editing the same pipeline take turns.
    let current = scope
        .select::<pipeline::Entity>()
        .filter(pipeline::Column::Id.eq(id))
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::not_found("pipeline", id))?;
    // The change's re-scored leads announce themselves through the outbox,
    // which reads this process's copy of the configuration: read it now,
    // before the change, so a copy taken inside this transaction can never
    // hold stages that may still roll back.
    tenant_config::get(&scope).await?;
    let old_stages = rescoring::pipeline_stages(&scope, id).await?;
    let before = snapshot(&current, &old_stages);

    let mut pipeline = current.clone();
    if let Some(name) = name.filter(|n| *n != current.name) {
        refuse_taken_name(&scope, &name, Some(id)).await?;
        pipeline.name = name;
    }
    let mut moved = Vec::new();
    let mut stages = old_stages.clone();
    if let Some(specs) = specs {
        let counts = leads_per_stage(&scope, id).await?;
        let plan = plan(&old_stages, &specs, &changes.move_leads_to, &counts)?;
        stages = apply_stages(&scope, &old_stages, &specs, id, now).await?;
        let mut moved_ids = HashSet::new();
        let rescoring = Rescoring::load(&scope).await?;
        for (from, to) in &plan.moves {
            let to = stages
                .iter()
                .find(|s| s.key == to.key)
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a planned stage is missing")))?;
            let n = move_leads(
                &scope,
                principal,
                from,
                to,
                &stages,
                &rescoring,
                &mut moved_ids,
                now,
            )
            .await?;
            moved.push(json!({"fromKey": from.key, "toKey": to.key, "leads": n}));
        }
        if !plan.removed.is_empty() {
            let before = rescoring::TenantCatalog::load(&scope).await?;
            scope
                .delete_many::<stage::Entity>()
                .filter(stage::Column::Id.is_in(plan.removed.iter().map(|s| s.id)))
                .exec(&txn)
                .await?;
            // An active model's STAGE rule may name a stage removed here.
            let after = rescoring::TenantCatalog::load(&scope).await?;
            crate::service::configuration::catalog::require_models_fit(
                &scope,
                &before.catalog,
                &after.catalog,
                "stages",
            )
            .await?;
        }
        if scoring_facts_changed(&old_stages, &stages) {
            let n = rescore_open_leads(&scope, id, &stages, &rescoring, &moved_ids, now).await?;
            tracing::info!(tenant_id = %principal.tenant_id, pipeline_id = %id, leads = n, "pipeline's open leads re-scored");
        }
    }
    if pipeline != current || stages != old_stages {
        let mut row = current.clone().into_active_model();
        row.name = Set(pipeline.name.clone());
        row.updated_at = Set(now);
        pipeline = scope.update(row).await?;
        let mut after = snapshot(&pipeline, &stages);
        if !moved.is_empty()
            && let Some(after) = after.as_object_mut()
        {
            after.insert("movedLeads".into(), Value::Array(moved));
        }
        audit::record(
            &scope,
            audit::Change {
                actor: Some(principal.user_id),
                action: "pipeline.updated",
                entity: "pipeline",
                entity_id: Some(id.into()),
                before: Some(before),
                after: Some(after),
            },
            now,
        )
        .await?;
    }
    tenant_config::commit_change(txn, principal.tenant_id, now).await?;
    Ok(PipelineWithStages { pipeline, stages })
}

/// Checks a full list of stages, naming `input.stages[i].…` for each problem.
fn check_stages(specs: Vec<StageSpec>) -> AppResult<Vec<StageSpec>> {
    if specs.len() > MAX_STAGES {
        return Err(AppError::invalid(
            "stages",
            format!("a pipeline has at most {MAX_STAGES} stages"),
        ));
    }
    let mut checked: Vec<StageSpec> = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let path = |field: &str| format!("stages[{i}].{field}");
        let key = validate::key(&path("key"), &spec.key)?;
        if let Some(j) = checked.iter().position(|s| s.key == key) {
            return Err(AppError::invalid(
                path("key"),
                format!("the key \"{key}\" is already used by stages[{j}]; keys must be unique"),
            ));
        }
        let name = validate::required_text(&path("name"), &spec.name, 200)?;
        if !(spec.win_probability.is_finite() && (0.0..=1.0).contains(&spec.win_probability)) {
            return Err(AppError::invalid(
                path("win_probability"),
                format!(
                    "must be a probability from 0 to 1, got {}",
                    spec.win_probability
                ),
            ));
        }
        if spec
            .rotting_days
            .is_some_and(|d| !(1..=MAX_ROTTING_DAYS).contains(&d))
        {
            return Err(AppError::invalid(
                path("rotting_days"),
                format!("must be from 1 to {MAX_ROTTING_DAYS} days, or null for never"),
            ));
        }
        if spec.post_sale && spec.kind != StageKind::Open {
            return Err(AppError::invalid(
                path("post_sale"),
                "only an OPEN stage can be a post-sale stage: won leads go on to it as customers",
            ));
        }
        if spec.kind == StageKind::Won
            && let Some(j) = checked.iter().position(|s| s.kind == StageKind::Won)
        {
            return Err(AppError::invalid(
                path("kind"),
                format!("stages[{j}] is already the WON stage; a pipeline has exactly one"),
            ));
        }
        checked.push(StageSpec { key, name, ..spec });
    }
    for (kind, rule) in [
        (StageKind::Won, "exactly one WON stage"),
        (StageKind::Lost, "at least one LOST stage"),
        (StageKind::Open, "at least one OPEN stage"),
    ] {
        if !checked.iter().any(|s| s.kind == kind) {
            return Err(AppError::invalid(
                "stages",
                format!("a pipeline needs {rule}"),
            ));
        }
    }
    Ok(checked)
}

/// The stages of a template, or BAD_USER_INPUT on `input.template`.
fn template_stages(template: &str, locale: &str) -> AppResult<Vec<StageSpec>> {
    let stages = defaults::pipeline_template(template.trim(), locale).ok_or_else(|| {
        AppError::invalid(
            "template",
            format!(
                "there is no template \"{template}\"; choose one of {}",
                defaults::PIPELINE_TEMPLATES.join(", ")
            ),
        )
    })?;
    Ok(stages
        .into_iter()
        .map(|s| StageSpec {
            key: s.key.to_owned(),
            name: s.name.to_owned(),
            kind: s.kind,
            win_probability: s.win_probability,
            rotting_days: s.rotting_days,
            post_sale: s.post_sale,
        })
        .collect())
}

async fn refuse_taken_name<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    name: &str,
    except: Option<PipelineId>,
) -> AppResult<()> {
    let taken = scope
        .select::<pipeline::Entity>()
        .filter(pipeline::Column::Name.eq(name))
        .filter(pipeline::Column::Id.is_not_in(except))
        .one(scope.conn())
        .await?;
    match taken {
        Some(existing) => Err(AppError::Conflict {
            message: format!("a pipeline named \"{name}\" already exists"),
            existing_id: Some(existing.id.into()),
        }),
        None => Ok(()),
    }
}

fn new_stage(
    tenant_id: Uuid,
    pipeline_id: PipelineId,
    spec: &StageSpec,
    position: i32,
    now: DateTime<Utc>,
) -> stage::Model {
    stage::Model {
        tenant_id,
        id: StageId::new(),
        pipeline_id,
        key: spec.key.clone(),
        name: spec.name.clone(),
        kind: spec.kind,
        position,
        win_probability: spec.win_probability,
        rotting_days: spec.rotting_days,
        post_sale: spec.post_sale,
        created_at: now,
        updated_at: now,
    }
}

/// A pipeline and its stages as the audit log keeps them.
fn snapshot(pipeline: &pipeline::Model, stages: &[stage::Model]) -> Value {
    json!({
        "name": pipeline.name,
        "isDefault": pipeline.is_default,
        "stages": stages.iter().map(|s| json!({
            "id": s.id,
            "key": s.key,
            "name": s.name,
            "kind": s.kind.to_value(),
            "winProbability": s.win_probability,
            "rottingDays": s.rotting_days,
            "postSale": s.post_sale,
        })).collect::<Vec<_>>(),
    })
}

/// How many leads (open or closed) each stage of the pipeline holds.
async fn leads_per_stage<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    pipeline: PipelineId,
) -> AppResult<HashMap<StageId, u64>> {
    let rows: Vec<(StageId, i64)> = scope
        .select::<lead::Entity>()
        .select_only()
        .column(lead::Column::StageId)
        .column_as(Expr::col(lead::Column::Id).count(), "leads")
        .filter(lead::Column::PipelineId.eq(pipeline))
        .group_by(lead::Column::StageId)
        .into_tuple()
        .all(scope.conn())
        .await?;
    Ok(rows
        .into_iter()
        .map(|(stage, n)| (stage, u64::try_from(n).unwrap_or(0)))
        .collect())
}

/// What a new stage list does to the old one.
struct Plan<'a> {
    /// Old stages whose key is gone.
    removed: Vec<&'a stage::Model>,
    /// Removed stages holding leads, and the new stage their leads go to.
    moves: Vec<(&'a stage::Model, &'a StageSpec)>,
}

/// Matches the new stages to the old by key and checks that every lead
/// has somewhere to be: a removed stage's leads need a move to a stage of
/// the same kind, and a stage holding leads keeps its kind (an open lead
/// in a WON stage would be neither open nor won).
fn plan<'a>(
    old: &'a [stage::Model],
    specs: &'a [StageSpec],
    moves: &[StageMove],
    counts: &HashMap<StageId, u64>,
) -> AppResult<Plan<'a>> {
    let held = |stage: &stage::Model| counts.get(&stage.id).copied().unwrap_or(0);
    for (i, spec) in specs.iter().enumerate() {
        if let Some(old) = old.iter().find(|s| s.key == spec.key)
            && old.kind != spec.kind
            && held(old) > 0
        {
            return Err(AppError::invalid(
                format!("stages[{i}].kind"),
                format!(
                    "the stage \"{}\" holds {} leads, so it stays {}; add a new stage instead and move the leads",
                    old.key,
                    held(old),
                    old.kind.to_value()
                ),
            ));
        }
    }
    let removed: Vec<&stage::Model> = old
        .iter()
        .filter(|s| !specs.iter().any(|spec| spec.key == s.key))
        .collect();
    let mut planned: Vec<(&stage::Model, &StageSpec)> = Vec::new();
    for (i, m) in moves.iter().enumerate() {
        let path = |field: &str| format!("move_leads_to[{i}].{field}");
        let from_key = m.from_key.trim();
        let Some(from) = removed.iter().copied().find(|s| s.key == from_key) else {
            return Err(AppError::invalid(
                path("from_key"),
                format!("\"{from_key}\" is not a stage that this change removes"),
            ));
        };
        if planned.iter().any(|(f, _)| f.id == from.id) {
            return Err(AppError::invalid(
                path("from_key"),
                format!("the leads of \"{from_key}\" are already moved by an earlier entry"),
            ));
        }
        let to_key = m.to_key.trim();
        let Some(to) = specs.iter().find(|s| s.key == to_key) else {
            return Err(AppError::invalid(
                path("to_key"),
                format!("the new stages have no \"{to_key}\""),
            ));
        };
        if to.kind != from.kind {
            return Err(AppError::invalid(
                path("to_key"),
                format!(
                    "the leads of the {} stage \"{}\" can only move to a {} stage, and \"{}\" is {}",
                    from.kind.to_value(),
                    from.key,
                    from.kind.to_value(),
                    to.key,
                    to.kind.to_value()
                ),
            ));
        }
        planned.push((from, to));
    }
    if let Some(stranded) = removed
        .iter()
        .find(|s| held(s) > 0 && !planned.iter().any(|(f, _)| f.id == s.id))
    {
        return Err(AppError::invalid(
            "move_leads_to",
            format!(
                "the stage \"{}\" holds {} leads; say where they go with moveLeadsTo: [{{fromKey: \"{}\", toKey: …}}]",
                stranded.key,
                held(stranded),
                stranded.key
            ),
        ));
    }
    planned.retain(|(from, _)| held(from) > 0);
    Ok(Plan {
        removed,
        moves: planned,
    })
}

/// Writes the new stage list: updates kept stages in place, inserts new
/// ones. Removed stages stay until their leads have moved. Returns the new
/// stages in order.
async fn apply_stages<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    old: &[stage::Model],
    specs: &[StageSpec],
    pipeline: PipelineId,
    now: DateTime<Utc>,
) -> AppResult<Vec<stage::Model>> {
    let mut stages = Vec::with_capacity(specs.len());
    for (spec, position) in specs.iter().zip(0..) {
        let Some(kept) = old.iter().find(|s| s.key == spec.key) else {
            let stage = new_stage(scope.tenant_id(), pipeline, spec, position, now);
            stages.push(scope.insert(stage.into_active_model()).await?);
            continue;
        };
        let changed = stage::Model {
            name: spec.name.clone(),
            kind: spec.kind,
            position,
            win_probability: spec.win_probability,
            rotting_days: spec.rotting_days,
            post_sale: spec.post_sale,
            ..kept.clone()
        };
        if changed == *kept {
            stages.push(changed);
            continue;
        }
        let mut row = kept.clone().into_active_model();
        row.name = Set(changed.name);
        row.kind = Set(changed.kind);
        row.position = Set(changed.position);
        row.win_probability = Set(changed.win_probability);
        row.rotting_days = Set(changed.rotting_days);
        row.post_sale = Set(changed.post_sale);
        row.updated_at = Set(now);
        stages.push(scope.update(row).await?);
    }
    Ok(stages)
}

/// Whether any lead's scoring facts differ between the two stage lists:
/// everything but the names counts.
fn scoring_facts_changed(old: &[stage::Model], new: &[stage::Model]) -> bool {
    let facts = |stages: &[stage::Model]| -> Vec<(StageId, StageKind, u64, Option<i32>, bool)> {
        stages
            .iter()
            .map(|s| {
                (
                    s.id,
                    s.kind,
                    s.win_probability.to_bits(),
                    s.rotting_days,
                    s.post_sale,
                )
            })
            .collect()
    };
    facts(old) != facts(new)
}

/// The tenant's configuration as the pipeline change sees it, for
/// re-scoring its leads.
struct Rescoring {
    config: TenantConfig,
}

impl Rescoring {
    /// Read in the change's own transaction, not from this process's copy,
    /// which must not hold what may still roll back.
    async fn load<C: ConnectionTrait>(scope: &TenantScope<'_, C>) -> AppResult<Self> {
        Ok(Self {
            config: TenantConfig::load(scope).await?,
        })
    }

    fn model(&self, team: Option<TeamId>) -> AppResult<std::sync::Arc<ModelInUse>> {
        self.config.model(team)
    }
}

/// The next page of `condition`'s leads after `after`, by id, locked for
/// this transaction on PostgreSQL (SQLite's write transaction already is).
async fn lead_page<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    condition: sea_orm::Condition,
    after: Option<LeadId>,
) -> AppResult<Vec<lead::Model>> {
    let mut query = scope.select::<lead::Entity>().filter(condition);
    if let Some(after) = after {
        query = query.filter(lead::Column::Id.gt(after));
    }
    Ok(query
        .order_by_asc(lead::Column::Id)
        .limit(LEAD_PAGE)
        .lock_exclusive()
        .all(scope.conn())
        .await?)
}

/// Moves every lead of `from` to `to`, as a stage move the lead's history
/// shows, and re-scores each in the new stages. Returns how many moved.
#[allow(clippy::too_many_arguments)]
async fn move_leads<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    from: &stage::Model,
    to: &stage::Model,
    stages: &[stage::Model],
    rescoring: &Rescoring,
    moved_ids: &mut HashSet<LeadId>,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let reason = format!("stage {} removed: moved to {}", from.key, to.key);
    let mut pinners = Pinners::default();
    let mut moved = 0;
    let mut after = None;
    loop {
        let page = lead_page(
            scope,
            sea_orm::Condition::all().add(lead::Column::StageId.eq(from.id)),
            after,
        )
        .await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id);
        pinners.load_for_leads(scope, &page).await?;
        for current in page {
            let mut changed = current.clone();
            changed.stage_id = to.id;
            changed.stage_entered_at = now;
            let model = rescoring.model(current.team_id)?;
            let pinner = pinners.name(current.pinned_by);
            lead_writer::score(&mut changed, pinner, stages, &model, now)?;
            lead_writer::update(scope, &current, changed, &reason, now).await?;
            scope
                .insert(lead_event::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    lead_id: Set(current.id),
                    kind: Set("STAGE".to_owned()),
                    actor_id: Set(Some(principal.user_id)),
                    at: Set(now),
                    from_value: Set(Some(from.key.clone())),
                    to_value: Set(Some(to.key.clone())),
                    data: Set(Some(json!({"reason": "stage removed"}))),
                    ..Default::default()
                })
                .await?;
            moved_ids.insert(current.id);
            moved += 1;
        }
    }
    Ok(moved)
}

/// Re-scores the pipeline's open leads (but those just moved, which were
/// scored in the new stages already). Each version is bumped like any
/// mutation's that re-scores: the nightly job, which reads leads before it
/// writes, then leaves them alone instead of writing back a score computed
/// with the old stages. Returns how many were re-scored.
async fn rescore_open_leads<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    pipeline: PipelineId,
    stages: &[stage::Model],
    rescoring: &Rescoring,
    skip: &HashSet<LeadId>,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let open = sea_orm::Condition::all()
        .add(lead::Column::PipelineId.eq(pipeline))
        .add(lead::Column::Status.eq(LeadStatus::Open));
    let mut pinners = Pinners::default();
    let mut rescored = 0;
    let mut after = None;
    loop {
        let page = lead_page(scope, open.clone(), after).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.id);
        pinners.load_for_leads(scope, &page).await?;
        for lead in page.into_iter().filter(|l| !skip.contains(&l.id)) {
            let model = rescoring.model(lead.team_id)?;
            let mut changed = lead.clone();
            lead_writer::score(
                &mut changed,
                pinners.name(lead.pinned_by),
                stages,
                &model,
                now,
            )?;
            lead_writer::update(scope, &lead, changed, "pipeline stages changed", now).await?;
            rescored += 1;
        }
    }
    Ok(rescored)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(key: &str, kind: StageKind) -> StageSpec {
        StageSpec {
            key: key.into(),
            name: key.into(),
            kind,
            win_probability: 0.5,
            rotting_days: Some(7),
            post_sale: false,
        }
    }

    fn field_of(err: AppError) -> String {
        match err {
            AppError::InvalidInput { field, .. } => field,
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn every_template_is_a_valid_pipeline_in_both_locales() {
        for template in defaults::PIPELINE_TEMPLATES {
            for locale in ["en", "zh-CN"] {
                let stages = template_stages(template, locale).unwrap();
                assert!(check_stages(stages).is_ok(), "{template} {locale}");
            }
            let en = template_stages(template, "en").unwrap();
            let zh = template_stages(template, "zh-CN").unwrap();
            assert!(
                en.iter().zip(&zh).all(|(e, z)| e.name != z.name),
                "{template}"
            );
        }
        assert!(template_stages("retail", "en").is_err());
    }

    #[test]
    fn a_second_won_stage_is_named_by_its_index() {
        let stages = vec![
            spec("lead", StageKind::Open),
            spec("won", StageKind::Won),
            spec("won_again", StageKind::Won),
            spec("lost", StageKind::Lost),
        ];
        assert_eq!(
            field_of(check_stages(stages).err().unwrap()),
            "stages[2].kind"
        );
    }

    #[test]
    fn a_pipeline_without_a_won_lost_or_open_stage_is_refused() {
        for missing in [StageKind::Won, StageKind::Lost, StageKind::Open] {
            let stages: Vec<StageSpec> = [
                spec("lead", StageKind::Open),
                spec("won", StageKind::Won),
                spec("lost", StageKind::Lost),
            ]
            .into_iter()
            .filter(|s| s.kind != missing)
            .collect();
            assert_eq!(field_of(check_stages(stages).err().unwrap()), "stages");
        }
    }

    #[test]
    fn win_probabilities_and_rotting_days_are_bounded() {
        for (p, days, field) in [
            (1.5, Some(7), "stages[0].win_probability"),
            (-0.1, Some(7), "stages[0].win_probability"),
            (f64::NAN, Some(7), "stages[0].win_probability"),
            (0.5, Some(0), "stages[0].rotting_days"),
        ] {
            let mut first = spec("lead", StageKind::Open);
            first.win_probability = p;
            first.rotting_days = days;
            let stages = vec![
                first,
                spec("won", StageKind::Won),
                spec("lost", StageKind::Lost),
            ];
            assert_eq!(field_of(check_stages(stages).err().unwrap()), field);
        }
    }
}
