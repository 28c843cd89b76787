//! Multi-row inserts for loaders that write thousands of rows at a time
//! (the demo loader, CSV import), where one statement per row would take
//! minutes.

use sea_orm::{
    ActiveModelTrait, ActiveValue, DbBackend, EntityName, EntityTrait, IdenStatic, Iterable,
    QueryTrait, Statement, Value,
};

/// Bound parameters per statement. SQLite allows 32,766, but the driver
/// looks each parameter's name up while binding (`sqlite3_bind_parameter_name`,
/// a scan of the statement's parameter list), so binding costs grow with the
/// square of their number: statements that large spent a sixth of an import
/// binding, and 4,000 made a 20,000-row import twice as fast (1,000 made the
/// demo loader slower again). PostgreSQL has no such cost, and there the
/// round trips of smaller statements made a 100,000-row import twice as
/// slow, so it keeps large ones.
fn max_bound_parameters(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Sqlite => 4_000,
        _ => 32_766,
    }
}

/// How many rows of `A` one multi-row insert takes on `backend`.
pub fn rows_per_statement<A: ActiveModelTrait>(backend: DbBackend) -> usize {
    let columns = <A::Entity as EntityTrait>::Column::iter().count();
    (max_bound_parameters(backend) / columns.max(1)).max(1)
}

/// Inserts of `rows` in as few statements as the bound-parameter limit
/// allows. The rows must already carry their tenant: these statements are
/// built away from any connection, so not through a `TenantScope`.
#[allow(clippy::disallowed_methods)]
pub fn insert_statements<A: ActiveModelTrait>(
    rows: Vec<A>,
    backend: DbBackend,
    out: &mut Vec<Statement>,
) {
    if backend == DbBackend::Postgres
        && let Some(statements) = json_inserts(&rows)
    {
        out.extend(statements);
        return;
    }
    let per_statement = rows_per_statement::<A>(backend);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        out.push(<A::Entity as EntityTrait>::insert_many(chunk).build(backend));
    }
}

/// Rows per JSON insert on PostgreSQL: a few megabytes of text each, so a
/// batch's statements stay small beside the rows they carry.
const ROWS_PER_JSON_INSERT: usize = 5_000;

/// PostgreSQL inserts whose only parameter is the rows as one JSON array,
/// which the server turns into rows of the table's own column types
/// (`json_populate_recordset`). A multi-row `VALUES` of 30,000 bound
/// parameters costs the server a parse and plan of the whole list and the
/// client an encoding of each value; inserting 100,000 activities took
/// 7.2 s that way and 4.5 s from JSON, in the same psql session. The
/// parameter is `json`, not `jsonb`: the server then reads the text into
/// rows once, instead of first building a binary document of it with each
/// object's keys sorted; a thousand-row update of `lead_scores` took about
/// a quarter less time that way in psql. `None`
/// when a row holds a value JSON cannot carry: the caller then writes them
/// as `VALUES`.
fn json_inserts<A: ActiveModelTrait>(rows: &[A]) -> Option<Vec<Statement>> {
    // As `insert_many` does: a column any row gives is written, as null
    // where a row leaves it unset.
    let columns: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
        .filter(|c| {
            rows.iter()
                .any(|row| !matches!(row.get(*c), ActiveValue::NotSet))
        })
        .collect();
    if columns.is_empty() {
        return None;
    }
    let names: Vec<&str> = columns.iter().map(IdenStatic::as_str).collect();
    let table = <A::Entity as Default>::default().table_name();
    let list = names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "INSERT INTO \"{table}\" ({list}) SELECT {list} \
         FROM json_populate_recordset(NULL::\"{table}\", $1::json)"
    );
    let mut statements = Vec::new();
    for chunk in rows.chunks(ROWS_PER_JSON_INSERT) {
        statements.push(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql.clone(),
            [json_array(chunk, &columns)?.into()],
        ));
    }
    Some(statements)
}

/// `rows` as one JSON array of objects keyed by column name, as
/// `json_populate_recordset` reads them; `None` when a value has no JSON
/// form.
fn json_array<A: ActiveModelTrait>(
    rows: &[A],
    columns: &[<A::Entity as EntityTrait>::Column],
) -> Option<String> {
    let mut array = Vec::with_capacity(rows.len());
    for row in rows {
        let mut object = serde_json::Map::with_capacity(columns.len());
        for column in columns {
            let value = match row.get(*column) {
                ActiveValue::Set(value) | ActiveValue::Unchanged(value) => json_of(&value)?,
                ActiveValue::NotSet => serde_json::Value::Null,
            };
            object.insert(column.as_str().to_owned(), value);
        }
        array.push(serde_json::Value::Object(object));
    }
    serde_json::to_string(&array).ok()
}

