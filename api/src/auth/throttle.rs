//! Throttling of failed logins and of sign-ups, counted in the database so
//! every replica sees the same counts. Successful logins are never counted.
//!
//! Lockout must not be a weapon: once an account's failures reach the
//! limit, guesses from anywhere wait out the window, except from a client
//! the account signed in from successfully before (a *known* client),
//! which is held to a limit of its own. So a stranger guessing at an
//! account cannot keep its owner out, and the owner's known client guessing
//! wrong is throttled like anyone. We chose this over a growing delay,
//! which would slow the owner as much as the attacker, and over no
//! account limit at all, which would leave an account open to guesses
//! spread over many addresses. A known client is remembered for
//! [`KNOWN_CLIENT_DAYS`] after its last successful sign-in.

// Login failures are counted by tenant slug and email before any tenant is
// known, and keep no tenant id: no tenant scope applies to them.
#![allow(clippy::disallowed_methods)]

use chrono::{DateTime, Duration, Utc};
use entity::login_failure;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::error::{AppError, AppResult};

/// The limits, from the settings.
#[derive(Clone, Copy, Debug)]
pub struct LoginThrottle {
    /// Failures allowed for one tenant and email within the window.
    pub per_account: u32,
    /// Failures allowed from one client address within the window.
    pub per_client: u32,
    /// The window.
    pub window: Duration,
}

/// How long a client stays known to an account after it last signed in.
pub const KNOWN_CLIENT_DAYS: i64 = 90;

/// The counters a login attempt is checked against. Keys are hashed, so
/// any email or address fits the column and none is stored in clear.
pub struct AttemptKeys {
    account: String,
    client: String,
    /// This account from this client: its own counter once the account's
    /// is full, when the client is known.
    account_client: String,
    /// The marker that this client signed in to this account before.
    known: String,
}

impl AttemptKeys {
    /// Keys for a tenant slug, an email and a client address.
    pub fn new(tenant_slug: &str, email: &str, client: &str) -> Self {
        let account = format!("{}:{}", tenant_slug.to_lowercase(), email.to_lowercase());
        Self {
            account: digest(&format!("account:{account}")),
            client: digest(&format!("client:{client}")),
            account_client: digest(&format!("account-client:{account}:{client}")),
            known: digest(&format!("known:{account}:{client}")),
        }
    }

    /// Records that the client signed in to the account: from now on the
    /// account's lockout does not keep it out.
    ///
    /// # Errors
    /// Database errors.
    pub async fn remember_client(
        &self,
        db: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        // The throttle's table also keeps one row per known client, keyed
        // apart from the failures; its time is the last successful sign-in.
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::ThrottleKey.eq(self.known.clone()))
            .exec(db)
            .await?;
        login_failure::Entity::insert(login_failure::ActiveModel {
            throttle_key: Set(self.known.clone()),
            at: Set(now),
            ..Default::default()
        })
        .exec(db)
        .await?;
        Ok(())
    }

    async fn is_known(&self, db: &impl ConnectionTrait, now: DateTime<Utc>) -> AppResult<bool> {
        Ok(login_failure::Entity::find()
            .filter(login_failure::Column::ThrottleKey.eq(self.known.clone()))
            .filter(login_failure::Column::At.gt(now - Duration::days(KNOWN_CLIENT_DAYS)))
            .one(db)
            .await?
            .is_some())
    }
}

