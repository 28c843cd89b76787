//! The one place where queries are scoped to a tenant.
//!
//! Services never call `Entity::find()` on tenant data: they ask a
//! [`TenantScope`], whose selects, updates and deletes are already filtered
//! by `tenant_id`, and whose inserts take `tenant_id` from the scope, never
//! from input. Another tenant's row is therefore indistinguishable from a
//! row that never existed.
//!
//! On PostgreSQL a second wall stands behind the first: row-level security
//! (migration `m20261207_000001_tenant_wall`) shows a statement only the
//! rows of the tenant its transaction said it works for. A scope therefore
//! only comes from [`TenantScope::enter`], which says so in a transaction,
//! or from a [`Walled`] pool, which says so around each statement; a query
//! built without a scope on the application's pool sees nothing at all.

use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, DeleteMany, EntityTrait, ExecResult,
    IntoActiveModel, QueryFilter, QueryResult, Select, Statement, TransactionTrait, UpdateMany,
};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// The tenants themselves (not a tenant's rows): found by slug at sign-in,
/// all of them by the scheduler.
#[allow(clippy::disallowed_methods)] // The one place that reads the tenants table.
pub fn tenants() -> Select<entity::tenant::Entity> {
    entity::tenant::Entity::find()
}

/// The tenant `id`.
#[allow(clippy::disallowed_methods)] // The one place that reads the tenants table.
pub fn tenant(id: Uuid) -> Select<entity::tenant::Entity> {
    entity::tenant::Entity::find_by_id(id)
}

/// An entity whose rows belong to a tenant.
pub trait TenantOwned: EntityTrait {
    /// The `tenant_id` column.
    fn tenant_column() -> Self::Column;
    /// The `id` column, for single-row lookups.
    fn id_column() -> Option<Self::Column>;
    /// What a user calls one row, in NOT_FOUND messages.
    const NAME: &'static str;
    /// The type of the `id` column, so a lead is looked up by a
    /// [`entity::LeadId`] and never by a user's id.
    type Id: Into<sea_orm::Value> + std::fmt::Display + Copy + Send;
}

/// An active model whose `tenant_id` the scope sets.
pub trait TenantActiveModel: ActiveModelTrait {
    /// Overwrites the row's tenant.
    fn set_tenant_id(&mut self, tenant_id: Uuid);
}

macro_rules! tenant_owned {
    ($($module:ident => $name:literal, $id:expr, $id_type:ty;)*) => {$(
        impl TenantOwned for entity::$module::Entity {
            fn tenant_column() -> Self::Column {
                entity::$module::Column::TenantId
            }
            fn id_column() -> Option<Self::Column> {
                $id
            }
            const NAME: &'static str = $name;
            type Id = $id_type;
        }
        impl TenantActiveModel for entity::$module::ActiveModel {
            fn set_tenant_id(&mut self, tenant_id: Uuid) {
                self.tenant_id = Set(tenant_id);
            }
        }
    )*};
}

tenant_owned! {
    user => "user", Some(entity::user::Column::Id), entity::UserId;
    team => "team", Some(entity::team::Column::Id), entity::TeamId;
    team_member => "team membership", None, Uuid;
    refresh_session => "session", Some(entity::refresh_session::Column::Id), Uuid;
    pipeline => "pipeline", Some(entity::pipeline::Column::Id), entity::PipelineId;
    stage => "stage", Some(entity::stage::Column::Id), entity::StageId;
    signal_type => "signal type", Some(entity::signal_type::Column::Id), Uuid;
    lead_field => "lead field", Some(entity::lead_field::Column::Id), Uuid;
    scoring_model => "scoring model", Some(entity::scoring_model::Column::Id), entity::ScoringModelId;
    predictor_model => "predictor", Some(entity::predictor_model::Column::Id), Uuid;
    lead => "lead", Some(entity::lead::Column::Id), entity::LeadId;
    lead_facts => "lead", Some(entity::lead_facts::Column::Id), entity::LeadId;
    lead_score => "lead", Some(entity::lead_score::Column::LeadId), entity::LeadId;
    activity => "activity", Some(entity::activity::Column::Id), Uuid;
    score_event => "score event", Some(entity::score_event::Column::Id), Uuid;
    lead_event => "lead event", Some(entity::lead_event::Column::Id), Uuid;
    job_run => "job run", Some(entity::job_run::Column::Id), Uuid;
    job_lease => "job lease", None, Uuid;
    audit_entry => "audit entry", Some(entity::audit_entry::Column::Id), Uuid;
    assignment_rule => "assignment rule", Some(entity::assignment_rule::Column::Id), Uuid;
    pool_rule => "pool rule", Some(entity::pool_rule::Column::Id), Uuid;
    webhook_endpoint => "webhook endpoint", Some(entity::webhook_endpoint::Column::Id), Uuid;
    webhook_delivery => "webhook delivery", Some(entity::webhook_delivery::Column::Id), Uuid;
    change_notice => "change notice", Some(entity::change_notice::Column::Id), Uuid;
    api_key => "API key", Some(entity::api_key::Column::Id), Uuid;
    ingestion_key => "idempotency key", None, Uuid;
}

