//! Tiers, cadence and the queue priority.

use crate::SECONDS_PER_DAY;
use crate::model::Tier;

/// Scores this close below a threshold still reach it, so that sums of
/// weights × normalised values that are 80 on paper (79.99999999) land in tier A.
pub const THRESHOLD_TOLERANCE: f64 = 1e-9;

/// A tier resolved for the kernel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct CompiledTier {
    pub(crate) min_score: f64,
    pub(crate) follow_up_seconds: f64,
    /// +∞ when the tier asks no first response sooner than its cadence.
    pub(crate) first_response_seconds: f64,
}

impl CompiledTier {
    pub(crate) fn new(t: &Tier) -> Self {
        Self {
            min_score: t.min_score - THRESHOLD_TOLERANCE,
            follow_up_seconds: t.follow_up_every_days * SECONDS_PER_DAY,
            first_response_seconds: t.first_response_hours.map_or(f64::INFINITY, |h| h * 3600.0),
        }
    }
}

/// Rank (0 = top) of the tier `total` falls in, for tiers listed from the top
/// down with the last at 0: the number of thresholds above `total`.
#[inline(always)]
pub(crate) fn rank_of(tiers: &[CompiledTier], total: f64) -> u8 {
    let mut rank = 0u8;
    for t in tiers.iter().take(tiers.len().saturating_sub(1)) {
        rank += u8::from(total < t.min_score);
    }
    rank
}

/// How pressing a lead is, the first key of the queue's order: an urgent
/// signal inside its window, then an overdue follow-up, then one due later
/// today, then the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Urgency {
    /// Not due yet.
    NotDue = 0,
    /// Due later today.
    DueToday = 1,
    /// The follow-up time has passed.
    Overdue = 2,
    /// An urgent signal inside its window.
    Urgent = 3,
}

/// Multiplier of the urgency term in [`priority`].
pub const PRIORITY_URGENCY: i64 = 500_000_000;
/// Multiplier of the tier term in [`priority`].
pub const PRIORITY_TIER: i64 = 10_000_000;

/// The follow-up queue's sort key; larger comes first. Urgency first, then
/// tier (top first), then score:
/// `urgency · 5·10⁸ + (49 − tier_rank) · 10⁷ + round(score · 10⁴)`.
/// It always fits in a GraphQL `Int` (below 2³¹) and reads in decimal once
/// the urgency term is taken off: an overdue lead of tier rank 0 with score
/// 81.2345 is `10⁹ + 49 0812345`.
#[inline(always)]
pub fn priority(urgency: Urgency, tier_rank: u8, total: f64) -> i64 {
    urgency as i64 * PRIORITY_URGENCY
        + (49 - i64::from(tier_rank.min(49))) * PRIORITY_TIER
        + (total.clamp(0.0, 100.0) * 10_000.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> Vec<CompiledTier> {
        crate::templates::default_tiers()
            .iter()
            .map(CompiledTier::new)
            .collect()
    }

    #[test]
    fn scores_map_to_tiers_by_threshold() {
        let t = tiers();
        for (score, rank) in [
            (100.0, 0),
            (80.0, 0),
            (79.999_999_999_9, 0),
            (79.9, 1),
            (50.0, 1),
            (49.9, 2),
            (25.0, 2),
            (24.9, 3),
            (0.0, 3),
        ] {
            assert_eq!(rank_of(&t, score), rank, "score {score}");
        }
    }

    #[test]
    fn priority_puts_urgent_then_overdue_then_due_today_first_then_tier_then_score() {
        let urgent_low = priority(Urgency::Urgent, 3, 1.0);
        let overdue_low = priority(Urgency::Overdue, 3, 1.0);
        let overdue_top = priority(Urgency::Overdue, 0, 100.0);
        let today_low = priority(Urgency::DueToday, 3, 1.0);
        let top_tier = priority(Urgency::NotDue, 0, 80.0);
        let top_tier_higher = priority(Urgency::NotDue, 0, 95.0);
        let second_tier_high = priority(Urgency::NotDue, 1, 79.9);
        assert!(urgent_low > overdue_top);
        assert!(overdue_low > today_low);
        assert!(today_low > top_tier_higher);
        assert!(top_tier_higher > top_tier);
        assert!(top_tier > second_tier_high);
        assert!(priority(Urgency::Urgent, 0, 100.0) < i64::from(i32::MAX));
        assert_eq!(priority(Urgency::Overdue, 0, 81.2345), 1_490_812_345);
    }
}
