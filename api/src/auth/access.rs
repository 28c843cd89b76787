//! Whether the holder of a valid access token may still act, and as what.
//!
//! A signed token says who the caller was when it was issued; it cannot
//! say that their password changed, that they signed out, that an admin
//! revoked their sessions, demoted or deactivated them since. So every
//! request compares its token with the user as they are now: their current
//! role (never the token's), their active flag, their session version
//! (bumped when all their sessions are revoked) and the session families
//! revoked one by one.
//!
//! Reading the user on every request would add a query to the hot path,
//! so each process keeps each user's [`UserAccess`] in memory, the way
//! `service::configuration::tenant_config` keeps a tenant's configuration, invalidated the
//! same way: the transaction that changes a user's access ends with
//! [`commit_change`], which announces the change on the live-updates
//! channel (every process drops its copy when the notice reaches it) and
//! drops this process's copy once committed. A copy also expires after
//! [`TTL`], should a notice be missed.

use crate::tenancy::Walled;
use entity::UserId;
use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use entity::{enums::Role, refresh_session, user};
use moka::sync::Cache;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, QueryFilter, QuerySelect};
use uuid::Uuid;

use super::{
    Authentication, Principal,
    tokens::{Claims, TokenKeys},
};
use crate::{error::AppResult, tenancy::TenantScope};

/// How long a copy lives at most, should the notice of a change not reach
/// this process.
pub const TTL: Duration = Duration::from_secs(60);

/// Users whose access one process keeps at once.
const CAPACITY: u64 = 100_000;

/// How far back revoked session families are remembered: longer than any
/// access token of theirs can live, with room for clock skew.
const REVOKED_LOOKBACK: chrono::Duration = chrono::Duration::hours(25);

/// A user's access as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAccess {
    /// The current role: requests act with it, whatever the token says.
    pub role: Role,
    /// A deactivated user's tokens stop working at once.
    pub active: bool,
    /// Tokens issued at an older version were revoked.
    pub session_version: i32,
    /// Session families revoked one by one (sign-out of one session, a
    /// reused refresh token) whose access tokens may still be unexpired.
    pub revoked_families: Vec<Uuid>,
}

/// Why a valid token no longer lets its holder in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The user was deactivated or deleted.
    Inactive,
    /// The token's session was ended: signed out, password changed,
    /// sessions revoked.
    Revoked,
}

impl Refusal {
    /// What the client is told.
    #[must_use]
    pub fn message(self) -> &'static str {
        match self {
            Self::Inactive => "your account is no longer active",
            Self::Revoked => "this session has been ended; sign in again",
        }
    }
}

impl UserAccess {
    /// Reads a user's access from the database.
    ///
    /// # Errors
    /// Database errors.
    pub async fn load<C: ConnectionTrait>(
        scope: &TenantScope<'_, C>,
        user_id: UserId,
        now: DateTime<Utc>,
    ) -> AppResult<Option<Self>> {
        let Some(row) = scope.find::<user::Entity>(user_id).await? else {
            return Ok(None);
        };
        let revoked_families: Vec<Uuid> = scope
            .select::<refresh_session::Entity>()
            .select_only()
            .column(refresh_session::Column::FamilyId)
            .distinct()
            .filter(refresh_session::Column::UserId.eq(user_id))
            .filter(refresh_session::Column::RevokedAt.gt(now - REVOKED_LOOKBACK))
            .into_tuple()
            .all(scope.conn())
            .await?;
        Ok(Some(Self {
            role: row.role,
            active: row.active,
            session_version: row.session_version,
            revoked_families,
        }))
    }

    /// Whether a token with `claims` still lets its holder in, and as whom:
    /// the caller with their current role.
    ///
    /// # Errors
    /// The reason it does not.
    pub fn admit(&self, claims: &Claims) -> Result<Principal, Refusal> {
        if !self.active {
            return Err(Refusal::Inactive);
        }
        let session = claims.session();
        if session.version < self.session_version
            || session
                .family
                .is_some_and(|f| self.revoked_families.contains(&f))
        {
            return Err(Refusal::Revoked);
        }
        Ok(Principal {
            role: self.role,
            ..claims.principal()
        })
    }
}

static CACHE: LazyLock<Cache<(Uuid, entity::UserId), Arc<UserAccess>>> = LazyLock::new(|| {
    Cache::builder()
        .max_capacity(CAPACITY)
        .time_to_live(TTL)
        .build()
});

