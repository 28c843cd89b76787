//! Leads and their activities. Every mutation that changes a lead's facts
//! re-scores it in the same transaction and records a score event when the
//! score or tier moved.

use chrono::{DateTime, Utc};
use entity::{LeadId, PipelineId, TeamId, UserId};
use entity::{
    activity,
    enums::{Direction, LeadStatus, Role, StageKind},
    lead, lead_event, stage, team, user,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::{Email, Phone};
use crate::service::{
    accounts::account,
    accounts::audit,
    assignment::{Assigner, Candidate},
    begin_write,
    configuration::tenant_config,
    events::ByRule,
    leads::attributes::merge_attributes,
    leads::lead_writer,
    leads::pool,
    leads::rescoring::{self, Pinners},
    leads::visibility::LeadVisibility,
    validate,
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// A lead to create, its ids and contacts parsed. Texts are checked here
/// against the limits every writer of a lead shares.
#[derive(Default)]
pub struct NewLead {
    pub name: String,
    pub company: Option<String>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub industry: Option<String>,
    pub attributes: Option<Value>,
    pub deal_value: Option<f64>,
    pub owner_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    pub pipeline_id: Option<PipelineId>,
    pub stage_key: Option<String>,
    pub external_id: Option<String>,
    pub source: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub expected_close_at: Option<DateTime<Utc>>,
}

/// Changes to a lead's details: `None` leaves a field as it is; an empty
/// text or `Some(None)` clears it.
#[derive(Default)]
pub struct LeadChanges {
    pub name: Option<String>,
    pub company: Option<String>,
    pub email: Option<Option<Email>>,
    pub phone: Option<Option<Phone>>,
    pub industry: Option<String>,
    pub attributes: Option<Value>,
    pub deal_value: Option<Option<f64>>,
    pub team_id: Option<Option<TeamId>>,
    pub expected_close_at: Option<Option<DateTime<Utc>>>,
}

/// The lead, if the caller may see it.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %principal.tenant_id, lead_id = %id))]
pub async fn find_visible<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    id: LeadId,
) -> AppResult<Option<lead::Model>> {
    let visible = LeadVisibility::load(scope, principal).await?;
    Ok(scope
        .select::<lead::Entity>()
        .filter(lead::Column::Id.eq(id))
        .filter(visible.condition())
        .one(scope.conn())
        .await?)
}

/// The lead, or NOT_FOUND when it does not exist, belongs to another tenant
/// or is not visible to the caller.
///
/// # Errors
/// NOT_FOUND; database errors.
pub async fn get_visible<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    id: LeadId,
) -> AppResult<lead::Model> {
    find_visible(scope, principal, id)
        .await?
        .ok_or_else(|| AppError::not_found("lead", id))
}

/// Refuses a duplicate of an existing lead (same email, phone, or company
/// and name), naming the lead that exists when the caller may see it.
async fn refuse_duplicates<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    except: Option<LeadId>,
    email: Option<&str>,
    phone: Option<&str>,
    dedupe: Option<&str>,
) -> AppResult<()> {
    let checks = [
        ("email", lead::Column::Email, email),
        ("phone", lead::Column::Phone, phone),
        ("company and name", lead::Column::DedupeKey, dedupe),
    ];
    for (what, column, value) in checks {
        let Some(value) = value else { continue };
        let mut query = scope.select::<lead::Entity>().filter(column.eq(value));
        if let Some(id) = except {
            query = query.filter(lead::Column::Id.ne(id));
        }
        if let Some(existing) = query.one(scope.conn()).await? {
            return Err(duplicate(scope, principal, &existing, what).await?);
        }
    }
    Ok(())
}

/// The CONFLICT for a duplicate of `existing`: with its name and id when
/// the caller may see it; without them otherwise, so that probing with
/// emails or phones does not reveal another rep's leads.
async fn duplicate<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    existing: &lead::Model,
    what: &str,
) -> AppResult<AppError> {
    let visible = LeadVisibility::load(scope, principal).await?;
    Ok(if visible.sees(existing) {
        AppError::Conflict {
            message: format!(
                "a lead with the same {what} already exists: \"{}\" ({})",
                existing.name, existing.id
            ),
            existing_id: Some(existing.id.into()),
        }
    } else {
        AppError::Conflict {
            message: format!(
                "a lead with the same {what} already exists, owned by someone else; ask your manager"
            ),
            existing_id: None,
        }
    })
}

