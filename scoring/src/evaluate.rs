//! Model evaluation on closed leads and what-if comparison of two models.
//!
//! These are what the admin screens show: does tier A really convert better
//! (won-rate and lift per tier, ROC AUC), and what would change if a draft
//! model were activated (tier moves, score distribution before and after, the
//! leads that move most).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::UnixSeconds;
use crate::batch::LeadBatch;
use crate::engine::CompiledModel;
use crate::facts::LeadFacts;

/// ROC AUC of `scores` against outcomes: the probability that a random won
/// lead scores above a random lost one (ties count half). 0.5 is chance,
/// 1 perfect. `None` when there are no won or no lost leads, or the slices
/// differ in length. O(n log n).
pub fn roc_auc(scores: &[f64], won: &[bool]) -> Option<f64> {
    if scores.len() != won.len() {
        return None;
    }
    let positives = won.iter().filter(|w| **w).count();
    let negatives = won.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (
            scores.get(a).copied().unwrap_or(0.0),
            scores.get(b).copied().unwrap_or(0.0),
        );
        x.total_cmp(&y)
    });
    // Sum of the won leads' mid-ranks (Mann–Whitney U).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let value = order
            .get(i)
            .and_then(|&k| scores.get(k))
            .copied()
            .unwrap_or(0.0);
        let mut j = i;
        while j < order.len()
            && order
                .get(j)
                .and_then(|&k| scores.get(k))
                .copied()
                .unwrap_or(0.0)
                == value
        {
            j += 1;
        }
        let mid_rank = (i + j + 1) as f64 / 2.0;
        let wins_in_tie = order
            .get(i..j)
            .unwrap_or(&[])
            .iter()
            .filter(|&&k| won.get(k).copied().unwrap_or(false))
            .count();
        rank_sum += mid_rank * wins_in_tie as f64;
        i = j;
    }
    let p = positives as f64;
    let u = rank_sum - p * (p + 1.0) / 2.0;
    Some(u / (p * negatives as f64))
}

/// Brier score: mean squared difference between probabilities (0–1) and
/// outcomes (won = 1). 0 is perfect; always answering 0.5 scores 0.25.
/// `None` when empty or the slices differ in length.
pub fn brier_score(probabilities: &[f64], won: &[bool]) -> Option<f64> {
    if probabilities.is_empty() || probabilities.len() != won.len() {
        return None;
    }
    let sum: f64 = probabilities
        .iter()
        .zip(won)
        .map(|(p, w)| (p - f64::from(u8::from(*w))).powi(2))
        .sum();
    Some(sum / probabilities.len() as f64)
}

/// One bin of a reliability table: the leads whose predicted probability
/// fell in `[lower, upper)` (the last bin includes 1), what they were
/// predicted on average and how often they were won.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReliabilityBin {
    /// Lowest probability of the bin (0–1).
    pub lower: f64,
    /// Highest probability of the bin (0–1), exclusive but for the last.
    pub upper: f64,
    /// Closed leads in the bin.
    pub leads: usize,
    /// Mean predicted probability of those leads (0 when empty).
    pub mean_predicted: f64,
    /// Share of them won (0 when empty).
    pub won_rate: f64,
}

/// Reliability table of `probabilities` (0–1) against outcomes: `bins`
/// equal-width bins of probability, every bin listed even when empty. A
/// calibrated model has `won_rate` near `mean_predicted` in every full bin.
/// Empty when the slices differ in length or `bins` is 0.
pub fn reliability(probabilities: &[f64], won: &[bool], bins: usize) -> Vec<ReliabilityBin> {
    if bins == 0 || probabilities.len() != won.len() {
        return Vec::new();
    }
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for (&p, &w) in probabilities.iter().zip(won) {
        if !p.is_finite() {
            continue;
        }
        let p = p.clamp(0.0, 1.0);
        let k = ((p * bins as f64) as usize).min(bins - 1);
        if let Some(s) = sums.get_mut(k) {
            s.0 += 1;
            s.1 += p;
            s.2 += usize::from(w);
        }
    }
    sums.into_iter()
        .enumerate()
        .map(|(k, (leads, total, won))| ReliabilityBin {
            lower: k as f64 / bins as f64,
            upper: (k + 1) as f64 / bins as f64,
            leads,
            mean_predicted: if leads > 0 { total / leads as f64 } else { 0.0 },
            won_rate: if leads > 0 {
                won as f64 / leads as f64
            } else {
                0.0
            },
        })
        .collect()
}

/// Closed leads in one tier; matches the contract's `TierEvaluation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TierEvaluation {
    /// Tier key.
    pub tier: String,
    /// Closed leads in the tier.
    pub leads: usize,
    /// Of which won.
    pub won: usize,
    /// won / leads (0 when empty).
    pub won_rate: f64,
    /// won_rate / overall won rate (0 when either is 0): 2 means twice as
    /// likely to win as the average closed lead.
    pub lift: f64,
}

