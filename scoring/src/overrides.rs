//! Override rules: conditions on a lead that raise or cap its tier and set flags.
//!
//! Rules apply in the model's order after the thresholds, each starting from the
//! tier the previous one left, so a later rule wins: in the default model
//! `URGENT_SIGNAL` comes last, and an urgent lead reaches the top tier even when
//! it was cold. A manager's [`crate::TierPin`] applies after every rule.

use crate::dimensions::{CompiledCriterion, count_met};
use crate::explain::{ChurnCause, LeadFlag};
use crate::facts::{LeadFacts, StageKind};
use crate::model::{Catalog, ChurnRiskRule, OverrideParams};
use crate::{SECONDS_PER_DAY, UnixSeconds};

/// What a rule does to the tier when its condition holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum TierEffect {
    /// Raise to at least this rank.
    AtLeast(u8),
    /// Cap at this rank or below.
    AtMost(u8),
    /// Only set the flag.
    None,
}

impl TierEffect {
    #[inline(always)]
    pub(crate) fn apply(self, rank: u8) -> u8 {
        match self {
            TierEffect::AtLeast(t) => rank.min(t),
            TierEffect::AtMost(t) => rank.max(t),
            TierEffect::None => rank,
        }
    }
}

/// A rule resolved against the catalog and the model's tiers. Each reads one or
/// two batch columns (`a`, `b`), extracted from the facts by [`CompiledRule::extract`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum CompiledRule {
    /// a = latest urgent occurrence (Unix seconds, −∞ when none), b = index of
    /// its signal in `signals`.
    Urgent {
        window_seconds: f64,
        rank: u8,
        signals: Vec<String>,
    },
    /// a = criteria met.
    Bant {
        criteria: Vec<CompiledCriterion>,
        at_least: f64,
        rank: u8,
    },
    /// a = latest inbound activity, or creation when none (Unix seconds).
    Cold {
        silence_seconds: f64,
        effect: TierEffect,
        follow_up_seconds: f64,
    },
    /// a = when the stage rots (Unix seconds, +∞ when it never does).
    Stale { effect: TierEffect },
    /// One cause of CHURN_RISK: a = its measure in the last window (inbound
    /// interactions, complaints, order amounts), b = in the window before.
    /// For complaints `min_previous` is the count the last window needs.
    Churn {
        cause: ChurnCause,
        window_days: u32,
        below_fraction: f64,
        min_previous: f64,
        effect: TierEffect,
    },
    /// a = 1 + index in `stages` of the lead's stage, 0 when not listed.
    Stage { stages: Vec<String>, rank: u8 },
    /// a = inbound activities in the window.
    Burst {
        at_least: f64,
        window_seconds: f64,
        rank: u8,
    },
}

impl CompiledRule {
    pub(crate) fn compile(
        params: &OverrideParams,
        catalog: &Catalog,
        rank_of: &dyn Fn(&str) -> u8,
    ) -> Self {
        let cap = |t: &Option<String>| {
            t.as_deref()
                .map_or(TierEffect::None, |k| TierEffect::AtMost(rank_of(k)))
        };
        match params {
            OverrideParams::UrgentSignal(r) => CompiledRule::Urgent {
                window_seconds: r.within_days * SECONDS_PER_DAY,
                rank: r.tier.as_deref().map_or(0, rank_of),
                signals: match &r.signals {
                    Some(keys) => keys.clone(),
                    None => catalog
                        .signals
                        .iter()
                        .filter(|s| s.urgent)
                        .map(|s| s.key.clone())
                        .collect(),
                },
            },
            OverrideParams::Bant(r) => CompiledRule::Bant {
                criteria: r
                    .criteria
                    .iter()
                    .map(|c| CompiledCriterion::compile(c, catalog))
                    .collect(),
                at_least: f64::from(r.at_least),
                rank: rank_of(&r.tier),
            },
            OverrideParams::Cold(r) => CompiledRule::Cold {
                silence_seconds: r.no_inbound_days * SECONDS_PER_DAY,
                effect: cap(&r.at_most_tier),
                follow_up_seconds: r.follow_up_every_days.unwrap_or(0.0) * SECONDS_PER_DAY,
            },
            OverrideParams::Stale(r) => CompiledRule::Stale {
                effect: cap(&r.at_most_tier),
            },
            OverrideParams::ChurnRisk(r) => {
                Self::churn_causes(r, &cap)
                    .into_iter()
                    .next()
                    .unwrap_or(CompiledRule::Churn {
                        cause: ChurnCause::InteractionsFalling,
                        window_days: r.window_days,
                        below_fraction: r.below_fraction,
                        // Never fires: every cause is off.
                        min_previous: f64::INFINITY,
                        effect: TierEffect::None,
                    })
            }
            OverrideParams::Stage(r) => CompiledRule::Stage {
                stages: r.stages.clone(),
                rank: rank_of(&r.tier),
            },
            OverrideParams::Burst(r) => CompiledRule::Burst {
                at_least: r.at_least as f64,
                window_seconds: r.within_days * SECONDS_PER_DAY,
                rank: rank_of(&r.tier),
            },
        }
    }

