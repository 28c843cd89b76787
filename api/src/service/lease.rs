//! At most one run of a job per tenant across every process sharing the
//! database: a lease row with a holder and an expiry, claimed atomically,
//! kept alive by heartbeats, taken over by anyone once it has expired.
//!
//! Each run claims under a holder name of its own, so two runs in one
//! process are as distinct as two processes. A heartbeat renews the lease
//! from the time it is sent, so a run that keeps beating keeps its lease
//! however long it takes. A run that stopped beating for longer than the
//! lease's life may find it taken: [`Lease::fence`], called inside each of
//! the run's write transactions, then refuses the transaction, so a run
//! that lost its lease commits nothing more.

use std::{fmt, sync::Arc, time::Instant};

use chrono::{DateTime, Duration, Utc};
use entity::job_lease;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    tenancy::TenantScope,
};

/// The time leases are claimed and renewed at.
#[derive(Clone)]
pub struct Clock(ClockKind);

#[derive(Clone)]
enum ClockKind {
    /// A run's `now` plus the time elapsed since: the wall clock for a
    /// run started at `Utc::now()`, and a run scored at a chosen time (a
    /// test's, or a replay's) keeps its lease in that time's frame.
    Since(DateTime<Utc>, Instant),
    /// A clock a test moves by hand.
    Injected(Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>),
}

impl Clock {
    /// A clock that reads `start` now and runs on from there.
    #[must_use]
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self(ClockKind::Since(start, Instant::now()))
    }

    /// A clock that reads whatever `read` says, for tests.
    #[must_use]
    pub fn injected(read: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self(ClockKind::Injected(Arc::new(read)))
    }

    /// The current time on this clock.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            ClockKind::Since(start, at) => {
                *start + Duration::from_std(at.elapsed()).unwrap_or(Duration::zero())
            }
            ClockKind::Injected(read) => read(),
        }
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            ClockKind::Since(start, _) => f.debug_tuple("Clock::starting_at").field(start).finish(),
            ClockKind::Injected(_) => f.write_str("Clock::injected"),
        }
    }
}

/// The error of a heartbeat or fence whose lease is no longer this run's:
/// it expired and another run took it (or took it and let it go). The run
/// must stop without writing, since another one carries on its work.
#[derive(Debug, thiserror::Error)]
#[error("the {kind} lease of tenant {tenant_id} was lost to another run; stopping this run")]
pub struct LeaseLost {
    pub tenant_id: Uuid,
    pub kind: String,
}

impl LeaseLost {
    /// Whether `err` is a lost lease.
    #[must_use]
    pub fn is(err: &AppError) -> bool {
        matches!(err, AppError::Internal(inner) if inner.downcast_ref::<Self>().is_some())
    }
}

/// A held lease.
#[derive(Clone, Debug)]
pub struct Lease {
    pub tenant_id: Uuid,
    pub kind: String,
    pub holder: String,
    pub ttl: Duration,
    clock: Clock,
}

impl Lease {
    /// A holder name for one run: `base` (host and process) and an id of
    /// the run's own, so that runs in one process never pass for each other.
    #[must_use]
    pub fn holder_for_run(base: &str) -> String {
        format!("{base}/{}", Uuid::now_v7())
    }

    /// Claims the lease for `holder` unless someone holds it unexpired,
    /// at `clock`'s time; the lease keeps `clock` for its heartbeats.
    /// Either the insert or the expiry-guarded update succeeds for exactly
    /// one claimant, on SQLite and PostgreSQL alike.
    ///
    /// # Errors
    /// Database errors.
    pub async fn claim<C: ConnectionTrait>(
        scope: &TenantScope<'_, C>,
        kind: &str,
        holder: &str,
        ttl: Duration,
        clock: Clock,
    ) -> AppResult<Option<Self>> {
        let now = clock.now();
        let tenant_id = scope.tenant_id();
        let lease = Self {
            tenant_id,
            kind: kind.to_owned(),
            holder: holder.to_owned(),
            ttl,
            clock,
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
        // The row's tenant is the scope's; the scope's insert cannot skip a conflict.
        #[allow(clippy::disallowed_methods)]
        let inserted = job_lease::Entity::insert(row)
            .on_conflict_do_nothing()
            .exec_without_returning(scope.conn())
            .await?;
        if matches!(inserted, sea_orm::TryInsertResult::Inserted(1)) {
            return Ok(Some(lease));
        }
        let taken = scope
            .update_many::<job_lease::Entity>()
            .col_expr(job_lease::Column::Holder, holder.into())
            .col_expr(job_lease::Column::AcquiredAt, now.into())
            .col_expr(job_lease::Column::HeartbeatAt, now.into())
            .col_expr(job_lease::Column::ExpiresAt, (now + ttl).into())
            .filter(job_lease::Column::Kind.eq(kind))
            .filter(job_lease::Column::ExpiresAt.lt(now))
            .exec(scope.conn())
            .await?;
        Ok((taken.rows_affected == 1).then_some(lease))
    }

    /// Extends the lease from the clock's current time and records the
    /// run it serves.
    ///
    /// # Errors
    /// [`LeaseLost`] (as INTERNAL) when the lease is no longer ours: the
    /// run must stop, since another one is under way.
    pub async fn heartbeat<C: ConnectionTrait>(
        &self,
        scope: &TenantScope<'_, C>,
        run: Option<Uuid>,
    ) -> AppResult<()> {
        let now = self.clock.now();
        // The holder alone decides: a holder is one run's, and whoever took
        // an expired lease wrote their own. A lease that expired but that
        // nobody took is still safely ours to renew.
        let kept = scope
            .update_many::<job_lease::Entity>()
            .col_expr(job_lease::Column::HeartbeatAt, now.into())
            .col_expr(job_lease::Column::ExpiresAt, (now + self.ttl).into())
            .col_expr(job_lease::Column::JobRunId, run.into())
            .filter(job_lease::Column::Kind.eq(&self.kind))
            .filter(job_lease::Column::Holder.eq(&self.holder))
            .exec(scope.conn())
            .await?;
        if kept.rows_affected == 1 {
            Ok(())
        } else {
            Err(AppError::Internal(anyhow::Error::new(LeaseLost {
                tenant_id: self.tenant_id,
                kind: self.kind.clone(),
            })))
        }
    }

    /// A heartbeat inside `txn`, the transaction of one of the run's
    /// writes: the write commits only if the lease is still ours, and
    /// nobody can take the lease before it commits. On PostgreSQL the
    /// renewal locks the lease row until the commit, so a claimant's
    /// expiry-guarded update waits and then sees the new expiry; SQLite
    /// runs one write transaction at a time.
    ///
    /// # Errors
    /// [`LeaseLost`] (as INTERNAL): roll `txn` back and stop.
    pub async fn fence(
        &self,
        txn: &TenantScope<'_, DatabaseTransaction>,
        run: Uuid,
    ) -> AppResult<()> {
        self.heartbeat(txn, Some(run)).await
    }

    /// Gives the lease up.
    ///
    /// # Errors
    /// Database errors.
    pub async fn release<C: ConnectionTrait>(&self, scope: &TenantScope<'_, C>) -> AppResult<()> {
        scope
            .delete_many::<job_lease::Entity>()
            .filter(job_lease::Column::Kind.eq(&self.kind))
            .filter(job_lease::Column::Holder.eq(&self.holder))
            .exec(scope.conn())
            .await?;
        Ok(())
    }
}
