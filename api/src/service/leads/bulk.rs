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
        && let Some(statements) = array_inserts(&rows)
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

/// Rows per array insert on PostgreSQL: each statement's parameters are
/// built whole in memory, so a loader's large batch goes as several.
const ROWS_PER_ARRAY_INSERT: usize = 5_000;

/// PostgreSQL inserts that bind each column as one array (`unnest`), in
/// the driver's binary form. A multi-row `VALUES` of 30,000 bound
/// parameters costs the server a parse and plan of the whole list;
/// inserting 100,000 activities took 7.2 s that way and 4.5 s from one
/// JSON array. JSON in turn cost the server a text parse of every value
/// (times and UUIDs are slow to read as text): 13% of the machine's CPU
/// in `perf` while events were ingested. `None` when a value cannot be
/// bound as an array: the caller then writes the rows as `VALUES`.
fn array_inserts<A: ActiveModelTrait>(rows: &[A]) -> Option<Vec<Statement>> {
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
    let table = <A::Entity as Default>::default().table_name();
    let list = columns
        .iter()
        .map(|c| format!("\"{}\"", c.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statements = Vec::new();
    for chunk in rows.chunks(ROWS_PER_ARRAY_INSERT) {
        let (from, values) = unnest(chunk, &columns, 1)?;
        statements.push(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("INSERT INTO \"{table}\" ({list}) SELECT {list} FROM {from}"),
            values,
        ));
    }
    Some(statements)
}

/// `rows` as a derived table `v` with a column per column of `columns`
/// (under its own name), and its parameters, numbered from `first`: one
/// array per column, and beside each column that holds a null a `bool`
/// array saying which rows' values are null, since the driver cannot
/// bind an array with null elements. `None` when a column's values are
/// not all of one type the driver binds as an array.
fn unnest<A: ActiveModelTrait>(
    rows: &[A],
    columns: &[<A::Entity as EntityTrait>::Column],
    first: usize,
) -> Option<(String, Vec<Value>)> {
    let mut params = Vec::with_capacity(columns.len() * 2);
    let mut names = Vec::with_capacity(columns.len() * 2);
    let mut select = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        // A row that leaves the column unset writes a null there, typed as
        // the rows that set it.
        let given: Vec<Option<Value>> = rows
            .iter()
            .map(|row| row.get(*column).into_value())
            .collect();
        let null = given.iter().flatten().next()?.as_null();
        let values = given
            .into_iter()
            .map(|v| v.unwrap_or_else(|| null.clone()))
            .collect();
        let (array, nulls) = array_of(values)?;
        let name = column.as_str();
        params.push(array);
        names.push(format!("c{i}"));
        match nulls {
            Some(nulls) => {
                params.push(nulls);
                names.push(format!("n{i}"));
                select.push(format!(
                    "CASE WHEN n{i} THEN NULL ELSE c{i} END AS \"{name}\""
                ));
            }
            None => select.push(format!("c{i} AS \"{name}\"")),
        }
    }
    let placeholders = (first..first + params.len())
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    Some((
        format!(
            "(SELECT {} FROM unnest({placeholders}) AS u({})) AS v",
            select.join(", "),
            names.join(", ")
        ),
        params,
    ))
}

/// One column's values as an array parameter, and the null mask when a
/// value is null (its place in the array then holds a placeholder of the
/// same type).
fn array_of(values: Vec<Value>) -> Option<(Value, Option<Value>)> {
    let first = values.first()?;
    let kind = std::mem::discriminant(first);
    if values.iter().any(|v| std::mem::discriminant(v) != kind)
        || matches!(first, Value::Array(..) | Value::Enum(..))
    {
        return None;
    }
    let array_type = first.array_type();
    let nulls: Vec<bool> = values.iter().map(|v| *v == v.as_null()).collect();
    let any_null = nulls.iter().any(|n| *n);
    let values = if any_null {
        values
            .into_iter()
            .zip(&nulls)
            .map(|(v, null)| if *null { v.dummy_value() } else { v })
            .collect()
    } else {
        values
    };
    let nulls = any_null.then(|| {
        Value::Array(
            sea_orm::sea_query::ArrayType::Bool,
            Some(Box::new(nulls.into_iter().map(Value::from).collect())),
        )
    });
    Some((Value::Array(array_type, Some(Box::new(values))), nulls))
}