    /// Every rule `params` compiles to: one, except CHURN_RISK, which gives
    /// one rule per cause switched on (each fires, and explains, on its own).
    pub(crate) fn compile_all(
        params: &OverrideParams,
        catalog: &Catalog,
        rank_of: &dyn Fn(&str) -> u8,
    ) -> Vec<Self> {
        match params {
            OverrideParams::ChurnRisk(r) => {
                let cap = |t: &Option<String>| {
                    t.as_deref()
                        .map_or(TierEffect::None, |k| TierEffect::AtMost(rank_of(k)))
                };
                Self::churn_causes(r, &cap)
            }
            other => vec![Self::compile(other, catalog, rank_of)],
        }
    }

    fn churn_causes(r: &ChurnRiskRule, cap: &dyn Fn(&Option<String>) -> TierEffect) -> Vec<Self> {
        let effect = cap(&r.at_most_tier);
        let mut rules = Vec::new();
        if r.interactions {
            rules.push(CompiledRule::Churn {
                cause: ChurnCause::InteractionsFalling,
                window_days: r.window_days,
                below_fraction: r.below_fraction,
                min_previous: f64::from(r.min_previous),
                effect,
            });
        }
        if let Some(c) = &r.complaints {
            rules.push(CompiledRule::Churn {
                cause: ChurnCause::ComplaintsRising,
                window_days: c.window_days,
                below_fraction: 1.0,
                min_previous: f64::from(c.at_least),
                effect,
            });
        }
        if let Some(o) = &r.order_amounts {
            rules.push(CompiledRule::Churn {
                cause: ChurnCause::OrderAmountsFalling,
                window_days: o.window_days,
                below_fraction: o.below_fraction,
                min_previous: o.min_previous,
                effect,
            });
        }
        rules
    }

