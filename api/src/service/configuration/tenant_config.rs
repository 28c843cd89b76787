//! A tenant's configuration as scoring, the queue and the events read it,
//! loaded once per process and kept until it changes.
//!
//! Every mutation scores a lead with the tenant's fields, signals,
//! pipelines and active models, and every queue read explains itself in
//! the tenant's language; reading all of that per request cost more than
//! the request's own work. A [`TenantConfig`] holds it compiled and ready,
//! shared by every request of the tenant in this process.
//!
//! A change drops the copy everywhere: the transaction that changes the
//! configuration ends with [`commit_change`], which announces the change on
//! the channel live updates use (so every other process drops its copy when
//! the notice reaches it) and drops this process's copy once committed. A
//! copy also expires after [`TTL`], in case a notice was missed (a process
//! running with live updates off hears none).

use entity::{PipelineId, ScoringModelId, TeamId, UserId};
use std::{
    collections::HashMap,
    sync::{
        Arc, LazyLock, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use entity::{
    enums::ModelStatus, predictor_model, scoring_model, stage, team_member, tenant,
    webhook_endpoint,
};
use moka::sync::Cache;
use scoring::CompiledModel;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, QueryFilter, QuerySelect};
use serde_json::Value;
use uuid::Uuid;

use crate::service::{
    accounts::account,
    configuration, events,
    leads::rescoring::{ModelInUse, TenantCatalog},
};
use crate::{
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// How long a copy lives at most, should the notice of a change not reach
/// this process.
pub const TTL: Duration = Duration::from_secs(60);

/// Tenants whose configuration one process keeps at once.
const CAPACITY: u64 = 10_000;

/// A pipeline and its stages in order.
pub type PipelineStages = Arc<(entity::pipeline::Model, Vec<stage::Model>)>;

/// What a tenant has configured, as its requests read it.
pub struct TenantConfig {
    /// The tenant row: locale, time zone, settings.
    pub tenant: tenant::Model,
    /// Lead fields and signal types.
    pub catalog: TenantCatalog,
    /// Every pipeline with its stages, the default first.
    pipelines: Vec<PipelineStages>,
    /// The model (and predictor) scoring each team's leads; `None` for
    /// leads without a team and teams without one of their own. A model
    /// that no longer fits the catalog keeps its error, for the leads it
    /// would score.
    models: HashMap<Option<TeamId>, Result<Arc<ModelInUse>, String>>,
    /// Each user's teams.
    teams_of_user: HashMap<UserId, Vec<TeamId>>,
    /// Each team's members.
    members_of_team: HashMap<TeamId, Vec<UserId>>,
    /// Active webhook endpoints and the event types each asked for.
    pub webhooks: Vec<(Uuid, Vec<String>)>,
    /// Older model versions compiled to explain the scores they made, by
    /// id; dropped with this copy when the catalog changes.
    versions: Mutex<HashMap<ScoringModelId, Arc<CompiledModel>>>,
}

impl TenantConfig {
    /// Reads the configuration as the connection sees it now: inside a
    /// transaction that changes it, with the changes. Use [`get`] for the
    /// shared copy.
    ///
    /// # Errors
    /// Database errors; NOT_FOUND when the tenant is gone.
    pub async fn load<C: ConnectionTrait>(scope: &TenantScope<'_, C>) -> AppResult<Self> {
        let tenant = account::get_tenant(scope).await?;
        let catalog = TenantCatalog::load(scope).await?;
        let pipelines: Vec<PipelineStages> = configuration::pipelines(scope)
            .await?
            .into_iter()
            .map(|p| Arc::new((p.pipeline, p.stages)))
            .collect();
        let links: Vec<(UserId, TeamId)> = scope
            .select::<team_member::Entity>()
            .select_only()
            .columns([team_member::Column::UserId, team_member::Column::TeamId])
            .into_tuple()
            .all(scope.conn())
            .await?;
        let mut teams_of_user: HashMap<UserId, Vec<TeamId>> = HashMap::new();
        let mut members_of_team: HashMap<TeamId, Vec<UserId>> = HashMap::new();
        for (user, team) in links {
            teams_of_user.entry(user).or_default().push(team);
            members_of_team.entry(team).or_default().push(user);
        }
        let models = load_models(scope, &catalog).await?;
        let webhooks = scope
            .select::<webhook_endpoint::Entity>()
            .select_only()
            .columns([
                webhook_endpoint::Column::Id,
                webhook_endpoint::Column::EventTypes,
            ])
            .filter(webhook_endpoint::Column::Active.eq(true))
            .into_tuple::<(Uuid, Value)>()
            .all(scope.conn())
            .await?
            .into_iter()
            .map(|(id, wanted)| {
                let wanted = wanted
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                (id, wanted)
            })
            .collect();
        Ok(Self {
            tenant,
            catalog,
            pipelines,
            models,
            teams_of_user,
            members_of_team,
            webhooks,
            versions: Mutex::new(HashMap::new()),
        })
    }

    /// The model in use for `team`'s leads (the team's own, else the
    /// tenant default), with its predictor.
    ///
    /// # Errors
    /// INTERNAL when that model no longer fits the tenant's fields and
    /// signals, or the tenant has no active model.
    pub fn model(&self, team: Option<TeamId>) -> AppResult<Arc<ModelInUse>> {
        let chosen = self
            .models
            .get(&team)
            .or_else(|| self.models.get(&None))
            .ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!(
                    "tenant {} has no active scoring model",
                    self.tenant.id
                ))
            })?;
        chosen
            .clone()
            .map_err(|why| AppError::Internal(anyhow::anyhow!(why)))
    }

    /// The scoring model version `id`, compiled against the catalog: the
    /// active ones at hand, an older one read once and kept.
    ///
    /// # Errors
    /// NOT_FOUND for a version the tenant does not have; INTERNAL when it
    /// no longer fits the catalog.
    pub async fn version<C: ConnectionTrait>(
        &self,
        scope: &TenantScope<'_, C>,
        id: ScoringModelId,
    ) -> AppResult<Arc<CompiledModel>> {
        let active = self
            .models
            .values()
            .filter_map(|m| m.as_ref().ok())
            .find(|m| m.row.id == id);
        if let Some(model) = active {
            return Ok(Arc::clone(&model.compiled));
        }
        let poisoned = |_| AppError::Internal(anyhow::anyhow!("a model cache lock was poisoned"));
        if let Some(compiled) = self.versions.lock().map_err(poisoned)?.get(&id) {
            return Ok(Arc::clone(compiled));
        }
        let row = scope.get::<scoring_model::Entity>(id).await?;
        let compiled = ModelInUse::compile(&row, &self.catalog)
            .map_err(|why| AppError::Internal(anyhow::anyhow!(why)))?;
        self.versions
            .lock()
            .map_err(poisoned)?
            .insert(id, Arc::clone(&compiled));
        Ok(compiled)
    }

    /// Every pipeline with its stages, the default first.
    pub fn pipelines(&self) -> &[PipelineStages] {
        &self.pipelines
    }

    /// The pipeline `id` with its stages.
    pub fn pipeline(&self, id: PipelineId) -> Option<&PipelineStages> {
        self.pipelines.iter().find(|p| p.0.id == id)
    }

    /// The default pipeline with its stages.
    pub fn default_pipeline(&self) -> Option<&PipelineStages> {
        self.pipelines.iter().find(|p| p.0.is_default)
    }

    /// The stages of pipeline `id` in order; none for an unknown pipeline.
    pub fn stages(&self, pipeline: PipelineId) -> &[stage::Model] {
        self.pipeline(pipeline).map_or(&[][..], |p| p.1.as_slice())
    }

    /// Every stage by pipeline, in order.
    pub fn stages_by_pipeline(&self) -> HashMap<PipelineId, Vec<stage::Model>> {
        self.pipelines
            .iter()
            .map(|p| (p.0.id, p.1.clone()))
            .collect()
    }

    /// The teams `user` belongs to.
    pub fn teams_of(&self, user: UserId) -> &[TeamId] {
        self.teams_of_user.get(&user).map_or(&[], Vec::as_slice)
    }

    /// Everyone in any of `teams`.
    pub fn members_of(&self, teams: &[TeamId]) -> Vec<UserId> {
        let mut members: Vec<UserId> = teams
            .iter()
            .filter_map(|t| self.members_of_team.get(t))
            .flatten()
            .copied()
            .collect();
        members.sort_unstable();
        members.dedup();
        members
    }
}

