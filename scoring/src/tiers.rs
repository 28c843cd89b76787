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
}

impl CompiledTier {
    pub(crate) fn new(t: &Tier) -> Self {
        Self {
            min_score: t.min_score - THRESHOLD_TOLERANCE,
            follow_up_seconds: t.follow_up_every_days * SECONDS_PER_DAY,
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

/// Position of the overdue bit in [`priority`].
pub const PRIORITY_OVERDUE: i64 = 1_000_000_000;
/// Multiplier of the tier term in [`priority`].
pub const PRIORITY_TIER: i64 = 10_000_000;

/// The follow-up queue's sort key; larger comes first. Overdue leads come
/// first, then by tier (top first), then by score:
/// `overdue · 10⁹ + (99 − tier_rank) · 10⁷ + round(score · 10⁴)`.
/// It always fits in a GraphQL `Int` (below 2³¹) and reads in decimal:
/// `1 99 0812345` is overdue, tier rank 0, score 81.2345.
#[inline(always)]
pub fn priority(overdue: bool, tier_rank: u8, total: f64) -> i64 {
    i64::from(overdue) * PRIORITY_OVERDUE
        + (99 - i64::from(tier_rank.min(99))) * PRIORITY_TIER
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
    fn priority_puts_overdue_first_then_tier_then_score() {
        let overdue_low = priority(true, 3, 1.0);
        let top_tier = priority(false, 0, 80.0);
        let top_tier_higher = priority(false, 0, 95.0);
        let second_tier_high = priority(false, 1, 79.9);
        assert!(overdue_low > top_tier_higher);
        assert!(top_tier_higher > top_tier);
        assert!(top_tier > second_tier_high);
        assert!(priority(true, 0, 100.0) < i64::from(i32::MAX));
        assert_eq!(priority(true, 0, 81.2345), 1_990_812_345);
    }
}
