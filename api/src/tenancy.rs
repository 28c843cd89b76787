//! The one place where queries are scoped to a tenant.
//!
//! Services never call `Entity::find()` on tenant data: they ask a
//! [`TenantScope`], whose selects, updates and deletes are already filtered
//! by `tenant_id`, and whose inserts take `tenant_id` from the scope, never
//! from input. Another tenant's row is therefore indistinguishable from a
//! row that never existed.

use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait,
    DeleteMany, EntityTrait, IntoActiveModel, QueryFilter, Select, UpdateMany,
};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// An entity whose rows belong to a tenant.
pub trait TenantOwned: EntityTrait {
    /// The `tenant_id` column.
    fn tenant_column() -> Self::Column;
    /// The `id` column, for single-row lookups.
    fn id_column() -> Option<Self::Column>;
    /// What a user calls one row, in NOT_FOUND messages.
    const NAME: &'static str;
}

/// An active model whose `tenant_id` the scope sets.
pub trait TenantActiveModel: ActiveModelTrait {
    /// Overwrites the row's tenant.
    fn set_tenant_id(&mut self, tenant_id: Uuid);
}

macro_rules! tenant_owned {
    ($($module:ident => $name:literal, $id:expr;)*) => {$(
        impl TenantOwned for entity::$module::Entity {
            fn tenant_column() -> Self::Column {
                entity::$module::Column::TenantId
            }
            fn id_column() -> Option<Self::Column> {
                $id
            }
            const NAME: &'static str = $name;
        }
        impl TenantActiveModel for entity::$module::ActiveModel {
            fn set_tenant_id(&mut self, tenant_id: Uuid) {
                self.tenant_id = Set(tenant_id);
            }
        }
    )*};
}

tenant_owned! {
    user => "user", Some(entity::user::Column::Id);
    team => "team", Some(entity::team::Column::Id);
    team_member => "team membership", None;
    refresh_session => "session", Some(entity::refresh_session::Column::Id);
    pipeline => "pipeline", Some(entity::pipeline::Column::Id);
    stage => "stage", Some(entity::stage::Column::Id);
    signal_type => "signal type", Some(entity::signal_type::Column::Id);
    lead_field => "lead field", Some(entity::lead_field::Column::Id);
    scoring_model => "scoring model", Some(entity::scoring_model::Column::Id);
    predictor_model => "predictor", Some(entity::predictor_model::Column::Id);
    lead => "lead", Some(entity::lead::Column::Id);
    lead_facts => "lead", Some(entity::lead_facts::Column::Id);
    lead_score => "lead", Some(entity::lead_score::Column::LeadId);
    activity => "activity", Some(entity::activity::Column::Id);
    score_event => "score event", Some(entity::score_event::Column::Id);
    lead_event => "lead event", Some(entity::lead_event::Column::Id);
    job_run => "job run", Some(entity::job_run::Column::Id);
    job_lease => "job lease", None;
    audit_entry => "audit entry", Some(entity::audit_entry::Column::Id);
    assignment_rule => "assignment rule", Some(entity::assignment_rule::Column::Id);
    pool_rule => "pool rule", Some(entity::pool_rule::Column::Id);
    webhook_endpoint => "webhook endpoint", Some(entity::webhook_endpoint::Column::Id);
    webhook_delivery => "webhook delivery", Some(entity::webhook_delivery::Column::Id);
    change_notice => "change notice", Some(entity::change_notice::Column::Id);
    api_key => "API key", Some(entity::api_key::Column::Id);
    ingestion_key => "idempotency key", None;
}

/// Queries and writes confined to one tenant, over a connection or a
/// transaction.
#[derive(Clone, Copy, Debug)]
pub struct TenantScope<'c, C> {
    conn: &'c C,
    tenant_id: Uuid,
}

impl<'c, C: ConnectionTrait> TenantScope<'c, C> {
    /// A scope for `tenant_id`; build it from the authenticated principal
    /// (or, for sign-up and refresh, from the row being created or the
    /// token being checked).
    pub fn new(conn: &'c C, tenant_id: Uuid) -> Self {
        Self { conn, tenant_id }
    }

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
    pub async fn find<E: TenantOwned>(&self, id: Uuid) -> AppResult<Option<E::Model>> {
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
    pub async fn get<E: TenantOwned>(&self, id: Uuid) -> AppResult<E::Model> {
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