/// Creates a lead, scored before it is first seen.
///
/// # Errors
/// BAD_USER_INPUT naming the field; CONFLICT for duplicates; NOT_FOUND for
/// an owner, team or pipeline outside the tenant.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, lead_id = tracing::field::Empty))]
pub async fn create_lead(
    db: &DatabaseConnection,
    principal: &Principal,
    input: NewLead,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    let name = validate::required_text("name", &input.name, 200)?;
    let company = validate::optional_text("company", input.company.as_deref(), 200)?;
    let email = input.email.map(String::from);
    let phone = input.phone.map(String::from);
    let industry = validate::optional_text("industry", input.industry.as_deref(), 120)?;
    let source = validate::optional_text("source", input.source.as_deref(), 120)?;
    let external_id = validate::optional_text("external_id", input.external_id.as_deref(), 200)?;
    let deal_value = check_deal_value(input.deal_value)?;
    let created_at = input
        .created_at
        .map(|at| lead_writer::check_created_at(at, now))
        .transpose()
        .map_err(|why| AppError::invalid("created_at", why))?
        .unwrap_or(now);
    let (owner_id, team_id, pipeline_id) = (input.owner_id, input.team_id, input.pipeline_id);
    // A rep's new lead is theirs; they cannot hand it to someone else.
    let owner_id = match (principal.role, owner_id) {
        (Role::Rep, Some(other)) if other != principal.user_id => {
            return Err(AppError::Forbidden {
                action: "create leads for other reps",
            });
        }
        (Role::Rep, _) => Some(principal.user_id),
        (_, owner) => owner,
    };

    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let config = tenant_config::get(&scope).await?;
    let attributes = merge_attributes(
        &config.catalog.fields,
        &json!({}),
        input.attributes.as_ref(),
    )?;
    if let Some(owner) = owner_id {
        active_user(&scope, owner, "owner_id").await?;
    }
    if let Some(team) = team_id {
        scope.get::<team::Entity>(team).await?;
    }
    let pipeline = match pipeline_id {
        Some(id) => config
            .pipeline(id)
            .ok_or_else(|| AppError::not_found("pipeline", id))?,
        None => config
            .default_pipeline()
            .ok_or_else(|| AppError::not_found("pipeline", "default"))?,
    };
    let (pipeline, stages) = (&pipeline.0, &pipeline.1);
    let stage = match input.stage_key.as_deref() {
        Some(key) => stages.iter().find(|s| s.key == key).ok_or_else(|| {
            AppError::invalid("stage_key", format!("the pipeline has no stage \"{key}\""))
        })?,
        None => stages
            .iter()
            .find(|s| s.kind == StageKind::Open)
            .ok_or_else(|| AppError::invalid("pipeline_id", "the pipeline has no open stage"))?,
    };
    if stage.kind != StageKind::Open {
        return Err(AppError::invalid(
            "stage_key",
            "a new lead starts in an open stage; use closeLead to win or lose it",
        ));
    }
    let dedupe = lead_writer::dedupe_key(company.as_deref(), &name);
    refuse_duplicates(
        &scope,
        principal,
        None,
        email.as_deref(),
        phone.as_deref(),
        dedupe.as_deref(),
    )
    .await?;
    if let Some(external) = &external_id
        && let Some(existing) = scope
            .select::<lead::Entity>()
            .filter(lead::Column::ExternalId.eq(external.as_str()))
            .one(&txn)
            .await?
    {
        return Err(duplicate(&scope, principal, &existing, "external id").await?);
    }

    let model = config.model(team_id)?;
    let mut lead = lead::Model {
        external_id,
        name,
        company,
        email,
        phone,
        industry,
        source,
        attributes,
        deal_value,
        expected_close_at: input.expected_close_at,
        owner_id,
        team_id,
        stage_id: stage.id,
        stage_entered_at: created_at,
        created_at,
        ..lead_writer::blank(
            principal.tenant_id,
            LeadId::new(),
            principal.user_id,
            pipeline.id,
            now,
        )
    };
    lead_writer::score(&mut lead, None, stages, &model, now)?;
    // An unowned lead goes to a rep by the tenant's rules, on its new tier.
    let mut assigned = None;
    if owner_id.is_none()
        && let Some(mut assigner) = Assigner::load(&scope).await?
        && let Some(pick) = assigner.pick(&Candidate {
            team_id,
            tier: &lead.tier,
            source: lead.source.as_deref(),
            attributes: &lead.attributes,
        })
    {
        lead.owner_id = Some(pick.user_id);
        assigner.save(&scope).await?;
        assigned = Some(pick);
    }
    let rule = assigned.as_ref().map(|p| ByRule {
        id: p.rule_id,
        name: &p.rule_name,
    });
    let saved = lead_writer::insert(&scope, lead, "created", rule, now).await?;
    tracing::Span::current().record("lead_id", tracing::field::display(saved.id));
    if let Some(pick) = &assigned {
        scope
            .insert(pick.event(principal.tenant_id, saved.id, now))
            .await?;
    }
    txn.commit().await?;
    Ok(saved)
}

fn check_deal_value(value: Option<f64>) -> AppResult<Option<f64>> {
    lead_writer::check_deal_value(value).map_err(|why| AppError::invalid("deal_value", why))
}

async fn active_user<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    id: UserId,
    field: &str,
) -> AppResult<user::Model> {
    match scope.find::<user::Entity>(id).await? {
        Some(user) if user.active => Ok(user),
        _ => Err(AppError::invalid(field, "no such user in your company")),
    }
}

/// Loads a visible lead for a change, checks it is open where that matters,
/// and hands back what re-scoring needs.
struct Editing<'c, C> {
    scope: TenantScope<'c, C>,
    lead: lead::Model,
}

async fn start_editing<'c>(
    txn: &'c DatabaseTransaction,
    principal: &Principal,
    id: LeadId,
) -> AppResult<Editing<'c, DatabaseTransaction>> {
    let scope = TenantScope::enter(txn, principal.tenant_id).await?;
    let lead = get_visible(&scope, principal, id).await?;
    Ok(Editing { scope, lead })
}