/// Compiles each active model once and pairs it with the predictor of each
/// team: a team's own model and predictor when it has them, else the
/// tenant's.
async fn load_models<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    catalog: &TenantCatalog,
) -> AppResult<HashMap<Option<TeamId>, Result<Arc<ModelInUse>, String>>> {
    let active = scope
        .select::<scoring_model::Entity>()
        .filter(scoring_model::Column::Status.eq(ModelStatus::Active))
        .all(scope.conn())
        .await?;
    // An unreadable predictor (an older format) is skipped, not fatal: the
    // leads keep their last probability until the next training.
    let predictors: HashMap<Option<TeamId>, (Uuid, Arc<scoring::Predictor>)> = scope
        .select::<predictor_model::Entity>()
        .filter(predictor_model::Column::Active.eq(true))
        .all(scope.conn())
        .await?
        .into_iter()
        .filter_map(|p| {
            let predictor = serde_json::from_value(p.model).ok()?;
            Some((p.team_id, (p.id, Arc::new(predictor))))
        })
        .collect();
    let models: HashMap<Option<TeamId>, &scoring_model::Model> =
        active.iter().map(|m| (m.team_id, m)).collect();
    let mut compiled: HashMap<ScoringModelId, Result<Arc<scoring::CompiledModel>, String>> =
        HashMap::new();
    let mut in_use: HashMap<(ScoringModelId, Option<Uuid>), Arc<ModelInUse>> = HashMap::new();
    let mut by_team = HashMap::new();
    let mut teams: Vec<Option<TeamId>> = vec![None];
    teams.extend(models.keys().copied().filter(Option::is_some));
    teams.extend(predictors.keys().copied().filter(Option::is_some));
    teams.sort_unstable();
    teams.dedup();
    for team in teams {
        let Some(row) = models.get(&team).or_else(|| models.get(&None)) else {
            continue;
        };
        let predictor = predictors.get(&team).or_else(|| predictors.get(&None));
        let key = (row.id, predictor.map(|(id, _)| *id));
        let chosen = match in_use.get(&key) {
            Some(model) => Ok(Arc::clone(model)),
            None => compiled
                .entry(row.id)
                .or_insert_with(|| ModelInUse::compile(row, catalog))
                .clone()
                .map(|compiled| {
                    let model = Arc::new(ModelInUse {
                        row: (*row).clone(),
                        compiled,
                        predictor: predictor.map(|(_, p)| Arc::clone(p)),
                    });
                    in_use.insert(key, Arc::clone(&model));
                    model
                }),
        };
        by_team.insert(team, chosen);
    }
    Ok(by_team)
}