/// A model judged on closed leads; matches the contract's `ModelEvaluation`
/// (less the model id, which the server adds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelEvaluation {
    /// Closed leads evaluated.
    pub closed_leads: usize,
    /// ROC AUC of the scores, or None with one class.
    pub auc: Option<f64>,
    /// Brier score of the scores read as probabilities (score / 100).
    pub brier: Option<f64>,
    /// One entry per tier key in `tier_keys` order, then any other tier seen.
    pub tiers: Vec<TierEvaluation>,
    /// Reliability table of the scores read as probabilities (score / 100),
    /// 10 bins.
    pub reliability: Vec<ReliabilityBin>,
}

/// One closed lead: its score (0–100), its tier key and whether it was won.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClosedLead<'a> {
    /// Score, 0–100.
    pub score: f64,
    /// Tier key.
    pub tier: &'a str,
    /// Won (true) or lost.
    pub won: bool,
}

/// Evaluates scores against outcomes: AUC, Brier and won-rate and lift per
/// tier, listing every key of `tier_keys` (the model's tiers, top first) even
/// when empty.
pub fn evaluate(tier_keys: &[&str], closed: &[ClosedLead<'_>]) -> ModelEvaluation {
    let scores: Vec<f64> = closed.iter().map(|c| c.score).collect();
    let probs: Vec<f64> = closed
        .iter()
        .map(|c| (c.score / 100.0).clamp(0.0, 1.0))
        .collect();
    let won: Vec<bool> = closed.iter().map(|c| c.won).collect();
    let total_won = won.iter().filter(|w| **w).count();
    let overall = if closed.is_empty() {
        0.0
    } else {
        total_won as f64 / closed.len() as f64
    };
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for c in closed {
        let e = counts.entry(c.tier).or_default();
        e.0 += 1;
        e.1 += usize::from(c.won);
    }
    let mut keys: Vec<&str> = tier_keys.to_vec();
    keys.extend(counts.keys().filter(|k| !tier_keys.contains(k)));
    let tiers = keys
        .into_iter()
        .map(|k| {
            let (leads, won) = counts.get(k).copied().unwrap_or_default();
            let won_rate = if leads == 0 {
                0.0
            } else {
                won as f64 / leads as f64
            };
            TierEvaluation {
                tier: k.to_string(),
                leads,
                won,
                won_rate,
                lift: if overall > 0.0 {
                    won_rate / overall
                } else {
                    0.0
                },
            }
        })
        .collect();
    ModelEvaluation {
        closed_leads: closed.len(),
        auc: roc_auc(&scores, &won),
        brier: brier_score(&probs, &won),
        reliability: reliability(&probs, &won, 10),
        tiers,
    }
}

/// Mean and deciles of scores; matches the contract's `ScoreStats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreStats {
    /// Mean score.
    pub mean: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
}

impl ScoreStats {
    /// Statistics of `scores` (all zero when empty); percentiles interpolate
    /// linearly between order statistics.
    pub fn of(scores: &[f64]) -> Self {
        if scores.is_empty() {
            return Self::default();
        }
        let mut sorted = scores.to_vec();
        sorted.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let pos = p * (sorted.len() - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            let (a, b) = (
                sorted.get(lo).copied().unwrap_or(0.0),
                sorted.get(hi).copied().unwrap_or(0.0),
            );
            a + (b - a) * (pos - lo as f64)
        };
        Self {
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            p10: q(0.1),
            p50: q(0.5),
            p90: q(0.9),
        }
    }
}

/// How many leads moved from one tier to another; matches `TierMove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TierMove {
    /// Tier key before.
    pub from: String,
    /// Tier key after.
    pub to: String,
    /// Leads.
    pub count: usize,
}

/// One lead's move between two models; `index` is its position in the input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeadMove {
    /// Position of the lead in the compared slices.
    pub index: usize,
    /// Score before, 0–100.
    pub from_score: f64,
    /// Score after, 0–100.
    pub to_score: f64,
    /// Tier key before.
    pub from_tier: String,
    /// Tier key after.
    pub to_tier: String,
}

/// What changes between two models over the same leads; the contract's
/// `ScoringPreview` less the lead objects and AUCs, which the server adds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// Leads compared.
    pub leads_evaluated: usize,
    /// Every (from, to) pair with its count, including unchanged tiers,
    /// sorted by from then to.
    pub tier_moves: Vec<TierMove>,
    /// Score statistics under the first model.
    pub before: ScoreStats,
    /// Score statistics under the second model.
    pub after: ScoreStats,
    /// The leads whose score moved most (tier changes first), largest first.
    pub biggest_moves: Vec<LeadMove>,
}