impl<C: ConnectionTrait> Editing<'_, C> {
    /// Re-scores the changed lead and writes it while its version is the
    /// one read, with its score event and its notice and events, all in
    /// the caller's transaction.
    async fn save(
        self,
        mut changed: lead::Model,
        reason: &str,
        now: DateTime<Utc>,
    ) -> AppResult<lead::Model> {
        let config = tenant_config::get(&self.scope).await?;
        let model = config.model(changed.team_id)?;
        let stages = config.stages(changed.pipeline_id);
        let mut pinners = Pinners::default();
        pinners.load_for_leads(&self.scope, [&changed]).await?;
        let pinner = pinners.name(changed.pinned_by).map(str::to_owned);
        lead_writer::score(&mut changed, pinner.as_deref(), stages, &model, now)?;
        lead_writer::update(&self.scope, &self.lead, changed, reason, now).await
    }

    /// Like [`Editing::save`], with a score event even when the score and
    /// tier stay: for changes the score history must show (a reopening).
    async fn save_recorded(
        self,
        mut changed: lead::Model,
        reason: &str,
        now: DateTime<Utc>,
    ) -> AppResult<lead::Model> {
        let config = tenant_config::get(&self.scope).await?;
        let model = config.model(changed.team_id)?;
        let stages = config.stages(changed.pipeline_id);
        let mut pinners = Pinners::default();
        pinners.load_for_leads(&self.scope, [&changed]).await?;
        let pinner = pinners.name(changed.pinned_by).map(str::to_owned);
        lead_writer::score(&mut changed, pinner.as_deref(), stages, &model, now)?;
        lead_writer::update_recorded(&self.scope, &self.lead, changed, reason, now).await
    }
}

/// Applies `changes` to a lead when `expected_version` is still current.
///
/// # Errors
/// CONFLICT on a stale version or a duplicate; BAD_USER_INPUT; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, lead_id = %id, expected_version = expected_version))]
pub async fn update_lead(
    db: &DatabaseConnection,
    principal: &Principal,
    id: LeadId,
    expected_version: i32,
    changes: LeadChanges,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    let txn = begin_write(db).await?;
    let editing = start_editing(&txn, principal, id).await?;
    let current = editing.lead.clone();
    if current.version != expected_version {
        return Err(AppError::Conflict {
            message: format!(
                "the lead changed since you loaded it (version {} now, you had {expected_version}); reload and try again",
                current.version
            ),
            existing_id: Some(current.id.into()),
        });
    }
    let mut changed = current.clone();
    if let Some(name) = changes.name {
        changed.name = validate::required_text("name", &name, 200)?;
    }
    if let Some(company) = changes.company {
        changed.company = validate::optional_text("company", Some(&company), 200)?;
    }
    if let Some(email) = changes.email {
        changed.email = email.map(String::from);
    }
    if let Some(phone) = changes.phone {
        changed.phone = phone.map(String::from);
    }
    if let Some(industry) = changes.industry {
        changed.industry = validate::optional_text("industry", Some(&industry), 120)?;
    }
    if let Some(deal_value) = changes.deal_value {
        changed.deal_value = check_deal_value(deal_value)?;
    }
    if let Some(expected) = changes.expected_close_at {
        changed.expected_close_at = expected;
    }
    if let Some(team) = changes.team_id {
        changed.team_id = match team {
            Some(team) => {
                editing.scope.get::<team::Entity>(team).await?;
                Some(team)
            }
            None => None,
        };
    }
    let config = tenant_config::get(&editing.scope).await?;
    changed.attributes = merge_attributes(
        &config.catalog.fields,
        &current.attributes,
        changes.attributes.as_ref(),
    )?;
    changed.dedupe_key = lead_writer::dedupe_key(changed.company.as_deref(), &changed.name);
    refuse_duplicates(
        &editing.scope,
        principal,
        Some(current.id),
        changed.email.as_deref(),
        changed.phone.as_deref(),
        changed.dedupe_key.as_deref(),
    )
    .await?;

    let saved = editing.save(changed, "lead updated", now).await?;
    txn.commit().await?;
    Ok(saved)
}

/// Moves an open lead to another open stage of its pipeline.
///
/// # Errors
/// BAD_USER_INPUT for an unknown or closing stage; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, lead_id = %id, stage_key = %stage_key))]
pub async fn move_lead_stage(
    db: &DatabaseConnection,
    principal: &Principal,
    id: LeadId,
    stage_key: &str,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    let txn = begin_write(db).await?;
    let editing = start_editing(&txn, principal, id).await?;
    let current = editing.lead.clone();
    // A won lead carries on as a customer through the post-sale stages.
    let customer = current.status == LeadStatus::Won;
    if !customer {
        require_open(&current)?;
    }
    let config = tenant_config::get(&editing.scope).await?;
    let stages = config.stages(current.pipeline_id);
    let stage = stage_named(stages, stage_key)?;
    if stage.kind != StageKind::Open {
        return Err(AppError::invalid(
            "stage_key",
            "won and lost stages are reached with closeLead",
        ));
    }
    if customer != stage.post_sale {
        return Err(AppError::invalid(
            "stage_key",
            if customer {
                "a won lead moves on only to post-sale stages, where it stays won as a customer"
            } else {
                "post-sale stages are for won leads: close the lead as won first"
            },
        ));
    }
    if stage.id == current.stage_id {
        return Ok(current);
    }
    let from = stages
        .iter()
        .find(|s| s.id == current.stage_id)
        .map(|s| s.key.clone());
    let mut changed = current.clone();
    changed.stage_id = stage.id;
    changed.stage_entered_at = now;
    lead_history(
        &editing.scope,
        current.id,
        "STAGE",
        principal,
        from,
        Some(stage.key.clone()),
        now,
    )
    .await?;
    let reason = format!("moved to stage {}", stage.key);
    let saved = editing.save(changed, &reason, now).await?;
    txn.commit().await?;
    Ok(saved)
}