/// A PostgreSQL update of many rows of `A`'s table in one statement, each
/// found by `key` in the tenant bound as `$1` and given every other column
/// a row sets; `guard` adds a condition between the stored row `t` and its
/// new values `v` (such as a version check). Returns the keys of the rows
/// written. One statement per row cost ingestion a round trip per lead:
/// two thousand of them for a batch of a thousand events. `None` when a
/// value cannot be bound as an array, or a key comes twice (an update
/// `FROM` a list applies only one of a key's rows): the caller then
/// updates row by row.
pub fn bulk_update<A: ActiveModelTrait, K: Eq + std::hash::Hash>(
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
    let (from, arrays) = unnest(rows, &carried, 2)?;
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
    let mut values = vec![tenant_id.into()];
    values.extend(arrays);
    Some(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "UPDATE \"{table}\" AS t SET {set} FROM {from} \
             WHERE t.tenant_id = $1 AND t.\"{key}\" = v.\"{key}\"{guard} \
             RETURNING t.\"{key}\" AS key"
        ),
        values,
    ))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use entity::{activity, enums::Direction};
    use sea_orm::{DbBackend, IntoActiveModel, Value};
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

    fn values(statement: &sea_orm::Statement) -> Vec<Value> {
        statement
            .values
            .as_ref()
            .map(|v| v.0.clone())
            .unwrap_or_default()
    }

    fn array(value: &Value) -> Vec<Value> {
        match value {
            Value::Array(_, Some(items)) => items.to_vec(),
            other => panic!("not an array: {other:?}"),
        }
    }

    #[test]
    fn postgres_gets_one_array_per_column_and_a_mask_beside_each_null() {
        let mut out = Vec::new();
        insert_statements(
            vec![activity(Some(12.5)), activity(None)],
            DbBackend::Postgres,
            &mut out,
        );
        assert_eq!(out.len(), 1);
        let sql = &out[0].sql;
        assert!(sql.contains("FROM unnest($1, $2"), "{sql}");
        // Ten columns; `note`, `amount` and `created_by` hold nulls.
        let values = values(&out[0]);
        assert_eq!(values.len(), 13, "{sql}");
        assert!(
            sql.contains("CASE WHEN n7 THEN NULL ELSE c7 END AS \"amount\""),
            "{sql}"
        );
        let amount = sql
            .split("AS u(")
            .nth(1)
            .and_then(|names| names.split(", ").position(|n| n == "c7"))
            .unwrap_or(usize::MAX);
        assert_eq!(
            array(&values[amount]),
            vec![Value::Double(Some(12.5)), Value::Double(Some(0.0))]
        );
        assert_eq!(
            array(&values[amount + 1]),
            vec![Value::Bool(Some(false)), Value::Bool(Some(true))]
        );
        assert!(sql.contains("c3 AS \"signal_key\""), "{sql}");
    }

    #[test]
    fn a_column_some_rows_leave_unset_is_null_in_those_rows() {
        let mut unset = activity(Some(1.0));
        unset.amount = sea_orm::ActiveValue::NotSet;
        let mut out = Vec::new();
        insert_statements(
            vec![unset, activity(Some(2.0))],
            DbBackend::Postgres,
            &mut out,
        );
        let sql = &out[0].sql;
        assert!(
            sql.contains("CASE WHEN n7 THEN NULL ELSE c7 END AS \"amount\""),
            "{sql}"
        );
    }

    #[test]
    fn the_update_binds_the_tenant_first_and_returns_the_keys_written() {
        let rows = vec![activity(None), activity(None)];
        let ids: Vec<Uuid> = rows
            .iter()
            .filter_map(|r| r.id.clone().into_value())
            .filter_map(|v| match v {
                Value::Uuid(Some(id)) => Some(id),
                _ => None,
            })
            .collect();
        let statement = super::bulk_update(
            Uuid::nil(),
            &rows,
            activity::Column::Id,
            &ids,
            "t.amount IS NULL",
        );
        let Some(statement) = statement else {
            panic!("no statement")
        };
        assert!(
            statement.sql.starts_with("UPDATE \"activities\" AS t SET"),
            "{}",
            statement.sql
        );
        assert!(
            statement.sql.contains("FROM unnest($2,"),
            "{}",
            statement.sql
        );
        assert!(
            statement
                .sql
                .ends_with("AND t.amount IS NULL RETURNING t.\"id\" AS key"),
            "{}",
            statement.sql
        );
        assert_eq!(values(&statement)[0], Value::Uuid(Some(Uuid::nil())));
        let twice = [ids[0], ids[0]];
        assert!(super::bulk_update(Uuid::nil(), &rows, activity::Column::Id, &twice, "").is_none());
    }

    #[test]
    fn sqlite_keeps_multi_row_values() {
        let mut out = Vec::new();
        insert_statements(vec![activity(None)], DbBackend::Sqlite, &mut out);
        assert!(out[0].sql.starts_with("INSERT INTO \"activities\""));
        assert!(!out[0].sql.contains("json"));
    }
}