/// Queries and writes confined to one tenant, over a connection or a
/// transaction.
#[derive(Debug)]
pub struct TenantScope<'c, C> {
    conn: &'c C,
    tenant_id: Uuid,
}

// By hand: derived, they would ask the connection itself to be `Copy`.
impl<C> Clone for TenantScope<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for TenantScope<'_, C> {}

impl<'c> TenantScope<'c, DatabaseTransaction> {
    /// A scope for `tenant_id` in `txn`, which from now on works for that
    /// tenant alone. Build it from the authenticated principal (or, for
    /// sign-up and refresh, from the row being created or the token being
    /// checked).
    ///
    /// # Errors
    /// Database errors.
    pub async fn enter(txn: &'c DatabaseTransaction, tenant_id: Uuid) -> AppResult<Self> {
        work_for(txn, tenant_id).await?;
        Ok(Self {
            conn: txn,
            tenant_id,
        })
    }
}

impl<'c> TenantScope<'c, Walled> {
    /// A scope over the pool `walled` is confined to.
    pub fn on(walled: &'c Walled) -> Self {
        Self {
            conn: walled,
            tenant_id: walled.tenant_id,
        }
    }
}

// The one place that builds statements straight from entities: every one
// of them is filtered by, or given, the scope's tenant.
#[allow(clippy::disallowed_methods)]
impl<'c, C: ConnectionTrait> TenantScope<'c, C> {
    /// The tenant this scope is confined to.
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    /// The connection, for executing the statements built here.
    pub fn conn(&self) -> &'c C {
        self.conn
    }

    /// All of the tenant's rows of `E`.
    pub fn select<E: TenantOwned>(&self) -> Select<E> {
        E::find().filter(E::tenant_column().eq(self.tenant_id))
    }

    /// An update of the tenant's rows of `E`; add filters before executing.
    pub fn update_many<E: TenantOwned>(&self) -> UpdateMany<E> {
        E::update_many().filter(E::tenant_column().eq(self.tenant_id))
    }

    /// A delete of the tenant's rows of `E`; add filters before executing.
    pub fn delete_many<E: TenantOwned>(&self) -> DeleteMany<E> {
        E::delete_many().filter(E::tenant_column().eq(self.tenant_id))
    }

    /// The row with `id`, if this tenant has it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn find<E: TenantOwned>(&self, id: E::Id) -> AppResult<Option<E::Model>> {
        let Some(id_column) = E::id_column() else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "{} has no id column",
                E::NAME
            )));
        };
        Ok(self
            .select::<E>()
            .filter(id_column.eq(id))
            .one(self.conn)
            .await?)
    }

    /// The row with `id`, or NOT_FOUND (also when another tenant has it).
    ///
    /// # Errors
    /// [`AppError::NotFound`], database errors.
    pub async fn get<E: TenantOwned>(&self, id: E::Id) -> AppResult<E::Model> {
        self.find::<E>(id)
            .await?
            .ok_or_else(|| AppError::not_found(E::NAME, id))
    }

    /// Inserts a row into this tenant, whatever `tenant_id` it carried.
    ///
    /// # Errors
    /// Database errors; unique violations become CONFLICT.
    pub async fn insert<A>(&self, mut row: A) -> AppResult<<A::Entity as EntityTrait>::Model>
    where
        A: TenantActiveModel + ActiveModelBehavior + Send,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        row.set_tenant_id(self.tenant_id);
        Ok(row.insert(self.conn).await?)
    }

    /// Inserts many rows into this tenant in one statement.
    ///
    /// # Errors
    /// Database errors; unique violations become CONFLICT.
    pub async fn insert_many<A>(&self, rows: impl IntoIterator<Item = A>) -> AppResult<()>
    where
        A: TenantActiveModel + Send,
    {
        let rows: Vec<A> = rows
            .into_iter()
            .map(|mut row| {
                row.set_tenant_id(self.tenant_id);
                row
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        <A::Entity as EntityTrait>::insert_many(rows)
            .exec_without_returning(self.conn)
            .await?;
        Ok(())
    }

    /// Updates a row loaded through this scope.
    ///
    /// # Errors
    /// Database errors; unique violations become CONFLICT.
    pub async fn update<A>(&self, mut row: A) -> AppResult<<A::Entity as EntityTrait>::Model>
    where
        A: TenantActiveModel + ActiveModelBehavior + Send,
        <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
    {
        // Re-pinning the tenant makes the update's WHERE clause include it.
        row.set_tenant_id(self.tenant_id);
        Ok(row.update(self.conn).await?)
    }
}

/// Tells PostgreSQL's row-level security which tenant the transaction
/// `conn` works for, until it ends. A UUID's text is hex digits and
/// hyphens, safe to write into the statement.
async fn work_for<C: ConnectionTrait>(conn: &C, tenant_id: Uuid) -> Result<(), DbErr> {
    if conn.get_database_backend() == DbBackend::Postgres {
        conn.execute_unprepared(&format!("SET LOCAL leadrank.tenant_id = '{tenant_id}'"))
            .await?;
    }
    Ok(())
}

/// A transaction for one of the few reads that span tenants (which tenants
/// have webhook deliveries due): on PostgreSQL it says so to row-level
/// security, which otherwise shows a statement no tenant's rows. Every
/// caller is such a reader, named where it calls.
///
/// # Errors
/// Database errors.
pub async fn across_tenants(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_unprepared("SET LOCAL leadrank.system = 'on'")
            .await?;
    }
    Ok(txn)
}