/// Gives a lead to a user of the tenant, or back to the shared pool.
///
/// # Errors
/// FORBIDDEN for reps assigning to others; BAD_USER_INPUT; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, lead_id = %id, owner_id = ?owner))]
pub async fn assign_lead(
    db: &DatabaseConnection,
    principal: &Principal,
    id: LeadId,
    owner: Option<UserId>,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    // A rep may take a lead from the pool or give theirs back, nothing more.
    if principal.role == Role::Rep && owner.is_some_and(|o| o != principal.user_id) {
        return Err(AppError::Forbidden {
            action: "assign leads to other reps",
        });
    }
    let txn = begin_write(db).await?;
    let editing = start_editing(&txn, principal, id).await?;
    let current = editing.lead.clone();
    if let Some(owner) = owner {
        active_user(&editing.scope, owner, "owner_id").await?;
    }
    if current.owner_id == owner {
        return Ok(current);
    }
    // A rep taking a pool lead claims it, within the day's claims.
    let claim = pool::claims(principal.role) && current.owner_id.is_none();
    if claim {
        pool::require_claim_room(&editing.scope, principal, current.team_id, "owner_id", now)
            .await?;
    }
    let mut changed = current.clone();
    changed.owner_id = owner;
    lead_history(
        &editing.scope,
        current.id,
        if claim { pool::CLAIMED } else { "ASSIGNED" },
        principal,
        current.owner_id.map(|o| o.to_string()),
        owner.map(|o| o.to_string()),
        now,
    )
    .await?;
    let saved = editing.save(changed, "owner changed", now).await?;
    txn.commit().await?;
    Ok(saved)
}

/// The caller takes a lead from the shared pool, within the number of
/// claims a day the pool rule for its team allows; claiming one's own lead
/// again changes nothing. Recorded in the lead's history as CLAIMED.
///
/// # Errors
/// NOT_FOUND for a lead the caller cannot see; BAD_USER_INPUT on
/// `input.id` for a closed lead or when the day's claims are used up;
/// CONFLICT when someone else owns it.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, lead_id = %id))]
pub async fn claim_lead(
    db: &DatabaseConnection,
    principal: &Principal,
    id: LeadId,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    let txn = begin_write(db).await?;
    let editing = start_editing(&txn, principal, id).await?;
    let current = editing.lead.clone();
    if current.status != LeadStatus::Open {
        return Err(AppError::invalid(
            "id",
            "is closed; only open leads of the pool can be claimed",
        ));
    }
    match current.owner_id {
        Some(owner) if owner == principal.user_id => return Ok(current),
        Some(_) => {
            return Err(AppError::Conflict {
                message: "someone already owns this lead; only leads of the pool can be claimed"
                    .to_owned(),
                existing_id: None,
            });
        }
        None => {}
    }
    pool::require_claim_room(&editing.scope, principal, current.team_id, "id", now).await?;
    let mut changed = current.clone();
    changed.owner_id = Some(principal.user_id);
    lead_history(
        &editing.scope,
        current.id,
        pool::CLAIMED,
        principal,
        None,
        Some(principal.user_id.to_string()),
        now,
    )
    .await?;
    let saved = editing.save(changed, "claimed from the pool", now).await?;
    txn.commit().await?;
    Ok(saved)
}

/// The fields of `RecordActivityInput`.
pub struct NewActivity {
    pub lead_id: LeadId,
    pub signal_key: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub direction: Option<Direction>,
    pub note: Option<String>,
    pub amount: Option<f64>,
}

/// Logs an activity and folds it into the lead's decayed accumulators
/// (never re-reading its history), then re-scores.
///
/// # Errors
/// BAD_USER_INPUT for unknown or retired signals, future dates and bad
/// amounts; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, lead_id = %input.lead_id, signal_key = %input.signal_key))]
pub async fn record_activity(
    db: &DatabaseConnection,
    principal: &Principal,
    input: NewActivity,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    // Activities only add to a lead, so two recorded on one lead at once
    // must both land: the one whose write finds the lead changed reads it
    // again and folds its activity into the newer state. Nothing of the
    // failed attempt is kept (its transaction is rolled back).
    let mut attempt = 0;
    loop {
        attempt += 1;
        match record_activity_once(db, principal, &input, now).await {
            Err(AppError::Conflict { .. }) if attempt < 3 => {
                tracing::info!(attempt, "an activity met a concurrent change; retrying");
            }
            done => return done,
        }
    }
}