fn digest(raw: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(raw.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An attempt counted as failed until [`PendingAttempt::forget`] says it
/// succeeded.
#[must_use]
pub struct PendingAttempt {
    ids: Vec<i64>,
}

impl PendingAttempt {
    /// The attempt succeeded: successful logins are never counted.
    ///
    /// # Errors
    /// Database errors.
    pub async fn forget(self, db: &impl ConnectionTrait) -> AppResult<()> {
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::Id.is_in(self.ids))
            .exec(db)
            .await?;
        Ok(())
    }
}

impl LoginThrottle {
    /// Counts an attempt as failed before the password is checked, then
    /// refuses it when either counter is over its limit. Counting first
    /// means concurrent guesses each see one another, so no more than the
    /// limit get through however many arrive at once.
    ///
    /// # Errors
    /// [`AppError::RateLimited`] with the seconds until the window frees a
    /// place; database errors.
    pub async fn begin_attempt(
        &self,
        db: &impl ConnectionTrait,
        keys: &AttemptKeys,
        now: DateTime<Utc>,
    ) -> AppResult<PendingAttempt> {
        let counted = [&keys.account, &keys.client, &keys.account_client];
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::ThrottleKey.is_in(counted.map(String::clone)))
            .filter(login_failure::Column::At.lt(now - self.window))
            .exec(db)
            .await?;
        let mut ids = Vec::with_capacity(counted.len());
        for key in counted {
            ids.push(insert_attempt(db, key, now).await?);
        }
        let pending = PendingAttempt { ids };
        let mut blocked = blocking_attempt(
            db,
            &keys.client,
            self.per_client,
            &pending.ids,
            self.window,
            now,
        )
        .await?;
        if blocked.is_none() {
            blocked = blocking_attempt(
                db,
                &keys.account,
                self.per_account,
                &pending.ids,
                self.window,
                now,
            )
            .await?;
            // A full account counter does not keep out a client the account
            // signed in from before: that client has a counter of its own.
            if blocked.is_some() && keys.is_known(db, now).await? {
                blocked = blocking_attempt(
                    db,
                    &keys.account_client,
                    self.per_account,
                    &pending.ids,
                    self.window,
                    now,
                )
                .await?;
            }
        }
        if let Some(oldest) = blocked {
            // A refused attempt is not a guess at the password: uncount it.
            pending.forget(db).await?;
            return Err(retry_at(oldest + self.window, now));
        }
        Ok(pending)
    }
}

/// The limit on sign-ups from one client address, from the settings:
/// sign-up is open, and each one creates a tenant with its defaults.
#[derive(Clone, Copy, Debug)]
pub struct SignUpThrottle {
    /// Sign-ups allowed from one client within the window; 0 for no limit.
    pub per_client: u32,
    /// The window.
    pub window: Duration,
}

impl SignUpThrottle {
    /// Counts a sign-up attempt from `client`, refusing it when the client
    /// made `per_client` attempts within the window. Every attempt counts,
    /// successful or not, so taken slugs cannot be probed without limit.
    ///
    /// # Errors
    /// [`AppError::RateLimited`]; database errors.
    pub async fn count_attempt(
        &self,
        db: &impl ConnectionTrait,
        client: &str,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        if self.per_client == 0 {
            return Ok(());
        }
        let key = digest(&format!("sign-up:{client}"));
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::ThrottleKey.eq(key.clone()))
            .filter(login_failure::Column::At.lt(now - self.window))
            .exec(db)
            .await?;
        let id = insert_attempt(db, &key, now).await?;
        if let Some(oldest) =
            blocking_attempt(db, &key, self.per_client, &[id], self.window, now).await?
        {
            login_failure::Entity::delete_by_id(id).exec(db).await?;
            return Err(retry_at(oldest + self.window, now));
        }
        Ok(())
    }
}

async fn insert_attempt(
    db: &impl ConnectionTrait,
    key: &str,
    now: DateTime<Utc>,
) -> AppResult<i64> {
    let row = login_failure::ActiveModel {
        throttle_key: Set(key.to_owned()),
        at: Set(now),
        ..Default::default()
    };
    Ok(login_failure::Entity::insert(row)
        .exec(db)
        .await?
        .last_insert_id)
}

fn retry_at(free_at: DateTime<Utc>, now: DateTime<Utc>) -> AppError {
    crate::metrics::login_throttled();
    let retry = (free_at - now).num_seconds().max(1);
    AppError::RateLimited {
        retry_after_secs: retry.unsigned_abs(),
    }
}

/// When `limit` earlier attempts on `key` are still in the window, the
/// oldest of them: the window frees a place when it leaves.
async fn blocking_attempt(
    db: &impl ConnectionTrait,
    key: &str,
    limit: u32,
    own: &[i64],
    window: Duration,
    now: DateTime<Utc>,
) -> AppResult<Option<DateTime<Utc>>> {
    // Earlier attempts only (lower ids), so of simultaneous attempts the
    // first `limit` go through and the rest wait.
    let own_id = own.iter().copied().max().unwrap_or(i64::MAX);
    let earlier: Vec<DateTime<Utc>> = login_failure::Entity::find()
        .select_only()
        .column(login_failure::Column::At)
        .filter(login_failure::Column::ThrottleKey.eq(key))
        .filter(login_failure::Column::At.gt(now - window))
        .filter(login_failure::Column::Id.is_not_in(own.iter().copied()))
        .filter(login_failure::Column::Id.lt(own_id))
        .order_by_desc(login_failure::Column::Id)
        .limit(u64::from(limit))
        .into_tuple()
        .all(db)
        .await?;
    Ok((earlier.len() >= limit as usize)
        .then(|| earlier.iter().min().copied())
        .flatten())
}
