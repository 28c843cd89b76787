//! Multi-row inserts for loaders that write thousands of rows at a time
//! (the demo loader, CSV import), where one statement per row would take
//! minutes.

use sea_orm::{ActiveModelTrait, DbBackend, EntityTrait, Iterable, QueryTrait, Statement};

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
pub fn insert_statements<A: ActiveModelTrait>(
    rows: Vec<A>,
    backend: DbBackend,
    out: &mut Vec<Statement>,
) {
    let per_statement = rows_per_statement::<A>(backend);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        out.push(<A::Entity as EntityTrait>::insert_many(chunk).build(backend));
    }
}
