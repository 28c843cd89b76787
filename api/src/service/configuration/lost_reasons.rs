//! Why deals are lost, as categories a tenant keeps: `closeLead` names
//! one for a LOST lead, and the analytics count them. A tenant starts with
//! the defaults in its locale (price, competitor, no budget, no decision,
//! timing, no response); OWNER and ADMIN edit the list, audited.

use chrono::{DateTime, Utc};
use entity::tenant;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::service::{
    accounts::account, accounts::audit, begin_write, configuration::tenant_config, validate,
};
use crate::{
    auth::Principal,
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// Most categories a tenant may keep.
pub const MAX_CATEGORIES: usize = 50;

/// One lost-reason category: a stable key and the label people read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostReasonCategory {
    pub key: String,
    pub label: String,
}

/// The default categories: key, English label, Chinese label.
const DEFAULTS: [(&str, &str, &str); 6] = [
    ("price", "Price", "价格"),
    ("competitor", "Competitor", "竞争对手"),
    ("no_budget", "No budget", "没有预算"),
    ("no_decision", "No decision", "未做决定"),
    ("timing", "Timing", "时机不对"),
    ("no_response", "No response", "没有回应"),
];

/// The default categories in `locale` (`en` or `zh-CN`).
#[must_use]
pub fn defaults(locale: &str) -> Vec<LostReasonCategory> {
    DEFAULTS
        .iter()
        .map(|(key, en, zh)| LostReasonCategory {
            key: (*key).to_owned(),
            label: (if locale == "zh-CN" { zh } else { en }).to_string(),
        })
        .collect()
}

/// The tenant's categories: its own list once edited, else the defaults
/// in its locale.
#[must_use]
pub fn of_tenant(tenant: &tenant::Model) -> Vec<LostReasonCategory> {
    tenant
        .lost_reason_categories
        .as_ref()
        .and_then(|v| serde_json::from_value::<Vec<LostReasonCategory>>(v.clone()).ok())
        .unwrap_or_else(|| defaults(&tenant.locale))
}

/// Checks `key` against the tenant's categories, for `closeLead`'s
/// `reasonCategory` (reported on `field`).
///
/// # Errors
/// BAD_USER_INPUT naming `field` and the keys allowed.
pub fn check(tenant: &tenant::Model, field: &str, key: &str) -> AppResult<String> {
    let categories = of_tenant(tenant);
    match categories.iter().find(|c| c.key == key.trim()) {
        Some(c) => Ok(c.key.clone()),
        None => Err(AppError::invalid(
            field,
            format!(
                "\"{key}\" is not one of your lost-reason categories: {}",
                categories
                    .iter()
                    .map(|c| c.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Replaces the tenant's categories with `categories`, in order; audited
/// with the list before and after. Leads keep the key they were closed
/// with, even when it leaves the list.
///
/// # Errors
/// FORBIDDEN below ADMIN; BAD_USER_INPUT on `input.categories` (empty, too
/// many) or `input.categories[i].key` / `.label` (bad, repeated).
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant_id, categories = categories.len()))]
pub async fn set_lost_reason_categories(
    db: &DatabaseConnection,
    principal: &Principal,
    categories: Vec<LostReasonCategory>,
    now: DateTime<Utc>,
) -> AppResult<Vec<LostReasonCategory>> {
    principal.require_admin("change the lost-reason categories")?;
    if categories.is_empty() || categories.len() > MAX_CATEGORIES {
        return Err(AppError::invalid(
            "categories",
            format!("give from 1 to {MAX_CATEGORIES} categories"),
        ));
    }
    let mut checked: Vec<LostReasonCategory> = Vec::with_capacity(categories.len());
    for (i, c) in categories.into_iter().enumerate() {
        let key = validate::key(&format!("categories[{i}].key"), &c.key)?;
        if let Some(j) = checked.iter().position(|k| k.key == key) {
            return Err(AppError::invalid(
                format!("categories[{i}].key"),
                format!("the key \"{key}\" is already used by categories[{j}]"),
            ));
        }
        let label = validate::required_text(&format!("categories[{i}].label"), &c.label, 100)?;
        checked.push(LostReasonCategory { key, label });
    }
    let txn = begin_write(db).await?;
    let scope = TenantScope::enter(&txn, principal.tenant_id).await?;
    let current = account::get_tenant(&scope).await?;
    let before = of_tenant(&current);
    let value = serde_json::to_value(&checked).map_err(|e| AppError::Internal(e.into()))?;
    // The tenants table is the one table without `tenant_id`: the row is
    // the caller's tenant itself, addressed by the principal's tenant id.
    let mut row: tenant::ActiveModel = current.clone().into();
    row.lost_reason_categories = Set(Some(value.clone()));
    row.updated_at = Set(now);
    tenant::Entity::update(row).exec(&txn).await?;
    audit::record(
        &scope,
        audit::Change {
            actor: Some(principal.user_id),
            action: "tenant.lost_reason_categories_updated",
            entity: "tenant",
            entity_id: Some(current.id),
            before: Some(json!(before)),
            after: Some(value),
        },
        now,
    )
    .await?;
    tenant_config::commit_change(txn, principal.tenant_id, now).await?;
    Ok(checked)
}
