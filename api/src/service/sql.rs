//! Hand-written statements for the aggregations the query builder cannot
//! say portably (correlated lookups, window medians, date arithmetic),
//! still starting from the tenant's scope: every table comes in as a
//! scoped select rendered as a subquery, so no statement built here reads
//! another tenant's rows.

use sea_orm::{ConnectionTrait, DbBackend, QueryResult, QueryTrait, Statement, Value};

use crate::error::AppResult;

/// A statement under construction: text with `?` placeholders and the
/// values they stand for, renumbered for PostgreSQL when run.
pub struct Sql {
    backend: DbBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub fn new(backend: DbBackend) -> Self {
        Self {
            backend,
            text: String::new(),
            values: Vec::new(),
        }
    }

    /// Appends SQL text, which must not contain `?` of its own.
    pub fn push(&mut self, text: &str) -> &mut Self {
        debug_assert!(!text.contains('?'), "bind values with `bind`");
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.text.push('?');
        self.values.push(value.into());
        self
    }

    /// Appends `(select)`: a tenant-scoped select (built from a
    /// [`TenantScope`](crate::tenancy::TenantScope)) as a subquery.
    /// Both databases read the double-quoted names and the conditions the
    /// SQLite renderer writes; only the placeholders differ, and those are
    /// renumbered at the end.
    pub fn subquery(&mut self, select: impl QueryTrait) -> &mut Self {
        let rendered = select.build(DbBackend::Sqlite);
        self.text.push('(');
        self.text.push_str(&rendered.sql);
        self.text.push(')');
        self.values
            .extend(rendered.values.map(|v| v.0).unwrap_or_default());
        self
    }

    /// Appends the seconds since 1970 of the time in `column`, as a float.
    pub fn epoch(&mut self, column: &str) -> &mut Self {
        let expr = match self.backend {
            DbBackend::Postgres => {
                format!("CAST(EXTRACT(EPOCH FROM {column}) AS DOUBLE PRECISION)")
            }
            _ => format!("((julianday({column}) - 2440587.5) * 86400.0)"),
        };
        self.push(&expr)
    }

    /// Opens a whole number rounded down from what follows, up to
    /// [`Sql::floor_end`]; for values not below zero.
    pub fn floor_begin(&mut self) -> &mut Self {
        match self.backend {
            DbBackend::Postgres => self.push("CAST(FLOOR("),
            // SQLite's CAST truncates, which is rounding down from zero up,
            // and its FLOOR needs the optional math functions.
            _ => self.push("CAST(("),
        }
    }

    pub fn floor_end(&mut self) -> &mut Self {
        match self.backend {
            DbBackend::Postgres => self.push(") AS BIGINT)"),
            _ => self.push(") AS INTEGER)"),
        }
    }

    /// The statement, its placeholders numbered for PostgreSQL.
    pub fn build(self) -> Statement {
        let text = match self.backend {
            DbBackend::Postgres => {
                let mut numbered = String::with_capacity(self.text.len() + 16);
                let mut n = 0;
                for c in self.text.chars() {
                    if c == '?' {
                        n += 1;
                        numbered.push('$');
                        numbered.push_str(&n.to_string());
                    } else {
                        numbered.push(c);
                    }
                }
                numbered
            }
            _ => self.text,
        };
        Statement::from_sql_and_values(self.backend, text, self.values)
    }

    /// Runs the statement and returns its rows.
    ///
    /// # Errors
    /// Database errors.
    pub async fn all<C: ConnectionTrait>(self, conn: &C) -> AppResult<Vec<QueryResult>> {
        let statement = self.build();
        tracing::trace!(sql = %statement.sql, "aggregate statement");
        Ok(conn.query_all_raw(statement).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_gets_numbered_placeholders_in_order() {
        let mut sql = Sql::new(DbBackend::Postgres);
        sql.push("SELECT ").bind(1).push(" + ").bind(2);
        let statement = sql.build();
        assert_eq!(statement.sql, "SELECT $1 + $2");
        assert_eq!(statement.values.map(|v| v.0.len()), Some(2));
    }

    #[test]
    fn sqlite_keeps_question_marks() {
        let mut sql = Sql::new(DbBackend::Sqlite);
        sql.push("SELECT ").bind(1).push(", ").epoch("x.at");
        assert_eq!(
            sql.build().sql,
            "SELECT ?, ((julianday(x.at) - 2440587.5) * 86400.0)"
        );
    }
}
