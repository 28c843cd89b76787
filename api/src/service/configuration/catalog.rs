//! Changing the tenant's catalog: signal types and lead fields. A change
//! may not break the active scoring models, which refer to both by key,
//! nor strand lead attributes: a field's type stays while leads hold a
//! value for it, and an option stays while leads use it.

use chrono::{DateTime, Utc};
use entity::{
    enums::{Direction, FieldType, ModelStatus},
    lead, lead_field, scoring_model, signal_type,
};
use scoring::{Catalog, FieldDef, ModelConfig};
use sea_orm::{
    ActiveEnum, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::service::{
    accounts::audit,
    begin_write,
    configuration::tenant_config,
    leads::rescoring::{self, TenantCatalog},
    validate,
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// Largest number of signal points, either way.
const MAX_POINTS: f64 = 1000.0;
/// Longest half-life, in days.
const MAX_HALF_LIFE_DAYS: f64 = 3650.0;
/// Most options a CATEGORY field may have.
const MAX_OPTIONS: usize = 200;
/// Leads read per query when counting attribute values.
const SCAN_PAGE: u64 = 1000;

/// The fields of `SignalTypeInput`.
pub struct SignalTypeSpec {
    pub key: String,
    pub label: String,
    /// Engagement points of one fresh occurrence; negative lowers it.
    pub points: f64,
    pub half_life_days: f64,
    pub urgent: bool,
    pub direction: Direction,
    pub retired: bool,
}

/// The fields of `LeadFieldInput`.
pub struct LeadFieldSpec {
    pub key: String,
    pub label: String,
    pub field_type: FieldType,
    pub options: Option<Vec<String>>,
    pub required: bool,
}

/// Creates the signal type with `key`, or changes it. A retired type keeps
/// its past activities readable and takes no new ones. Leads are not
/// re-scored here: a lead's next change or the nightly job applies new
/// points.
///
/// # Errors
/// FORBIDDEN below ADMIN; BAD_USER_INPUT naming the field, also when an
/// active scoring model would no longer work.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, signal_key = %spec.key))]
pub async fn upsert_signal_type(
    db: &DatabaseConnection,
    principal: &Principal,
    spec: SignalTypeSpec,
    now: DateTime<Utc>,
) -> AppResult<signal_type::Model> {
    principal.require_admin("change signal types")?;
    let key = validate::key("key", &spec.key)?;
    let label = validate::required_text("label", &spec.label, 200)?;
    if !(spec.points.is_finite() && spec.points.abs() <= MAX_POINTS) {
        return Err(AppError::invalid(
            "points",
            format!("must be a number from -{MAX_POINTS} to {MAX_POINTS}"),
        ));
    }
    if !(spec.half_life_days.is_finite()
        && spec.half_life_days > 0.0
        && spec.half_life_days <= MAX_HALF_LIFE_DAYS)
    {
        return Err(AppError::invalid(
            "half_life_days",
            format!("must be more than 0 and at most {MAX_HALF_LIFE_DAYS} days"),
        ));
    }

    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = TenantCatalog::load(&scope).await?;
    let existing = current.signal(&key).cloned();
    let changed = signal_type::Model {
        tenant_id: principal.tenant_id,
        id: existing.as_ref().map_or_else(Uuid::now_v7, |s| s.id),
        key,
        label,
        points: spec.points,
        half_life_days: spec.half_life_days,
        urgent: spec.urgent,
        direction: spec.direction,
        retired: spec.retired,
        created_at: existing.as_ref().map_or(now, |s| s.created_at),
        updated_at: existing.as_ref().map_or(now, |s| s.updated_at),
    };
    if existing.as_ref() == Some(&changed) {
        return Ok(changed);
    }
    let mut catalog = current.catalog.clone();
    let def = rescoring::signal_def(&changed);
    match catalog.signals.iter_mut().find(|s| s.key == def.key) {
        Some(slot) => *slot = def,
        None => catalog.signals.push(def),
    }
    let field = if spec.retired && existing.as_ref().is_some_and(|s| !s.retired) {
        "retired"
    } else {
        "key"
    };
    require_models_fit(&scope, &current.catalog, &catalog, field).await?;

    let saved = match &existing {
        Some(existing) => {
            let mut row = existing.clone().into_active_model();
            row.label = Set(changed.label.clone());
            row.points = Set(changed.points);
            row.half_life_days = Set(changed.half_life_days);
            row.urgent = Set(changed.urgent);
            row.direction = Set(changed.direction);
            row.retired = Set(changed.retired);
            row.updated_at = Set(now);
            scope.update(row).await?
        }
        None => scope.insert(changed.into_active_model()).await?,
    };
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "signal_type.upserted",
            entity: "signal_type",
            entity_id: Some(saved.id),
            before: existing.as_ref().map(signal_snapshot),
            after: Some(signal_snapshot(&saved)),
        },
        now,
    )
    .await?;
    tenant_config::commit_change(txn, principal.tenant_id, now).await?;
    Ok(saved)
}

