//! Multi-row inserts for loaders that write thousands of rows at a time
//! (the demo loader, CSV import), where one statement per row would take
//! minutes.

use sea_orm::{ActiveModelTrait, DbBackend, EntityTrait, Iterable, QueryTrait, Statement};

/// SQLite's limit on bound parameters in one statement; PostgreSQL allows
/// more, so one statement size fits both.
const MAX_BOUND_PARAMETERS: usize = 32_766;

/// Inserts of `rows` in as few statements as the bound-parameter limit
/// allows. The rows must already carry their tenant: these statements are
/// built away from any connection, so not through a `TenantScope`.
pub fn insert_statements<A: ActiveModelTrait>(
    rows: Vec<A>,
    backend: DbBackend,
    out: &mut Vec<Statement>,
) {
    let columns = <A::Entity as EntityTrait>::Column::iter().count();
    let per_statement = (MAX_BOUND_PARAMETERS / columns.max(1)).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        out.push(<A::Entity as EntityTrait>::insert_many(chunk).build(backend));
    }
}