/// Compares `(score, tier key)` pairs of the same leads under two models,
/// keeping the `biggest` largest moves. Extra entries in the longer slice are
/// ignored.
pub fn compare(before: &[(f64, &str)], after: &[(f64, &str)], biggest: usize) -> Comparison {
    let n = before.len().min(after.len());
    let mut moves: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for ((_, a), (_, b)) in before.iter().zip(after) {
        *moves.entry((a, b)).or_default() += 1;
    }
    let mut order: Vec<usize> = (0..n).collect();
    let key = |i: usize| {
        let (Some((s0, t0)), Some((s1, t1))) = (before.get(i), after.get(i)) else {
            return (false, 0.0);
        };
        (t0 != t1, (s1 - s0).abs())
    };
    order.sort_by(|&a, &b| {
        let (ta, da) = key(a);
        let (tb, db) = key(b);
        tb.cmp(&ta).then(db.total_cmp(&da)).then(a.cmp(&b))
    });
    let biggest_moves = order
        .into_iter()
        .take(biggest)
        .filter_map(|i| {
            let ((s0, t0), (s1, t1)) = (before.get(i)?, after.get(i)?);
            Some(LeadMove {
                index: i,
                from_score: *s0,
                to_score: *s1,
                from_tier: t0.to_string(),
                to_tier: t1.to_string(),
            })
        })
        .collect();
    let scores = |v: &[(f64, &str)]| v.iter().take(n).map(|(s, _)| *s).collect::<Vec<_>>();
    Comparison {
        leads_evaluated: n,
        tier_moves: moves
            .into_iter()
            .map(|((f, t), count)| TierMove {
                from: f.to_string(),
                to: t.to_string(),
                count,
            })
            .collect(),
        before: ScoreStats::of(&scores(before)),
        after: ScoreStats::of(&scores(after)),
        biggest_moves,
    }
}

/// Scores `facts` under both models at `now` through the batch path and
/// compares them (see [`compare`]).
pub fn preview(
    before: &CompiledModel,
    after: &CompiledModel,
    facts: &[LeadFacts],
    now: UnixSeconds,
    biggest: usize,
) -> Comparison {
    let run = |model: &CompiledModel| {
        let batch = LeadBatch::from_facts(model, facts, now);
        let mut out = Vec::new();
        model.score_batch(&batch, &mut out);
        out
    };
    let (b, a) = (run(before), run(after));
    fn pairs<'m>(model: &'m CompiledModel, v: &[crate::ScoreSummary]) -> Vec<(f64, &'m str)> {
        v.iter()
            .map(|s| (s.total, model.tier_key(s.tier_rank)))
            .collect()
    }
    compare(&pairs(before, &b), &pairs(after, &a), biggest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn auc_counts_ties_as_half_and_needs_both_classes() {
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(roc_auc(&[1.0, 2.0], &[true, true]), None);
        assert_eq!(roc_auc(&[], &[]), None);
    }

    #[test]
    fn brier_is_the_mean_squared_error() {
        assert_eq!(brier_score(&[1.0, 0.0], &[true, false]), Some(0.0));
        assert_eq!(brier_score(&[0.5, 0.5], &[true, false]), Some(0.25));
        assert_eq!(brier_score(&[], &[]), None);
    }

    #[test]
    fn reliability_bins_count_predictions_and_wins() {
        let t = reliability(
            &[0.05, 0.08, 0.55, 1.0, 0.99],
            &[false, true, true, true, false],
            10,
        );
        assert_eq!(t.len(), 10);
        assert_eq!((t[0].leads, t[0].won_rate), (2, 0.5));
        assert!((t[0].mean_predicted - 0.065).abs() < 1e-12);
        assert_eq!((t[5].leads, t[5].won_rate), (1, 1.0));
        assert_eq!((t[9].leads, t[9].won_rate), (2, 0.5));
        assert_eq!(t[3].leads, 0);
        assert!(reliability(&[0.1], &[], 10).is_empty());
    }

    #[test]
    fn won_rate_and_lift_are_per_tier() {
        let c = |score, tier, won| ClosedLead { score, tier, won };
        let e = evaluate(
            &["A", "B", "C"],
            &[
                c(90.0, "A", true),
                c(85.0, "A", true),
                c(60.0, "B", false),
                c(55.0, "B", true),
            ],
        );
        assert_eq!(e.closed_leads, 4);
        assert_eq!(e.auc, Some(2.0 / 3.0));
        let a = &e.tiers[0];
        assert_eq!((a.leads, a.won, a.won_rate), (2, 2, 1.0));
        assert!((a.lift - 4.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.tiers[2].leads, 0);
        assert_eq!(e.tiers[2].lift, 0.0);
    }

    #[test]
    fn comparison_counts_moves_and_finds_the_biggest() {
        let before = [(10.0, "C"), (60.0, "B"), (85.0, "A"), (30.0, "C")];
        let after = [(12.0, "C"), (82.0, "A"), (70.0, "B"), (31.0, "C")];
        let c = compare(&before, &after, 2);
        assert_eq!(c.leads_evaluated, 4);
        assert!(c.tier_moves.contains(&TierMove {
            from: "B".into(),
            to: "A".into(),
            count: 1
        }));
        assert!(c.tier_moves.contains(&TierMove {
            from: "C".into(),
            to: "C".into(),
            count: 2
        }));
        assert_eq!(c.biggest_moves[0].index, 1);
        assert_eq!(c.biggest_moves[1].index, 2);
        assert_eq!(c.before.mean, 46.25);
        assert_eq!(ScoreStats::of(&[0.0, 10.0]).p50, 5.0);
    }
}