fn signal_snapshot(s: &signal_type::Model) -> Value {
    json!({
        "key": s.key,
        "label": s.label,
        "points": s.points,
        "halfLifeDays": s.half_life_days,
        "urgent": s.urgent,
        "direction": s.direction.to_value(),
        "retired": s.retired,
    })
}

/// Creates the lead field with `key`, or changes it. Its type may change
/// only while no lead holds a value for it, an option may go only while no
/// lead uses it, and it may become required only once every lead has a
/// value. Those checks read every lead's attributes of the tenant (a page
/// at a time, in Rust, so it works alike on SQLite and PostgreSQL): cheap
/// for thousands of leads, seconds for millions, and only when such a
/// change is asked for.
///
/// # Errors
/// FORBIDDEN below ADMIN; BAD_USER_INPUT naming the field, with the number
/// of leads in the way, or when an active scoring model would no longer
/// work.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, field_key = %spec.key))]
pub async fn upsert_lead_field(
    db: &DatabaseConnection,
    principal: &Principal,
    spec: LeadFieldSpec,
    now: DateTime<Utc>,
) -> AppResult<lead_field::Model> {
    principal.require_admin("change lead fields")?;
    let key = validate::key("key", &spec.key)?;
    let label = validate::required_text("label", &spec.label, 200)?;
    let options = check_options(spec.field_type, spec.options.unwrap_or_default())?;

    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = TenantCatalog::load(&scope).await?;
    let existing = current.fields.iter().find(|f| f.key == key).cloned();
    let changed = lead_field::Model {
        tenant_id: principal.tenant_id,
        id: existing.as_ref().map_or_else(Uuid::now_v7, |f| f.id),
        key: key.clone(),
        label,
        field_type: spec.field_type,
        options: json!(options),
        required: spec.required,
        position: existing.as_ref().map_or_else(
            || {
                current
                    .fields
                    .iter()
                    .map(|f| f.position + 1)
                    .max()
                    .unwrap_or(0)
            },
            |f| f.position,
        ),
        created_at: existing.as_ref().map_or(now, |f| f.created_at),
        updated_at: existing.as_ref().map_or(now, |f| f.updated_at),
    };
    if existing.as_ref() == Some(&changed) {
        return Ok(changed);
    }
    refuse_stranded_values(&scope, existing.as_ref(), &changed).await?;
    let mut catalog = current.catalog.clone();
    let def = FieldDef {
        key: key.clone(),
        field_type: scoring_field_type(spec.field_type),
        options,
    };
    match catalog.fields.iter_mut().find(|f| f.key == key) {
        Some(slot) => *slot = def,
        None => catalog.fields.push(def),
    }
    let field = if existing
        .as_ref()
        .is_some_and(|f| f.field_type != spec.field_type)
    {
        "type"
    } else {
        "options"
    };
    require_models_fit(&scope, &current.catalog, &catalog, field).await?;

    let saved = match &existing {
        Some(existing) => {
            let mut row = existing.clone().into_active_model();
            row.label = Set(changed.label.clone());
            row.field_type = Set(changed.field_type);
            row.options = Set(changed.options.clone());
            row.required = Set(changed.required);
            row.updated_at = Set(now);
            scope.update(row).await?
        }
        None => scope.insert(changed.into_active_model()).await?,
    };
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "lead_field.upserted",
            entity: "lead_field",
            entity_id: Some(saved.id),
            before: existing.as_ref().map(field_snapshot),
            after: Some(field_snapshot(&saved)),
        },
        now,
    )
    .await?;
    tenant_config::commit_change(txn, principal.tenant_id, now).await?;
    Ok(saved)
}

fn field_snapshot(f: &lead_field::Model) -> Value {
    json!({
        "key": f.key,
        "label": f.label,
        "type": f.field_type.to_value(),
        "options": f.options,
        "required": f.required,
    })
}

fn scoring_field_type(field_type: FieldType) -> scoring::FieldType {
    match field_type {
        FieldType::Rating => scoring::FieldType::Rating,
        FieldType::Category => scoring::FieldType::Category,
        FieldType::Number => scoring::FieldType::Number,
        FieldType::Boolean => scoring::FieldType::Boolean,
        FieldType::Text => scoring::FieldType::Text,
        FieldType::Date => scoring::FieldType::Date,
    }
}