    /// The CHURN_RISK cause the rule stands for, if it is one.
    pub(crate) fn churn_cause(&self) -> Option<ChurnCause> {
        match self {
            CompiledRule::Churn { cause, .. } => Some(*cause),
            _ => None,
        }
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            CompiledRule::Urgent { .. } => "URGENT_SIGNAL",
            CompiledRule::Bant { .. } => "BANT",
            CompiledRule::Cold { .. } => "COLD",
            CompiledRule::Stale { .. } => "STALE",
            CompiledRule::Churn { .. } => "CHURN_RISK",
            CompiledRule::Stage { .. } => "STAGE",
            CompiledRule::Burst { .. } => "BURST",
        }
    }

    pub(crate) fn flag(&self) -> Option<LeadFlag> {
        match self {
            CompiledRule::Urgent { .. } => Some(LeadFlag::Urgent),
            CompiledRule::Bant { .. } | CompiledRule::Stage { .. } | CompiledRule::Burst { .. } => {
                None
            }
            CompiledRule::Cold { .. } => Some(LeadFlag::Cold),
            CompiledRule::Stale { .. } => Some(LeadFlag::Stale),
            CompiledRule::Churn { .. } => Some(LeadFlag::ChurnRisk),
        }
    }

    pub(crate) fn effect(&self) -> TierEffect {
        match self {
            CompiledRule::Urgent { rank, .. }
            | CompiledRule::Bant { rank, .. }
            | CompiledRule::Stage { rank, .. }
            | CompiledRule::Burst { rank, .. } => TierEffect::AtLeast(*rank),
            CompiledRule::Cold { effect, .. }
            | CompiledRule::Stale { effect }
            | CompiledRule::Churn { effect, .. } => *effect,
        }
    }

    /// Whether the rule uses a second column.
    pub(crate) fn has_b(&self) -> bool {
        matches!(
            self,
            CompiledRule::Churn { .. } | CompiledRule::Urgent { .. }
        )
    }

    /// The rule's column values for one lead.
    pub(crate) fn extract(&self, facts: &LeadFacts, now: UnixSeconds) -> (f64, f64) {
        match self {
            CompiledRule::Urgent { signals, .. } => signals
                .iter()
                .enumerate()
                .filter_map(|(i, k)| facts.activity.last_at(k).map(|t| (t, i)))
                // Latest first; on a tie the signal listed first.
                .max_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)))
                .map_or((f64::NEG_INFINITY, 0.0), |(t, i)| (t as f64, i as f64)),
            CompiledRule::Bant { criteria, .. } => (count_met(criteria, facts), 0.0),
            // Silence counts from the last reply; only a lead that never
            // replied counts it from its creation. A lead entered today
            // whose last reply was a month ago (an import, a lead brought
            // over from elsewhere) has been silent for a month.
            CompiledRule::Cold { .. } => (
                facts.activity.last_inbound_at.unwrap_or(facts.created_at) as f64,
                0.0,
            ),
            CompiledRule::Stale { .. } => {
                let s = &facts.stage;
                let rots = match (s.kind, s.rotting_days) {
                    (StageKind::Open, Some(d)) => {
                        s.entered_at as f64 + f64::from(d) * SECONDS_PER_DAY
                    }
                    _ => f64::INFINITY,
                };
                (rots, 0.0)
            }
            CompiledRule::Churn {
                cause, window_days, ..
            } => {
                let (w, a) = (*window_days, &facts.activity);
                match cause {
                    ChurnCause::InteractionsFalling => (
                        f64::from(a.inbound_in_window(now, w, 0)),
                        f64::from(a.inbound_in_window(now, w, w)),
                    ),
                    ChurnCause::ComplaintsRising => (
                        f64::from(a.negative_in_window(now, w, 0)),
                        f64::from(a.negative_in_window(now, w, w)),
                    ),
                    ChurnCause::OrderAmountsFalling => (
                        a.amount_in_window_before(now, w, 0),
                        a.amount_in_window_before(now, w, w),
                    ),
                }
            }
            CompiledRule::Stage { stages, .. } => (
                stages
                    .iter()
                    .position(|k| !k.is_empty() && *k == facts.stage.key)
                    .map_or(0.0, |i| (i + 1) as f64),
                0.0,
            ),
            CompiledRule::Burst { window_seconds, .. } => (
                f64::from(facts.activity.recent_inbound_within(now, *window_seconds)),
                0.0,
            ),
        }
    }

    /// Why the rule fired, in plain English, from the column values.
    pub(crate) fn reason(&self, a: f64, b: f64, now: UnixSeconds, tier_key: &str) -> String {
        let days = |seconds: f64| seconds / SECONDS_PER_DAY;
        match self {
            CompiledRule::Urgent {
                window_seconds,
                signals,
                ..
            } => format!(
                "urgent signal {} {:.1} days ago (within {:.0} days): at least tier {tier_key}",
                signals.get(b as usize).map_or("?", String::as_str),
                days((now as f64 - a).max(0.0)),
                days(*window_seconds)
            ),
            CompiledRule::Bant {
                criteria, at_least, ..
            } => format!(
                "{a:.0} of {} BANT criteria met (needs {at_least:.0}): at least tier {tier_key}",
                criteria.len()
            ),
            CompiledRule::Cold {
                silence_seconds, ..
            } => format!(
                "no inbound response for {:.0} days (cold after {:.0})",
                days(now as f64 - a).floor(),
                days(*silence_seconds)
            ),
            CompiledRule::Stale { .. } => format!(
                "idle in its stage {:.0} days past the rotting limit",
                days(now as f64 - a).floor()
            ),
            CompiledRule::Churn {
                cause,
                window_days,
                below_fraction,
                ..
            } => match cause {
                ChurnCause::InteractionsFalling => format!(
                    "interaction frequency falling: inbound interactions fell from {b:.0} to {a:.0} in the last {window_days} days (below {:.0}%)",
                    below_fraction * 100.0
                ),
                ChurnCause::ComplaintsRising => format!(
                    "complaints rising: {a:.0} complaints in the last {window_days} days, up from {b:.0} in the {window_days} before"
                ),
                ChurnCause::OrderAmountsFalling => format!(
                    "order amounts falling: orders of {a:.2} in the last {window_days} days, down from {b:.2} in the {window_days} before (below {:.0}%)",
                    below_fraction * 100.0
                ),
            },
            CompiledRule::Stage { stages, .. } => format!(
                "in stage {}: at least tier {tier_key}",
                stages
                    .get((a as usize).saturating_sub(1))
                    .map_or("?", String::as_str)
            ),
            CompiledRule::Burst { window_seconds, .. } => format!(
                "burst: {a:.0} inbound signals in {} days: at least tier {tier_key}",
                short_number(days(*window_seconds))
            ),
        }
    }
}

/// A number of days as people write it: `2`, `1.5`.
fn short_number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{}", (v * 10.0).round() / 10.0)
    }
}