async fn record_activity_once(
    db: &DatabaseConnection,
    principal: &Principal,
    input: &NewActivity,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    let note = validate::optional_text("note", input.note.as_deref(), 5000)?;
    let occurred_at = input.occurred_at.unwrap_or(now);
    if occurred_at > now + chrono::Duration::minutes(5) {
        return Err(AppError::invalid(
            "occurred_at",
            "must not be in the future",
        ));
    }
    if input.amount.is_some_and(|a| !a.is_finite()) {
        return Err(AppError::invalid("amount", "must be a number"));
    }
    let txn = begin_write(db).await?;
    let editing = start_editing(&txn, principal, input.lead_id).await?;
    let current = editing.lead.clone();
    let config = tenant_config::get(&editing.scope).await?;
    let signal = config.catalog.signal(&input.signal_key).ok_or_else(|| {
        AppError::invalid(
            "signal_key",
            format!("there is no signal type \"{}\"", input.signal_key),
        )
    })?;
    if signal.retired {
        return Err(AppError::invalid(
            "signal_key",
            format!("the signal type \"{}\" is retired", signal.key),
        ));
    }
    let direction = input.direction.unwrap_or(signal.direction);
    editing
        .scope
        .insert(activity::ActiveModel {
            id: Set(Uuid::now_v7()),
            lead_id: Set(current.id),
            signal_key: Set(signal.key.clone()),
            direction: Set(direction),
            occurred_at: Set(occurred_at),
            note: Set(note),
            amount: Set(input.amount),
            created_by: Set(Some(principal.user_id)),
            created_at: Set(now),
            ..Default::default()
        })
        .await?;

    let mut state = scoring::ActivityState::from_bytes(&current.signal_state).unwrap_or_default();
    let scoring_direction = match direction {
        Direction::Inbound => scoring::Direction::Inbound,
        Direction::Outbound => scoring::Direction::Outbound,
    };
    state.record_as(
        &rescoring::signal_def(signal),
        scoring_direction,
        rescoring::secs(occurred_at),
        input.amount,
    );
    let mut changed = current.clone();
    changed.signal_state = state.to_bytes();
    changed.last_activity_at = current.last_activity_at.max(Some(occurred_at));
    match direction {
        Direction::Inbound => {
            changed.last_inbound_at = current.last_inbound_at.max(Some(occurred_at))
        }
        Direction::Outbound => {
            changed.last_outbound_at = current.last_outbound_at.max(Some(occurred_at))
        }
    }
    // An outbound contact at or after the scheduled time is the follow-up.
    let completes = direction == Direction::Outbound
        && current
            .scheduled_follow_up_at
            .is_some_and(|at| occurred_at >= at);
    if completes {
        changed.scheduled_follow_up_at = None;
        changed.scheduled_follow_up_note = None;
        changed.scheduled_follow_up_by = None;
    }
    let reason = format!("activity: {}", signal.key);
    let saved = editing.save(changed, &reason, now).await?;
    if completes {
        let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
        lead_history(
            &scope,
            current.id,
            "FOLLOW_UP_DONE",
            principal,
            current.scheduled_follow_up_at.map(|at| at.to_rfc3339()),
            Some(signal.key.clone()),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(saved)
}

/// Closes an open lead as won or lost, moving it to the pipeline's won or
/// lost stage; a lost lead may name one of the tenant's lost-reason
/// categories (`reason_category`, a key).
///
/// # Errors
/// BAD_USER_INPUT when already closed, the date is in the future, or the
/// category is not the tenant's or given for a win; NOT_FOUND.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, lead_id = %id, won = won))]
pub async fn close_lead(
    db: &DatabaseConnection,
    principal: &Principal,
    id: LeadId,
    won: bool,
    reason: Option<&str>,
    reason_category: Option<&str>,
    closed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    let reason = validate::optional_text("reason", reason, 500)?;
    if won && reason_category.is_some() {
        return Err(AppError::invalid(
            "reason_category",
            "only a lost lead has a lost-reason category",
        ));
    }
    let closed_at = closed_at.unwrap_or(now);
    if closed_at > now + chrono::Duration::minutes(5) {
        return Err(AppError::invalid("closed_at", "must not be in the future"));
    }
    let txn = begin_write(db).await?;
    let editing = start_editing(&txn, principal, id).await?;
    let current = editing.lead.clone();
    require_open(&current)?;
    // A rep sees the shared pool to pick leads from it, not to close them:
    // closing a lead nobody owns would take it from every other rep.
    require_not_pool_for_rep(
        principal,
        &current,
        "close a lead of the shared pool; assign it to yourself first",
    )?;
    let kind = if won { StageKind::Won } else { StageKind::Lost };
    let config = tenant_config::get(&editing.scope).await?;
    let category = reason_category
        .map(|key| {
            crate::service::configuration::lost_reasons::check(
                &config.tenant,
                "reason_category",
                key,
            )
        })
        .transpose()?;
    let stages = config.stages(current.pipeline_id);
    let stage = stages.iter().find(|s| s.kind == kind).ok_or_else(|| {
        AppError::invalid(
            "outcome",
            "the lead's pipeline has no stage for this outcome",
        )
    })?;
    let from = stages
        .iter()
        .find(|s| s.id == current.stage_id)
        .map(|s| s.key.clone());
    let status = if won {
        LeadStatus::Won
    } else {
        LeadStatus::Lost
    };
    let mut changed = current.clone();
    changed.stage_id = stage.id;
    changed.stage_entered_at = closed_at;
    changed.status = status;
    changed.closed_at = Some(closed_at);
    changed.close_reason = reason;
    changed.close_reason_category = category;
    lead_history(
        &editing.scope,
        current.id,
        "STAGE",
        principal,
        from,
        Some(stage.key.clone()),
        now,
    )
    .await?;
    let outcome = if won { "won" } else { "lost" };
    let saved = editing
        .save(changed, &format!("closed as {outcome}"), now)
        .await?;
    txn.commit().await?;
    Ok(saved)
}

/// The longest reason for a tier pin, in characters.
const MAX_PIN_REASON: usize = 500;

/// The fields of `PinLeadTierInput`.
pub struct NewTierPin {
    pub id: LeadId,
    pub tier: String,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Pins an open lead's tier, with a reason and an optional expiry. The
/// score is still computed as ever; only the tier (and with it the
/// follow-up cadence) is held until the pin expires or is removed. Audited.
///
/// # Errors
/// BAD_USER_INPUT for a tier the lead's model lacks, an empty or long
/// reason, an expiry not in the future or a closed lead; FORBIDDEN for a
/// rep (see [`require_may_pin`]); NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, lead_id = %input.id, tier = %input.tier))]
pub async fn pin_lead_tier(
    db: &DatabaseConnection,
    principal: &Principal,
    input: NewTierPin,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    let reason = validate::required_text("reason", &input.reason, MAX_PIN_REASON)?;
    if input.expires_at.is_some_and(|at| at <= now) {
        return Err(AppError::invalid("expires_at", "must be in the future"));
    }
    let tier = input.tier.trim();
    let txn = begin_write(db).await?;
    let editing = start_editing(&txn, principal, input.id).await?;
    // Saving consumes the editing; history and audit follow in the same
    // transaction.
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = editing.lead.clone();
    require_may_pin(&scope, principal, &current).await?;
    require_open(&current)?;
    let model = tenant_config::get(&scope).await?.model(current.team_id)?;
    let tiers = &model.compiled.config().tiers;
    if !tiers.iter().any(|t| t.key == tier) {
        let keys: Vec<&str> = tiers.iter().map(|t| t.key.as_str()).collect();
        return Err(AppError::invalid(
            "tier",
            format!(
                "the lead's scoring model has no tier \"{tier}\"; its tiers are {}",
                keys.join(", ")
            ),
        ));
    }
    let pinner = account::me(&scope, principal).await?;

    let mut changed = current.clone();
    changed.pinned_tier = Some(tier.to_owned());
    changed.pin_reason = Some(reason.clone());
    changed.pin_expires_at = input.expires_at;
    changed.pinned_by = Some(principal.user_id);
    let why = format!("tier pinned to {tier} by {}: {reason}", pinner.display_name);
    let saved = editing.save(changed, &why, now).await?;
    lead_history(
        &scope,
        current.id,
        "PIN",
        principal,
        Some(current.tier.clone()),
        Some(saved.tier.clone()),
        now,
    )
    .await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "lead.tier_pinned",
            entity: "lead",
            entity_id: Some(current.id.into()),
            before: pin_of(&current),
            after: pin_of(&saved),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

/// Longest note of a scheduled follow-up.
const MAX_FOLLOW_UP_NOTE: usize = 500;

/// A follow-up to schedule: when, and why.
pub struct NewScheduledFollowUp {
    pub lead_id: LeadId,
    pub at: DateTime<Utc>,
    pub note: Option<String>,
}

/// Schedules a follow-up of an open lead ("call back after the tender on
/// the 15th"): the lead is due at the earlier of its cadence and `at`,
/// until an outbound contact at or after `at` completes it. Replaces any
/// earlier schedule; recorded in the lead's history.
///
/// # Errors
/// BAD_USER_INPUT for a time not in the future or a long note; FORBIDDEN
/// for a REP and a lead of the shared pool; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, lead_id = %input.lead_id))]
pub async fn schedule_follow_up(
    db: &DatabaseConnection,
    principal: &Principal,
    input: NewScheduledFollowUp,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    if input.at <= now {
        return Err(AppError::invalid("at", "must be in the future"));
    }
    let note = validate::optional_text("note", input.note.as_deref(), MAX_FOLLOW_UP_NOTE)?;
    let txn = begin_write(db).await?;
    let editing = start_editing(&txn, principal, input.lead_id).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = editing.lead.clone();
    require_open(&current)?;
    require_not_pool_for_rep(
        principal,
        &current,
        "schedule a follow-up of a lead of the shared pool; assign it to yourself first",
    )?;
    let mut changed = current.clone();
    changed.scheduled_follow_up_at = Some(input.at);
    changed.scheduled_follow_up_note = note;
    changed.scheduled_follow_up_by = Some(principal.user_id);
    let saved = editing.save(changed, "follow-up scheduled", now).await?;
    lead_history(
        &scope,
        current.id,
        "FOLLOW_UP_SCHEDULED",
        principal,
        current.scheduled_follow_up_at.map(|at| at.to_rfc3339()),
        Some(input.at.to_rfc3339()),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

/// Clears a lead's scheduled follow-up; its cadence alone says when it is
/// due again. Clearing a lead without one changes nothing.
///
/// # Errors
/// FORBIDDEN for a REP and a lead of the shared pool; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, lead_id = %lead_id))]
pub async fn clear_scheduled_follow_up(
    db: &DatabaseConnection,
    principal: &Principal,
    lead_id: LeadId,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    let txn = begin_write(db).await?;
    let editing = start_editing(&txn, principal, lead_id).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = editing.lead.clone();
    require_not_pool_for_rep(
        principal,
        &current,
        "clear the follow-up of a lead of the shared pool; assign it to yourself first",
    )?;
    let Some(was) = current.scheduled_follow_up_at else {
        return Ok(current);
    };
    let mut changed = current.clone();
    changed.scheduled_follow_up_at = None;
    changed.scheduled_follow_up_note = None;
    changed.scheduled_follow_up_by = None;
    let saved = editing
        .save(changed, "scheduled follow-up cleared", now)
        .await?;
    lead_history(
        &scope,
        current.id,
        "FOLLOW_UP_CLEARED",
        principal,
        Some(was.to_rfc3339()),
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

/// A REP works the shared pool's leads by taking them first: changing one
/// nobody owns would act for every other rep. `action` says what was
/// refused.
fn require_not_pool_for_rep(
    principal: &Principal,
    lead: &lead::Model,
    action: &'static str,
) -> AppResult<()> {
    if principal.role == Role::Rep && lead.owner_id.is_none() {
        return Err(AppError::Forbidden { action });
    }
    Ok(())
}

/// Removes a lead's tier pin (expired or not), so its tier is the model's
/// again. A lead without a pin is answered as it is. Audited.
///
/// # Errors
/// FORBIDDEN as for [`pin_lead_tier`]; NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, lead_id = %id))]
pub async fn unpin_lead_tier(
    db: &DatabaseConnection,
    principal: &Principal,
    id: LeadId,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    let txn = begin_write(db).await?;
    let editing = start_editing(&txn, principal, id).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = editing.lead.clone();
    require_may_pin(&scope, principal, &current).await?;
    if current.pinned_tier.is_none() {
        return Ok(current);
    }
    let unpinner = account::me(&scope, principal).await?;
    let mut changed = current.clone();
    changed.pinned_tier = None;
    changed.pin_reason = None;
    changed.pin_expires_at = None;
    changed.pinned_by = None;
    let why = format!("tier pin removed by {}", unpinner.display_name);
    let saved = editing.save(changed, &why, now).await?;
    lead_history(
        &scope,
        current.id,
        "UNPIN",
        principal,
        Some(current.tier.clone()),
        Some(saved.tier.clone()),
        now,
    )
    .await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "lead.tier_unpinned",
            entity: "lead",
            entity_id: Some(current.id.into()),
            before: pin_of(&current),
            after: None,
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(saved)
}

/// Who may pin or unpin a lead's tier: OWNER, ADMIN and MANAGER any lead
/// they can see (the caller has loaded it through visibility already); a
/// REP only a lead they own, and only when the tenant allows reps to.
///
/// # Errors
/// FORBIDDEN; database errors.
async fn require_may_pin<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    principal: &Principal,
    lead: &lead::Model,
) -> AppResult<()> {
    match principal.role {
        Role::Owner | Role::Admin | Role::Manager => Ok(()),
        Role::Rep => {
            if !tenant_config::get(scope).await?.tenant.reps_may_pin {
                return Err(AppError::Forbidden {
                    action: "pin lead tiers; your company lets only managers do it",
                });
            }
            if lead.owner_id != Some(principal.user_id) {
                return Err(AppError::Forbidden {
                    action: "pin the tier of a lead you do not own",
                });
            }
            Ok(())
        }
    }
}

/// A lead's pin as the audit log keeps it; none without one.
fn pin_of(lead: &lead::Model) -> Option<Value> {
    lead.pinned_tier.as_ref().map(|tier| {
        json!({
            "tier": tier,
            "reason": lead.pin_reason,
            "expiresAt": lead.pin_expires_at,
            "pinnedBy": lead.pinned_by,
        })
    })
}

/// The stage of the lead's pipeline with `key`, or BAD_USER_INPUT on
/// `input.stageKey`.
fn stage_named<'s>(stages: &'s [stage::Model], key: &str) -> AppResult<&'s stage::Model> {
    stages.iter().find(|s| s.key == key).ok_or_else(|| {
        AppError::invalid("stage_key", format!("the pipeline has no stage \"{key}\""))
    })
}

/// Reopens a lead: a LOST lead comes back into an open stage before the
/// sale (re-engagement), as an open lead; a WON customer starts a renewal
/// in a post-sale stage and stays WON, so training and reports keep the
/// sale. Either way the history (REOPENED or RENEWAL, with the reason)
/// and the score history record it. Who may do it is who may edit the
/// lead; a rep must own it.
///
/// # Errors
/// BAD_USER_INPUT for an empty reason (`input.reason`), a stage the
/// pipeline lacks or one that does not fit the lead (`input.stageKey`), or
/// an open lead (`input.id`); FORBIDDEN for a rep and a pool lead;
/// NOT_FOUND.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, lead_id = %id, stage_key = %stage_key))]
pub async fn reopen_lead(
    db: &DatabaseConnection,
    principal: &Principal,
    id: LeadId,
    stage_key: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<lead::Model> {
    let reason = validate::required_text("reason", reason, 500)?;
    let txn = begin_write(db).await?;
    let editing = start_editing(&txn, principal, id).await?;
    let current = editing.lead.clone();
    require_not_pool_for_rep(
        principal,
        &current,
        "reopen a lead of the shared pool; assign it to yourself first",
    )?;
    let config = tenant_config::get(&editing.scope).await?;
    let stages = config.stages(current.pipeline_id);
    let stage = stage_named(stages, stage_key)?;
    let mut changed = current.clone();
    let kind = match current.status {
        LeadStatus::Lost => {
            if stage.kind != StageKind::Open || stage.post_sale {
                return Err(AppError::invalid(
                    "stage_key",
                    "a lost lead is reopened into an open stage before the sale",
                ));
            }
            changed.status = LeadStatus::Open;
            changed.closed_at = None;
            changed.close_reason = None;
            changed.close_reason_category = None;
            "REOPENED"
        }
        LeadStatus::Won => {
            if !stage.post_sale {
                return Err(AppError::invalid(
                    "stage_key",
                    "a won customer's renewal starts in a post-sale stage",
                ));
            }
            "RENEWAL"
        }
        LeadStatus::Open => {
            return Err(AppError::invalid(
                "id",
                "the lead is open; only a lost lead or a won customer can be reopened",
            ));
        }
    };
    let from = stages
        .iter()
        .find(|s| s.id == current.stage_id)
        .map(|s| s.key.clone());
    changed.stage_id = stage.id;
    changed.stage_entered_at = now;
    editing
        .scope
        .insert(lead_event::ActiveModel {
            id: Set(Uuid::now_v7()),
            lead_id: Set(current.id),
            kind: Set(kind.to_owned()),
            actor_id: Set(Some(principal.user_id)),
            at: Set(now),
            from_value: Set(from),
            to_value: Set(Some(stage.key.clone())),
            data: Set(Some(json!({ "reason": reason }))),
            ..Default::default()
        })
        .await?;
    let why = match kind {
        "REOPENED" => format!("reopened: {reason}"),
        _ => format!("renewal: {reason}"),
    };
    let saved = editing.save_recorded(changed, &why, now).await?;
    txn.commit().await?;
    Ok(saved)
}

fn require_open(lead: &lead::Model) -> AppResult<()> {
    if lead.status == LeadStatus::Open {
        Ok(())
    } else {
        Err(AppError::invalid("id", "the lead is already closed"))
    }
}

async fn lead_history<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    lead: LeadId,
    kind: &str,
    principal: &Principal,
    from: Option<String>,
    to: Option<String>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    scope
        .insert(lead_event::ActiveModel {
            id: Set(Uuid::now_v7()),
            lead_id: Set(lead),
            kind: Set(kind.to_owned()),
            actor_id: Set(Some(principal.user_id)),
            at: Set(now),
            from_value: Set(from),
            to_value: Set(to),
            data: Set(None),
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// A lead's newest activities.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id(), lead_id = %lead))]
pub async fn activities<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    lead: LeadId,
    first: u64,
) -> AppResult<Vec<activity::Model>> {
    Ok(scope
        .select::<activity::Entity>()
        .filter(activity::Column::LeadId.eq(lead))
        .order_by_desc(activity::Column::OccurredAt)
        .order_by_desc(activity::Column::Id)
        .limit(first)
        .all(scope.conn())
        .await?)
}

/// A lead's newest score events.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id(), lead_id = %lead))]
pub async fn score_history<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    lead: LeadId,
    first: u64,
) -> AppResult<Vec<entity::score_event::Model>> {
    use entity::score_event;
    Ok(scope
        .select::<score_event::Entity>()
        .filter(score_event::Column::LeadId.eq(lead))
        .order_by_desc(score_event::Column::At)
        .order_by_desc(score_event::Column::Id)
        .limit(first)
        .all(scope.conn())
        .await?)
}

/// A lead's newest lifecycle events: stage moves, assignments, closes, pins.
///
/// # Errors
/// Database errors.
#[tracing::instrument(level = "debug", skip_all, fields(tenant_id = %scope.tenant_id(), lead_id = %lead))]
pub async fn lead_events<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    lead: LeadId,
    first: u64,
) -> AppResult<Vec<lead_event::Model>> {
    Ok(scope
        .select::<lead_event::Entity>()
        .filter(lead_event::Column::LeadId.eq(lead))
        .order_by_desc(lead_event::Column::At)
        .order_by_desc(lead_event::Column::Id)
        .limit(first)
        .all(scope.conn())
        .await?)
}
