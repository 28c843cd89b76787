//! At most one run of a job per tenant across every process sharing the
//! database: a lease row with a holder and an expiry, claimed atomically,
//! kept alive by heartbeats, taken over by anyone once it has expired.

use chrono::{DateTime, Duration, Utc};
use entity::job_lease;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// A held lease.
#[derive(Clone, Debug)]
pub struct Lease {
    pub tenant_id: Uuid,
    pub kind: String,
    pub holder: String,
    pub ttl: Duration,
}

impl Lease {
    /// Claims the lease for `holder` unless someone holds it unexpired.
    /// Either the insert or the expiry-guarded update succeeds for exactly
    /// one claimant, on SQLite and PostgreSQL alike.
    ///
    /// # Errors
    /// Database errors.
    pub async fn claim<C: ConnectionTrait>(
        db: &C,
        tenant_id: Uuid,
        kind: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> AppResult<Option<Self>> {
        let lease = Self {
            tenant_id,
            kind: kind.to_owned(),
            holder: holder.to_owned(),
            ttl,
        };
        let row = job_lease::ActiveModel {
            tenant_id: Set(tenant_id),
            kind: Set(kind.to_owned()),
            holder: Set(holder.to_owned()),
            job_run_id: Set(None),
            acquired_at: Set(now),
            heartbeat_at: Set(now),
            expires_at: Set(now + ttl),
        };
        let inserted = job_lease::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec_without_returning(db)
            .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(1)) {
            return Ok(Some(lease));
        }
        let taken = TenantScope::new(db, tenant_id)
            .update_many::<job_lease::Entity>()
            .col_expr(job_lease::Column::Holder, holder.into())
            .col_expr(job_lease::Column::AcquiredAt, now.into())
            .col_expr(job_lease::Column::HeartbeatAt, now.into())
            .col_expr(job_lease::Column::ExpiresAt, (now + ttl).into())
            .filter(job_lease::Column::Kind.eq(kind))
            .filter(job_lease::Column::ExpiresAt.lt(now))
            .exec(db)
            .await?;
        Ok((taken.rows_affected == 1).then_some(lease))
    }

    /// Extends the lease and records the run it serves.
    ///
    /// # Errors
    /// INTERNAL when the lease was lost (it expired and someone took it):
    /// the run must stop, since another one is under way.
    pub async fn heartbeat<C: ConnectionTrait>(
        &self,
        db: &C,
        run: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        let kept = TenantScope::new(db, self.tenant_id)
            .update_many::<job_lease::Entity>()
            .col_expr(job_lease::Column::HeartbeatAt, now.into())
            .col_expr(job_lease::Column::ExpiresAt, (now + self.ttl).into())
            .col_expr(job_lease::Column::JobRunId, run.into())
            .filter(job_lease::Column::Kind.eq(&self.kind))
            .filter(job_lease::Column::Holder.eq(&self.holder))
            .exec(db)
            .await?;
        if kept.rows_affected == 1 {
            Ok(())
        } else {
            Err(AppError::Internal(anyhow::anyhow!(
                "the {} lease of tenant {} was lost to another process; stopping this run",
                self.kind,
                self.tenant_id
            )))
        }
    }

    /// Gives the lease up.
    ///
    /// # Errors
    /// Database errors.
    pub async fn release<C: ConnectionTrait>(&self, db: &C) -> AppResult<()> {
        TenantScope::new(db, self.tenant_id)
            .delete_many::<job_lease::Entity>()
            .filter(job_lease::Column::Kind.eq(&self.kind))
            .filter(job_lease::Column::Holder.eq(&self.holder))
            .exec(db)
            .await?;
        Ok(())
    }
}
