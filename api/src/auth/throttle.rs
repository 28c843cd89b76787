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

/// The counters a login attempt is checked against.
pub struct AttemptKeys {
    account: String,
    client: String,
}

impl AttemptKeys {
    /// Keys for a tenant slug, an email and a client address.
    pub fn new(tenant_slug: &str, email: &str, client: &str) -> Self {
        Self {
            account: format!(
                "account:{}:{}",
                tenant_slug.to_lowercase(),
                email.to_lowercase()
            ),
            client: format!("client:{client}"),
        }
    }
}

impl LoginThrottle {
    /// Refuses the attempt while either counter is at its limit.
    ///
    /// # Errors
    /// [`AppError::RateLimited`] with the seconds until the oldest counted
    /// failure leaves the window.
    pub async fn check(
        &self,
        db: &impl ConnectionTrait,
        keys: &AttemptKeys,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        for (key, limit) in [
            (&keys.account, self.per_account),
            (&keys.client, self.per_client),
        ] {
            if let Some(oldest) = self.oldest_counted(db, key, limit, now).await? {
                let retry = (oldest + self.window - now).num_seconds().max(1);
                return Err(AppError::RateLimited {
                    retry_after_secs: retry.unsigned_abs(),
                });
            }
        }
        Ok(())
    }

    /// The oldest failure still in the window, when the window holds
    /// `limit` or more.
    async fn oldest_counted(
        &self,
        db: &impl ConnectionTrait,
        key: &str,
        limit: u32,
        now: DateTime<Utc>,
    ) -> AppResult<Option<DateTime<Utc>>> {
        let since = now - self.window;
        // The `limit`-th newest failure decides: when it is inside the
        // window, so are `limit` failures.
        let newest: Vec<DateTime<Utc>> = login_failure::Entity::find()
            .select_only()
            .column(login_failure::Column::At)
            .filter(login_failure::Column::ThrottleKey.eq(key))
            .filter(login_failure::Column::At.gt(since))
            .order_by_desc(login_failure::Column::At)
            .limit(u64::from(limit))
            .into_tuple()
            .all(db)
            .await?;
        Ok((limit > 0 && newest.len() >= limit as usize)
            .then(|| newest.last().copied())
            .flatten())
    }

    /// Counts a failed attempt, and forgets failures that left the window.
    ///
    /// # Errors
    /// Database errors.
    pub async fn record_failure(
        &self,
        db: &impl ConnectionTrait,
        keys: &AttemptKeys,
        now: DateTime<Utc>,
    ) -> AppResult<()> {
        let rows = [&keys.account, &keys.client].map(|key| login_failure::ActiveModel {
            throttle_key: Set(key.clone()),
            at: Set(now),
            ..Default::default()
        });
        login_failure::Entity::insert_many(rows).exec(db).await?;
        login_failure::Entity::delete_many()
            .filter(
                login_failure::Column::ThrottleKey
                    .is_in([keys.account.clone(), keys.client.clone()]),
            )
            .filter(login_failure::Column::At.lt(now - self.window))
            .exec(db)
            .await?;
        Ok(())
    }
}