/// Bumped by every invalidation: a copy read before a change committed is
/// not kept when the change was announced while it was being read.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The user's access, from this process's copy when it has one; `None`
/// when the user does not exist.
///
/// # Errors
/// Database errors.
pub async fn get(
    db: &DatabaseConnection,
    tenant_id: Uuid,
    user_id: UserId,
    now: DateTime<Utc>,
) -> AppResult<Option<Arc<UserAccess>>> {
    let key = (tenant_id, user_id);
    if let Some(access) = CACHE.get(&key) {
        return Ok(Some(access));
    }
    let epoch = EPOCH.load(Ordering::Acquire);
    let Some(access) = UserAccess::load(&Walled::new(db, tenant_id).scope(), user_id, now).await?
    else {
        return Ok(None);
    };
    let access = Arc::new(access);
    if EPOCH.load(Ordering::Acquire) == epoch {
        CACHE.insert(key, Arc::clone(&access));
    }
    Ok(Some(access))
}

/// Checks a verified token against its user as they are now.
///
/// # Errors
/// `Ok(Err(refusal))` when the token no longer admits; `Err` for database
/// errors.
pub async fn admit(
    db: &DatabaseConnection,
    claims: &Claims,
    now: DateTime<Utc>,
) -> AppResult<Result<Principal, Refusal>> {
    Ok(match get(db, claims.tid, claims.sub, now).await? {
        Some(access) => access.admit(claims),
        None => Err(Refusal::Inactive),
    })
}

/// A bearer token checked in full: algorithm, signature and expiry, then
/// the user as they are now. The claims come back with an admitted token.
pub async fn authenticate(
    db: &DatabaseConnection,
    keys: &TokenKeys,
    token: &str,
    now: DateTime<Utc>,
) -> (Authentication, Option<Claims>) {
    let claims = match keys.verify_claims(token) {
        Ok(claims) => claims,
        Err(why) => return (Authentication::Rejected(why), None),
    };
    match admit(db, &claims, now).await {
        Ok(Ok(principal)) => (Authentication::Authenticated(principal), Some(claims)),
        Ok(Err(refusal)) => {
            tracing::info!(user_id = %claims.sub, ?refusal, "a valid token was refused");
            (Authentication::Rejected(refusal.message()), None)
        }
        Err(err) => {
            tracing::error!(error = ?err, "the caller's access could not be read");
            (Authentication::Unavailable, None)
        }
    }
}

/// Drops this process's copy of a user's access.
pub fn invalidate(tenant_id: Uuid, user_id: UserId) {
    EPOCH.fetch_add(1, Ordering::AcqRel);
    CACHE.invalidate(&(tenant_id, user_id));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn claims(ver: i32, sid: Option<Uuid>) -> Claims {
        Claims {
            sub: entity::UserId::new(),
            tid: Uuid::now_v7(),
            role: Role::Owner,
            iat: 0,
            exp: 0,
            ver,
            sid,
        }
    }

    fn access(role: Role, active: bool, version: i32, revoked: Vec<Uuid>) -> UserAccess {
        UserAccess {
            role,
            active,
            session_version: version,
            revoked_families: revoked,
        }
    }

    #[test]
    fn the_current_role_wins_over_the_tokens() {
        let admitted = access(Role::Rep, true, 0, vec![])
            .admit(&claims(0, None))
            .unwrap();
        assert_eq!(admitted.role, Role::Rep);
    }

    #[test]
    fn an_inactive_user_an_old_version_and_a_revoked_family_are_refused() {
        let family = Uuid::now_v7();
        assert_eq!(
            access(Role::Rep, false, 0, vec![]).admit(&claims(0, None)),
            Err(Refusal::Inactive)
        );
        assert_eq!(
            access(Role::Rep, true, 2, vec![]).admit(&claims(1, Some(family))),
            Err(Refusal::Revoked)
        );
        assert_eq!(
            access(Role::Rep, true, 0, vec![family]).admit(&claims(0, Some(family))),
            Err(Refusal::Revoked)
        );
        assert!(
            access(Role::Rep, true, 2, vec![family])
                .admit(&claims(2, Some(Uuid::now_v7())))
                .is_ok()
        );
    }
}
