//! Throttling of failed logins, counted in the database so every replica
//! sees the same counts. Successful logins are never counted.

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

/// The counters a login attempt is checked against. Keys are hashed, so
/// any email or address fits the column and none is stored in clear.
pub struct AttemptKeys {
    account: String,
    client: String,
}

impl AttemptKeys {
    /// Keys for a tenant slug, an email and a client address.
    pub fn new(tenant_slug: &str, email: &str, client: &str) -> Self {
        Self {
            account: digest(&format!(
                "account:{}:{}",
                tenant_slug.to_lowercase(),
                email.to_lowercase()
            )),
            client: digest(&format!("client:{client}")),
        }
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
        login_failure::Entity::delete_many()
            .filter(
                login_failure::Column::ThrottleKey
                    .is_in([keys.account.clone(), keys.client.clone()]),
            )
            .filter(login_failure::Column::At.lt(now - self.window))
            .exec(db)
            .await?;
        let mut ids = Vec::with_capacity(2);
        for key in [&keys.account, &keys.client] {
            let row = login_failure::ActiveModel {
                throttle_key: Set(key.clone()),
                at: Set(now),
                ..Default::default()
            };
            ids.push(
                login_failure::Entity::insert(row)
                    .exec(db)
                    .await?
                    .last_insert_id,
            );
        }
        let pending = PendingAttempt { ids };
        for (key, limit) in [
            (&keys.account, self.per_account),
            (&keys.client, self.per_client),
        ] {
            if let Some(oldest) = self
                .blocking_failure(db, key, limit, &pending.ids, now)
                .await?
            {
                // A refused attempt is not a guess at the password: uncount it.
                pending.forget(db).await?;
                let retry = (oldest + self.window - now).num_seconds().max(1);
                return Err(AppError::RateLimited {
                    retry_after_secs: retry.unsigned_abs(),
                });
            }
        }
        Ok(pending)
    }

    /// When `limit` earlier attempts on `key` are still in the window, the
    /// oldest of them: the window frees a place when it leaves.
    async fn blocking_failure(
        &self,
        db: &impl ConnectionTrait,
        key: &str,
        limit: u32,
        own: &[i64],
        now: DateTime<Utc>,
    ) -> AppResult<Option<DateTime<Utc>>> {
        // Earlier attempts only (lower ids), so of simultaneous attempts the
        // first `limit` go through and the rest wait.
        let own_id = own.iter().copied().max().unwrap_or(i64::MAX);
        let earlier: Vec<DateTime<Utc>> = login_failure::Entity::find()
            .select_only()
            .column(login_failure::Column::At)
            .filter(login_failure::Column::ThrottleKey.eq(key))
            .filter(login_failure::Column::At.gt(now - self.window))
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
}
