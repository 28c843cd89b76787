//! Request rate limits per user and per tenant, so that one account or
//! one company cannot take the server from the others.
//!
//! Each is a token bucket (GCRA) holding a minute's worth of operations and
//! refilled evenly: a user may send a burst of up to the per-minute number
//! at once, then one every `60 / n` seconds. The buckets live in this
//! process: with several replicas behind a load balancer each enforces its
//! own share.

use entity::UserId;
use std::{num::NonZeroU32, time::Duration};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use uuid::Uuid;

/// Who ran out of requests, and when they may try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exhausted {
    /// Whose bucket is empty.
    pub whose: Bucket,
    /// Whole seconds until the operations fit again, at least 1.
    pub retry_after_secs: u64,
}

/// Which bucket refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// The caller's own.
    User,
    /// The one all users of the caller's tenant share.
    Tenant,
}

/// The per-user and per-tenant buckets; `None` for a limit set to 0.
pub struct RequestRateLimit {
    per_user: Option<DefaultKeyedRateLimiter<Uuid>>,
    per_tenant: Option<DefaultKeyedRateLimiter<Uuid>>,
}

impl RequestRateLimit {
    /// Buckets of `user_per_minute` and `tenant_per_minute` operations;
    /// 0 turns a limit off.
    pub fn new(user_per_minute: u32, tenant_per_minute: u32) -> Self {
        let limiter = |n| NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        Self {
            per_user: limiter(user_per_minute),
            per_tenant: limiter(tenant_per_minute),
        }
    }

    /// Takes `operations` tokens from the user's bucket, then the
    /// tenant's. A batch costs one token per operation.
    ///
    /// # Errors
    /// [`Exhausted`] with the bucket and the wait; a batch larger than a
    /// whole bucket waits for a full one.
    pub fn check(
        &self,
        tenant_id: Uuid,
        user_id: UserId,
        operations: usize,
    ) -> Result<(), Exhausted> {
        let n = NonZeroU32::new(u32::try_from(operations).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        for (limiter, key, whose) in [
            (&self.per_user, user_id.uuid(), Bucket::User),
            (&self.per_tenant, tenant_id, Bucket::Tenant),
        ] {
            let Some(limiter) = limiter else { continue };
            let wait = match limiter.check_key_n(&key, n) {
                Ok(Ok(())) => continue,
                Ok(Err(not_until)) => not_until.wait_time_from(limiter.clock().now()),
                // More operations than the bucket holds: never in one go.
                Err(_) => Duration::from_secs(60),
            };
            return Err(Exhausted {
                whose,
                retry_after_secs: whole_seconds(wait),
            });
        }
        Ok(())
    }

    /// Forgets buckets that have refilled, so memory follows the callers
    /// of the last minute rather than every caller ever seen.
    pub fn forget_full_buckets(&self) {
        for limiter in [&self.per_user, &self.per_tenant].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Ingested events per API key (or per user for `recordActivities`), a
/// bucket of a minute's worth refilled evenly, separate from the request
/// buckets: one request may carry thousands of events.
pub struct EventRateLimit {
    per_caller: Option<DefaultKeyedRateLimiter<Uuid>>,
}

impl EventRateLimit {
    /// A bucket of `per_minute` events per caller; 0 turns it off.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_caller: NonZeroU32::new(per_minute)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
        }
    }

    /// Takes `events` tokens from the caller's bucket.
    ///
    /// # Errors
    /// Whole seconds until they fit, at least 1; a request larger than the
    /// whole bucket waits a minute, and should be split.
    pub fn check(&self, caller: Uuid, events: usize) -> Result<(), u64> {
        let Some(limiter) = &self.per_caller else {
            return Ok(());
        };
        let n =
            NonZeroU32::new(u32::try_from(events).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        match limiter.check_key_n(&caller, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(whole_seconds(
                not_until.wait_time_from(limiter.clock().now()),
            )),
            Err(_) => Err(60),
        }
    }
}

fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_user_gets_a_minutes_worth_then_waits() {
        let limit = RequestRateLimit::new(3, 0);
        let (tenant, user) = (Uuid::now_v7(), UserId::new());
        for _ in 0..3 {
            assert!(limit.check(tenant, user, 1).is_ok());
        }
        let refused = limit.check(tenant, user, 1).unwrap_err();
        assert_eq!(refused.whose, Bucket::User);
        assert!((1..=20).contains(&refused.retry_after_secs), "{refused:?}");
        // Another user has a bucket of their own.
        assert!(limit.check(tenant, UserId::new(), 1).is_ok());
    }

    #[test]
    fn the_users_of_a_tenant_share_its_bucket() {
        let limit = RequestRateLimit::new(0, 4);
        let tenant = Uuid::now_v7();
        assert!(limit.check(tenant, UserId::new(), 2).is_ok());
        assert!(limit.check(tenant, UserId::new(), 2).is_ok());
        let refused = limit.check(tenant, UserId::new(), 1).unwrap_err();
        assert_eq!(refused.whose, Bucket::Tenant);
        // Another tenant is not slowed.
        assert!(limit.check(Uuid::now_v7(), UserId::new(), 1).is_ok());
    }

    #[test]
    fn a_batch_counts_each_operation_and_zero_means_no_limit() {
        let limit = RequestRateLimit::new(5, 0);
        let (tenant, user) = (Uuid::now_v7(), UserId::new());
        assert!(limit.check(tenant, user, 10).is_err());
        assert!(limit.check(tenant, user, 5).is_ok());

        let open = RequestRateLimit::new(0, 0);
        for _ in 0..10_000 {
            assert!(open.check(tenant, user, 10).is_ok());
        }
    }
}