/// A CATEGORY field's options: trimmed, unique, at least one. Other types
/// have none.
fn check_options(field_type: FieldType, options: Vec<String>) -> AppResult<Vec<String>> {
    if field_type != FieldType::Category {
        if options.is_empty() {
            return Ok(options);
        }
        return Err(AppError::invalid(
            "options",
            "only a CATEGORY field has options",
        ));
    }
    if options.is_empty() {
        return Err(AppError::invalid(
            "options",
            "a CATEGORY field needs at least one option",
        ));
    }
    if options.len() > MAX_OPTIONS {
        return Err(AppError::invalid(
            "options",
            format!("a field has at most {MAX_OPTIONS} options"),
        ));
    }
    let mut checked: Vec<String> = Vec::with_capacity(options.len());
    for (i, option) in options.iter().enumerate() {
        let path = format!("options[{i}]");
        let option = validate::required_text(&path, option, 100)?;
        if checked.contains(&option) {
            return Err(AppError::invalid(
                path,
                format!("\"{option}\" is listed twice"),
            ));
        }
        checked.push(option);
    }
    Ok(checked)
}

/// Refuses a field change that leaves leads with values the field no
/// longer allows, or without a value it now requires, with their number.
async fn refuse_stranded_values<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    existing: Option<&lead_field::Model>,
    changed: &lead_field::Model,
) -> AppResult<()> {
    let key = changed.key.as_str();
    if let Some(existing) = existing {
        if existing.field_type != changed.field_type {
            let n = count_leads(scope, key, |v| v.is_some_and(|v| !v.is_null())).await?;
            if n > 0 {
                return Err(AppError::invalid(
                    "type",
                    format!(
                        "{n} leads have a value for \"{key}\", so its type stays {}; clear those values first, or add a new field",
                        existing.field_type.to_value()
                    ),
                ));
            }
        }
        let removed: Vec<String> = options_of(existing)
            .into_iter()
            .filter(|o| !options_of(changed).contains(o))
            .collect();
        if existing.field_type == FieldType::Category
            && changed.field_type == FieldType::Category
            && !removed.is_empty()
        {
            let n = count_leads(scope, key, |v| {
                v.and_then(Value::as_str)
                    .is_some_and(|v| removed.iter().any(|o| o == v))
            })
            .await?;
            if n > 0 {
                return Err(AppError::invalid(
                    "options",
                    format!(
                        "{n} leads have \"{key}\" set to {}, which this change removes; change those leads first",
                        removed
                            .iter()
                            .map(|o| format!("\"{o}\""))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                ));
            }
        }
    }
    if changed.required && !existing.is_some_and(|f| f.required) {
        let n = count_leads(scope, key, |v| v.is_none_or(Value::is_null)).await?;
        if n > 0 {
            return Err(AppError::invalid(
                "required",
                format!(
                    "{n} leads have no value for \"{key}\"; give them one before making it required"
                ),
            ));
        }
    }
    Ok(())
}

fn options_of(field: &lead_field::Model) -> Vec<String> {
    serde_json::from_value(field.options.clone()).unwrap_or_default()
}

/// How many of the tenant's leads have an `attributes[key]` that `counts`
/// (given the value, or `None` when absent). Reads the attributes a page at
/// a time: JSON operators differ between SQLite and PostgreSQL.
async fn count_leads<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    key: &str,
    counts: impl Fn(Option<&Value>) -> bool,
) -> AppResult<u64> {
    let mut n = 0;
    let mut after: Option<Uuid> = None;
    loop {
        let mut query = scope
            .select::<lead::Entity>()
            .select_only()
            .column(lead::Column::Id)
            .column(lead::Column::Attributes);
        if let Some(after) = after {
            query = query.filter(lead::Column::Id.gt(after));
        }
        let page: Vec<(Uuid, Value)> = query
            .order_by_asc(lead::Column::Id)
            .limit(SCAN_PAGE)
            .into_tuple()
            .all(scope.conn())
            .await?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = Some(*last);
        n += page
            .iter()
            .filter(|(_, attributes)| counts(attributes.get(key)))
            .count() as u64;
    }
    Ok(n)
}

/// Refuses a catalog change when an active scoring model that works with
/// the tenant's catalog now would not work with `after`. The error names
/// `field` and the model, with what would break.
pub(crate) async fn require_models_fit<C: ConnectionTrait>(
    scope: &TenantScope<'_, C>,
    before: &Catalog,
    after: &Catalog,
    field: &str,
) -> AppResult<()> {
    let active = scope
        .select::<scoring_model::Entity>()
        .filter(scoring_model::Column::Status.eq(ModelStatus::Active))
        .all(scope.conn())
        .await?;
    for model in &active {
        let fits = |catalog: &Catalog| {
            ModelConfig::parse(&model.config, catalog).and_then(|c| c.compile(catalog).map(drop))
        };
        // A model that is broken already is not this change's doing.
        if fits(before).is_err() {
            continue;
        }
        if let Err(errors) = fits(after) {
            return Err(AppError::invalid(
                field,
                format!(
                    "the active scoring model \"{}\" (version {}) would no longer work: {}; change the model first",
                    model.name,
                    model.version,
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ));
        }
    }
    Ok(())
}