static CACHE: LazyLock<Cache<Uuid, Arc<TenantConfig>>> = LazyLock::new(|| {
    Cache::builder()
        .max_capacity(CAPACITY)
        .time_to_live(TTL)
        .build()
});

/// Bumped by every invalidation: a copy read before a change committed is
/// not kept when the change was announced while it was being read.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The tenant's configuration, from this process's copy when it has one.
///
/// Read inside a transaction, the copy must not include that
/// transaction's own configuration changes: a service that changes the
/// configuration reads it with [`TenantConfig::load`] instead.
///
/// # Errors
/// The ids of the teams `user` belongs to.
///
/// # Errors
/// Database errors.
pub async fn teams_of<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    user: UserId,
) -> AppResult<Vec<TeamId>> {
    Ok(get(scope).await?.teams_of(user).to_vec())
}

/// As [`TenantConfig::load`].
pub async fn get<C: ConnectionTrait>(scope: &TenantScope<'_, C>) -> AppResult<Arc<TenantConfig>> {
    let tenant = scope.tenant_id();
    if let Some(config) = CACHE.get(&tenant) {
        return Ok(config);
    }
    let epoch = EPOCH.load(Ordering::Acquire);
    let config = Arc::new(TenantConfig::load(scope).await?);
    if EPOCH.load(Ordering::Acquire) == epoch {
        CACHE.insert(tenant, Arc::clone(&config));
    }
    Ok(config)
}

/// Drops this process's copy of the tenant's configuration.
pub fn invalidate(tenant: Uuid) {
    EPOCH.fetch_add(1, Ordering::AcqRel);
    CACHE.invalidate(&tenant);
}

/// Tells every process that the tenant's configuration changed, in the
/// transaction that changes it, so the notice goes out only if it commits.
///
/// # Errors
/// Database errors.
pub async fn announce<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    events::announce_config_change(scope, now).await
}

/// Commits a transaction that changed the tenant's configuration:
/// announces the change to every process, commits, and drops this
/// process's copy, so the caller's next request reads what it just wrote.
///
/// # Errors
/// Database errors.
pub async fn commit_change(
    txn: DatabaseTransaction,
    tenant: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    announce(&TenantScope::enter(&txn, tenant).await?, now).await?;
    txn.commit().await?;
    invalidate(tenant);
    Ok(())
}