/// A PostgreSQL update of many rows of `A`'s table in one statement, each
/// found by `key` in the tenant bound as `$1` and given every other column
/// a row sets; `guard` adds a condition between the stored row `t` and its
/// new values `v` (such as a version check). Returns the keys of the rows
/// written. One statement per row cost ingestion a round trip per lead:
/// two thousand of them for a batch of a thousand events. `None` when a
/// value has no JSON form, or a key comes twice (an update `FROM` a list
/// applies only one of a key's rows): the caller then updates row by row.
pub fn json_update<A: ActiveModelTrait, K: Eq + std::hash::Hash>(
    tenant_id: uuid::Uuid,
    rows: &[A],
    key: <A::Entity as EntityTrait>::Column,
    keys: &[K],
    guard: &str,
) -> Option<Statement> {
    if keys.iter().collect::<std::collections::HashSet<_>>().len() != keys.len() {
        return None;
    }
    let columns: Vec<_> = <A::Entity as EntityTrait>::Column::iter()
        .filter(|c| {
            c.as_str() != key.as_str()
                && c.as_str() != "tenant_id"
                && rows
                    .iter()
                    .any(|row| !matches!(row.get(*c), ActiveValue::NotSet))
        })
        .collect();
    if columns.is_empty() {
        return None;
    }
    let mut carried = columns.clone();
    carried.push(key);
    let array = json_array(rows, &carried)?;
    let table = <A::Entity as Default>::default().table_name();
    let key = key.as_str();
    let set = columns
        .iter()
        .map(|c| format!("\"{0}\" = v.\"{0}\"", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let guard = if guard.is_empty() {
        String::new()
    } else {
        format!(" AND {guard}")
    };
    Some(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "UPDATE \"{table}\" AS t SET {set} \
             FROM json_populate_recordset(NULL::\"{table}\", $2::json) AS v \
             WHERE t.tenant_id = $1 AND t.\"{key}\" = v.\"{key}\"{guard} \
             RETURNING t.\"{key}\" AS key"
        ),
        [tenant_id.into(), array.into()],
    ))
}

/// A column value as the JSON PostgreSQL reads back into the column's
/// type; times in RFC 3339 with their offset, to the microsecond.
fn json_of(value: &Value) -> Option<serde_json::Value> {
    Some(match value {
        Value::ChronoDateTimeUtc(Some(t)) => {
            serde_json::Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false))
        }
        Value::ChronoDateTimeWithTimeZone(Some(t)) => {
            serde_json::Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false))
        }
        // Bytes as the hex text PostgreSQL's `bytea` input reads.
        Value::Bytes(Some(bytes)) => {
            serde_json::Value::String(format!("\\x{}", hex::encode(bytes)))
        }
        // Non-finite numbers have no JSON form; none is in a lead's rows,
        // but they must not turn into nulls unseen.
        Value::Double(Some(v)) if !v.is_finite() => return None,
        Value::Float(Some(v)) if !v.is_finite() => return None,
        Value::ChronoDate(Some(_))
        | Value::ChronoTime(Some(_))
        | Value::ChronoDateTime(Some(_))
        | Value::ChronoDateTimeLocal(Some(_)) => return None,
        other => sea_orm::sea_query::value::sea_value_to_json_value(other),
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use entity::{activity, enums::Direction};
    use sea_orm::{ActiveValue::Set, DbBackend, IntoActiveModel};
    use uuid::Uuid;

    use super::insert_statements;

    fn activity(amount: Option<f64>) -> activity::ActiveModel {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 3, 9, 30, 0)
            .single()
            .unwrap_or_default()
            + chrono::Duration::microseconds(123_456);
        activity::Model {
            tenant_id: Uuid::nil(),
            id: Uuid::now_v7(),
            lead_id: entity::LeadId::new(),
            signal_key: "email_reply".into(),
            direction: Direction::Inbound,
            occurred_at: at,
            note: None,
            amount,
            created_by: None,
            created_at: at,
        }
        .into_active_model()
    }

    #[test]
    fn postgres_gets_the_rows_as_one_json_parameter_with_times_to_the_microsecond() {
        let mut out = Vec::new();
        insert_statements(
            vec![activity(Some(12.5)), activity(None)],
            DbBackend::Postgres,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(
            out[0]
                .sql
                .contains("json_populate_recordset(NULL::\"activities\""),
            "{}",
            out[0].sql
        );
        let values = out[0]
            .values
            .as_ref()
            .map(|v| v.0.clone())
            .unwrap_or_default();
        assert_eq!(values.len(), 1);
        let text = values[0].to_string();
        assert!(text.contains("2026-12-03T09:30:00.123456+00:00"), "{text}");
        assert!(text.contains("12.5") && text.contains("INBOUND"), "{text}");
    }

    #[test]
    fn bytes_go_as_the_hex_text_bytea_reads() {
        let json = super::json_of(&sea_orm::Value::Bytes(Some(vec![0x01, 0xab, 0x7b])));
        assert_eq!(json, Some(serde_json::json!("\\x01ab7b")));
    }

    #[test]
    fn a_value_json_cannot_carry_falls_back_to_bound_parameters() {
        let mut out = Vec::new();
        let mut nan = activity(None);
        nan.amount = Set(Some(f64::NAN));
        insert_statements(vec![activity(None), nan], DbBackend::Postgres, &mut out);
        assert_eq!(out.len(), 1);
        assert!(!out[0].sql.contains("json_populate"), "{}", out[0].sql);
    }

    #[test]
    fn sqlite_keeps_multi_row_values() {
        let mut out = Vec::new();
        insert_statements(vec![activity(None)], DbBackend::Sqlite, &mut out);
        assert!(out[0].sql.starts_with("INSERT INTO \"activities\""));
        assert!(!out[0].sql.contains("json"));
    }
}
