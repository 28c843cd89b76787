//! A lead's custom field values (`attributes`): how a typed value, a
//! text cell or a rule's value becomes what a field holds. Below both the
//! lead mutations and the assignment rules, which each check values the
//! same way.

use entity::{enums::FieldType, lead_field};
use serde_json::{Map, Value, json};

use crate::error::{AppError, AppResult};

/// The longest TEXT attribute, in characters.
const MAX_TEXT_ATTRIBUTE: usize = 2000;

/// Checks `changes` against the tenant's lead fields and merges them into
/// `existing`; `null` removes a key. Every problem names
/// `input.attributes.<key>`.
///
/// # Errors
/// BAD_USER_INPUT for unknown keys, wrong types, ratings outside 1–5,
/// options not in the list and missing required fields.
pub fn merge_attributes(
    fields: &[lead_field::Model],
    existing: &Value,
    changes: Option<&Value>,
) -> AppResult<Value> {
    let mut merged: Map<String, Value> = existing.as_object().cloned().unwrap_or_default();
    if let Some(changes) = changes {
        let Some(changes) = changes.as_object() else {
            return Err(AppError::invalid(
                "attributes",
                "must be an object of field key to value",
            ));
        };
        for (key, value) in changes {
            let path = format!("attributes.{key}");
            let Some(field) = fields.iter().find(|f| &f.key == key) else {
                return Err(AppError::invalid(
                    path,
                    format!("there is no lead field \"{key}\""),
                ));
            };
            if value.is_null() {
                merged.remove(key);
                continue;
            }
            merged.insert(key.clone(), check_attribute(field, value, &path)?);
        }
    }
    if let Some(missing) = fields
        .iter()
        .find(|f| f.required && !merged.contains_key(&f.key))
    {
        return Err(AppError::invalid(
            format!("attributes.{}", missing.key),
            "is required",
        ));
    }
    Ok(Value::Object(merged))
}

/// What a DATE field value must look like.
pub(crate) const DATE_FORMAT: &str = "must be a date such as 2026-12-15 (YYYY-MM-DD)";

/// A DATE field's value as stored: `YYYY-MM-DD`, from that or from an
/// RFC 3339 time (its date, as written); `None` unless it is a real date.
pub(crate) fn date_attribute(value: &str) -> Option<String> {
    let value = value.trim();
    scoring::parse_date(value)?;
    value.get(..10).map(str::to_owned)
}

/// A text value (an import cell, an assignment rule's value) as the JSON
/// value a lead field holds.
pub(crate) fn cell_value(field: &lead_field::Model, value: &str) -> Result<Value, String> {
    match field.field_type {
        FieldType::Rating | FieldType::Number => value
            .parse::<f64>()
            .map(|n| json!(n))
            .map_err(|_| "must be a number".to_owned()),
        FieldType::Boolean => match value.to_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "0" => Ok(Value::Bool(false)),
            _ => Err("must be true or false".into()),
        },
        FieldType::Category | FieldType::Text => Ok(json!(value)),
        FieldType::Date => date_attribute(value)
            .map(Value::String)
            .ok_or_else(|| DATE_FORMAT.to_owned()),
    }
}

pub(crate) fn check_attribute(
    field: &lead_field::Model,
    value: &Value,
    path: &str,
) -> AppResult<Value> {
    match field.field_type {
        FieldType::Rating => match value.as_f64() {
            Some(r) if (1.0..=5.0).contains(&r) && r.fract() == 0.0 => Ok(json!(r as i64)),
            _ => Err(AppError::invalid(
                path,
                "must be a whole-number rating from 1 to 5",
            )),
        },
        FieldType::Number => match value.as_f64() {
            Some(n) if n.is_finite() => Ok(json!(n)),
            _ => Err(AppError::invalid(path, "must be a number")),
        },
        FieldType::Boolean => value
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| AppError::invalid(path, "must be true or false")),
        FieldType::Category => {
            let options: Vec<String> =
                serde_json::from_value(field.options.clone()).unwrap_or_default();
            match value.as_str() {
                Some(v) if options.iter().any(|o| o == v) => Ok(json!(v)),
                _ => Err(AppError::invalid(
                    path,
                    format!("must be one of: {}", options.join(", ")),
                )),
            }
        }
        FieldType::Date => date_attribute(value.as_str().unwrap_or_default())
            .map(Value::String)
            .ok_or_else(|| AppError::invalid(path, DATE_FORMAT)),
        FieldType::Text => match value.as_str() {
            Some(v) if v.chars().count() <= MAX_TEXT_ATTRIBUTE => Ok(json!(v.trim())),
            Some(_) => Err(AppError::invalid(
                path,
                format!("must be at most {MAX_TEXT_ATTRIBUTE} characters"),
            )),
            None => Err(AppError::invalid(path, "must be text")),
        },
    }
}