/// The application's pool confined to one tenant, for reads and single
/// statements outside a transaction. On PostgreSQL each statement runs in
/// a transaction of its own that first says which tenant it works for
/// (two more round trips for a read, three for a write); on SQLite, which has no row-level security,
/// statements go straight to the pool.
#[derive(Clone, Debug)]
pub struct Walled {
    db: DatabaseConnection,
    tenant_id: Uuid,
}

impl Walled {
    /// `db` confined to `tenant_id`.
    pub fn new(db: &DatabaseConnection, tenant_id: Uuid) -> Self {
        Self {
            db: db.clone(),
            tenant_id,
        }
    }

    /// The tenant.
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    /// The pool itself, to begin a transaction on (then enter it with
    /// [`TenantScope::enter`]). On PostgreSQL a statement run on it
    /// directly sees no tenant's rows.
    pub fn pool(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The scope of this tenant over this pool.
    pub fn scope(&self) -> TenantScope<'_, Walled> {
        TenantScope::on(self)
    }

    /// A transaction on the pool, working for this tenant.
    ///
    /// # Errors
    /// Database errors.
    pub async fn begin(&self) -> Result<DatabaseTransaction, DbErr> {
        let txn = self.db.begin().await?;
        work_for(&txn, self.tenant_id).await?;
        Ok(txn)
    }

    fn walls(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres
    }

    /// A read on PostgreSQL in two round trips: one that begins the
    /// transaction and says the tenant (one message, which sea-orm's
    /// `begin` cannot send), one for the read. Dropping the transaction
    /// queues its rollback, which goes out with the check the pool makes
    /// of a returned connection.
    async fn read(&self, stmt: &Statement, only_first: bool) -> Result<Vec<QueryResult>, DbErr> {
        use sea_orm::sqlx::{self, AssertSqlSafe};
        let failed = |err: sqlx::Error| DbErr::Query(sea_orm::RuntimeErr::SqlxError(err.into()));
        let begin = format!("BEGIN; SET LOCAL leadrank.tenant_id = '{}'", self.tenant_id);
        let mut txn = self
            .db
            .get_postgres_connection_pool()
            .begin_with(AssertSqlSafe(begin))
            .await
            .map_err(failed)?;
        let values = stmt
            .values
            .clone()
            .unwrap_or_else(|| sea_orm::Values(Vec::new()));
        let query = sqlx::query_with(
            AssertSqlSafe(stmt.sql.as_str()),
            sea_query_sqlx::SqlxValues(values),
        );
        let rows = if only_first {
            query.fetch_optional(&mut *txn).await.map(Vec::from_iter)
        } else {
            query.fetch_all(&mut *txn).await
        }
        .map_err(failed)?;
        drop(txn);
        Ok(rows.into_iter().map(QueryResult::from).collect())
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Walled {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        if !self.walls() {
            return self.db.execute_raw(stmt).await;
        }
        let txn = self.begin().await?;
        let done = txn.execute_raw(stmt).await?;
        txn.commit().await?;
        Ok(done)
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        if !self.walls() {
            return self.db.execute_unprepared(sql).await;
        }
        let txn = self.begin().await?;
        let done = txn.execute_unprepared(sql).await?;
        txn.commit().await?;
        Ok(done)
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        if !self.walls() {
            return self.db.query_one_raw(stmt).await;
        }
        if only_reads(&stmt) {
            return Ok(self.read(&stmt, true).await?.into_iter().next());
        }
        let txn = self.begin().await?;
        let row = txn.query_one_raw(stmt).await?;
        txn.commit().await?;
        Ok(row)
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        if !self.walls() {
            return self.db.query_all_raw(stmt).await;
        }
        if only_reads(&stmt) {
            return self.read(&stmt, false).await;
        }
        let txn = self.begin().await?;
        let rows = txn.query_all_raw(stmt).await?;
        txn.commit().await?;
        Ok(rows)
    }

    fn support_returning(&self) -> bool {
        self.db.support_returning()
    }
}

/// Whether `stmt` only reads. Inserts and updates come back through the
/// query methods too, when they return the rows they wrote.
fn only_reads(stmt: &Statement) -> bool {
    stmt.sql
        .trim_start()
        .get(..6)
        .is_some_and(|verb| verb.eq_ignore_ascii_case("SELECT"))
}
