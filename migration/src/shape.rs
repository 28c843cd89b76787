//! Small builders shared by the migrations, so every tenant table is keyed the
//! same way.

use sea_orm_migration::prelude::*;

/// A table whose primary key is `(tenant_id, id)`.
pub fn tenant_table<T, C>(table: T, tenant_id: C, id: C) -> TableCreateStatement
where
    T: IntoIden + 'static,
    C: IntoIden + Clone + 'static,
{
    Table::create()
        .table(table)
        .if_not_exists()
        .col(ColumnDef::new(tenant_id.clone()).uuid().not_null())
        .col(ColumnDef::new(id.clone()).uuid().not_null())
        .primary_key(Index::create().col(tenant_id).col(id))
        .to_owned()
}

/// A composite foreign key `(tenant_id, column)` → `(tenant_id, id)` of `to`,
/// so a row can only ever point at a row of its own tenant.
pub fn tenant_fk<F, T, C, D>(
    from: F,
    from_col: C,
    to: T,
    tenant: C,
    to_tenant: D,
    to_id: D,
) -> ForeignKeyCreateStatement
where
    F: IntoIden + Clone + 'static,
    T: IntoIden + Clone + 'static,
    C: IntoIden + Clone + 'static,
    D: IntoIden + Clone + 'static,
{
    ForeignKey::create()
        .from(from, (tenant, from_col))
        .to(to, (to_tenant, to_id))
        .on_delete(ForeignKeyAction::Restrict)
        .to_owned()
}

/// A plain (or unique) index over `cols`, named `name`.
pub fn index<T, C>(name: &str, table: T, cols: Vec<C>, unique: bool) -> IndexCreateStatement
where
    T: IntoIden + 'static,
    C: IntoIden + 'static,
{
    let mut stmt = Index::create();
    stmt.name(name).table(table).if_not_exists();
    for col in cols {
        stmt.col(col);
    }
    if unique {
        stmt.unique();
    }
    stmt.to_owned()
}

/// `tenant_id` → `tenants.id`: the tenant's rows go when the tenant goes.
pub fn owned_by_tenant<T: IntoIden + Clone + 'static>(
    table: T,
    tenant_id: T,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(table, tenant_id)
        .to(crate::idens::Tenants::Table, crate::idens::Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}
