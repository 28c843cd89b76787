//! When a lead's follow-up is overdue and whether its tier pin is still
//! in force, each judged at `now` by one rule, in memory and in SQL, so
//! the API, the queue, the counts and the nightly job never disagree.
//! Both are judged live rather than read from the last scoring: a lead
//! that fell due or a pin that lapsed since shows so at once.

use chrono::{DateTime, Utc};
use entity::{enums::LeadStatus, lead};
use sea_orm::{ColumnTrait, Condition};

/// Whether a lead's follow-up is overdue at `now`: the lead is open and its
/// follow-up time has come (at `now` counts).
#[must_use]
pub fn overdue(
    status: LeadStatus,
    next_follow_up_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    status == LeadStatus::Open && next_follow_up_at.is_some_and(|due| due <= now)
}

/// Whole days a lead's follow-up is past due at `now`; 0 when it is not
/// [`overdue`].
#[must_use]
pub fn overdue_days(
    status: LeadStatus,
    next_follow_up_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> i64 {
    next_follow_up_at
        .filter(|_| overdue(status, next_follow_up_at, now))
        .map_or(0, |due| (now - due).num_days())
}

/// [`overdue`] as a filter on `lead` rows, for counts.
#[must_use]
pub fn overdue_condition(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(lead::Column::Status.eq(LeadStatus::Open))
        .add(lead::Column::NextFollowUpAt.lte(now))
}

/// Whether a tier pin lasting until `expires_at` (none: for good) is still
/// in force at `now`; it lapses at its expiry, as the scoring engine
/// ignores it from then on.
#[must_use]
pub fn pin_in_force(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_none_or(|end| end > now)
}

/// The flags of the lead's last scoring, with OVERDUE judged at `now`
/// instead: set when [`overdue`], cleared when no longer.
#[must_use]
pub fn flags_at(
    scored_flags: i32,
    status: LeadStatus,
    next_follow_up_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<scoring::LeadFlag> {
    let overdue = overdue(status, next_follow_up_at, now);
    scoring::LeadFlag::ALL
        .into_iter()
        .filter(|f| match f {
            scoring::LeadFlag::Overdue => overdue,
            f => scored_flags & i32::from(f.bit()) != 0,
        })
        .collect()
}
