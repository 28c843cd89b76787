//! The compiled model: a validated configuration with keys resolved, ready to
//! score one lead or many.

use crate::UnixSeconds;
use crate::batch::{BatchExplanation, LeadBatch, PIN_RULE};
use crate::dimensions::Kernel;
use crate::error::ConfigError;
use crate::explain::{AppliedOverride, Contribution, ScoreSummary, Scorecard};
use crate::facts::LeadFacts;
use crate::model::{Catalog, ModelConfig};
use crate::overrides::{CompiledRule, TierEffect};
use crate::tiers::CompiledTier;

/// A model checked against a catalog once, with field, signal and tier keys
/// resolved, for scoring many leads. Build it with [`ModelConfig::compile`].
///
/// Cheap to share across threads (`Send + Sync`); cloning copies the model.
#[derive(Clone, Debug)]
pub struct CompiledModel {
    pub(crate) config: ModelConfig,
    pub(crate) kernels: Vec<Kernel>,
    pub(crate) weights: Vec<f64>,
    pub(crate) tiers: Vec<CompiledTier>,
    pub(crate) rules: Vec<CompiledRule>,
}

impl ModelConfig {
    /// Validates against `catalog` and resolves every key once, so scoring does
    /// no lookups in the model.
    ///
    /// # Errors
    ///
    /// Every validation problem, as [`ModelConfig::validate`] reports them, plus
    /// any signal the model counts whose half-life in the catalog is not > 0
    /// (path `catalog.signals[i].halfLifeDays`).
    pub fn compile(&self, catalog: &Catalog) -> Result<CompiledModel, Vec<ConfigError>> {
        let mut errors = self.validate(catalog).err().unwrap_or_default();
        for (i, s) in catalog.signals.iter().enumerate() {
            if !(s.half_life_days.is_finite() && s.half_life_days > 0.0) {
                errors.push(ConfigError::new(
                    format!("catalog.signals[{i}].halfLifeDays"),
                    format!(
                        "signal `{}` has half-life {} days; it must be > 0",
                        s.key, s.half_life_days
                    ),
                ));
            }
            if !s.points.is_finite() {
                errors.push(ConfigError::new(
                    format!("catalog.signals[{i}].points"),
                    format!("signal `{}` has non-finite points", s.key),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let rank_of = |key: &str| -> u8 {
            self.tier_rank(key)
                .and_then(|r| u8::try_from(r).ok())
                .unwrap_or(0)
        };
        Ok(CompiledModel {
            kernels: self
                .dimensions
                .iter()
                .map(|d| Kernel::compile(&d.params, catalog))
                .collect(),
            weights: self.dimensions.iter().map(|d| d.weight).collect(),
            tiers: self.tiers.iter().map(CompiledTier::new).collect(),
            rules: self
                .overrides
                .iter()
                .flat_map(|o| CompiledRule::compile_all(&o.params, catalog, &rank_of))
                .collect(),
            config: self.clone(),
        })
    }
}

impl CompiledModel {
    /// The configuration it was compiled from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Seconds without an inbound contact after which the model's COLD
    /// rule calls a lead cold; `None` when it has no such rule. A lead has
    /// been cold since its last inbound contact (or creation) plus these.
    #[must_use]
    pub fn cold_after_seconds(&self) -> Option<f64> {
        self.rules.iter().find_map(|rule| match rule {
            CompiledRule::Cold {
                silence_seconds, ..
            } => Some(*silence_seconds),
            _ => None,
        })
    }

    /// Scores one lead at `now` (Unix seconds) with its full explanation.
    /// Deterministic: the same model, facts and `now` give the same scorecard.
    /// It runs the batch kernel on a batch of one, so it agrees exactly with
    /// [`CompiledModel::score_batch`].
    pub fn score(&self, facts: &LeadFacts, now: UnixSeconds) -> Scorecard {
        let batch = LeadBatch::from_facts(self, std::slice::from_ref(facts), now);
        let mut summaries = Vec::new();
        let mut explanation = BatchExplanation::default();
        self.explain_batch(&batch, &mut summaries, &mut explanation);
        let summary = summaries.first().copied().unwrap_or_default();
        self.scorecard(&batch, &explanation, 0, summary)
    }

    /// Scores one lead without the explanation (no allocation beyond the
    /// batch of one).
    pub fn score_summary(&self, facts: &LeadFacts, now: UnixSeconds) -> ScoreSummary {
        let batch = LeadBatch::from_facts(self, std::slice::from_ref(facts), now);
        let mut out = Vec::with_capacity(1);
        self.score_batch(&batch, &mut out);
        out.first().copied().unwrap_or_default()
    }

    /// The tier key of `rank` (0 = top); the lowest tier's key when out of range.
    pub fn tier_key(&self, rank: u8) -> &str {
        let tiers = &self.config.tiers;
        tiers
            .get(usize::from(rank))
            .or(tiers.last())
            .map_or("", |t| t.key.as_str())
    }

    /// Builds the full scorecard of lead `i` of `batch` from a batch explanation.
    pub fn scorecard(
        &self,
        batch: &LeadBatch,
        explanation: &BatchExplanation,
        i: usize,
        summary: ScoreSummary,
    ) -> Scorecard {
        let d = self.kernels.len();
        let rows = explanation
            .contributions
            .get(i * d..(i + 1) * d)
            .unwrap_or(&[]);
        let contributions = self
            .config
            .dimensions
            .iter()
            .zip(&self.kernels)
            .zip(rows)
            .map(|((dim, kernel), row)| Contribution {
                dimension_key: dim.key.clone(),
                label: dim.label.clone(),
                kind: dim.kind(),
                // NaN marks a value the lead does not have (a date not set).
                raw_value: if row.raw.is_nan() { 0.0 } else { row.raw },
                normalized: row.normalized,
                weight: dim.weight,
                points: row.points,
                detail: kernel.detail(row.raw),
            })
            .collect();
        let now = batch.as_of();
        let overrides = explanation
            .overrides_of(i)
            .filter_map(|o| {
                if o.rule == PIN_RULE {
                    return Some(self.pin_override(batch, i, o.from_rank, o.to_rank));
                }
                let rule = self.rules.get(usize::from(o.rule))?;
                let (a, b) = batch.rule_values(usize::from(o.rule), i);
                let from = self.tier_key(o.from_rank).to_string();
                let to = self.tier_key(o.to_rank).to_string();
                let target = match rule.effect() {
                    TierEffect::AtLeast(r) | TierEffect::AtMost(r) => self.tier_key(r),
                    TierEffect::None => "",
                };
                let effect = match (rule.effect(), o.from_rank.cmp(&o.to_rank)) {
                    (_, std::cmp::Ordering::Greater) => format!("raised {from} → {to}"),
                    (_, std::cmp::Ordering::Less) => format!("capped {from} → {to}"),
                    (TierEffect::None, _) => match rule.flag() {
                        Some(f) => format!("flag {}", f.name()),
                        None => "no change".to_string(),
                    },
                    _ => format!("no change (already {to})"),
                };
                Some(AppliedOverride {
                    rule: rule.kind().to_string(),
                    effect,
                    reason: rule.reason(a, b, now, target),
                    from_tier: from,
                    to_tier: to,
                    flag: rule.flag(),
                    churn_cause: rule.churn_cause(),
                })
            })
            .collect();
        let base_rank = explanation
            .base_ranks
            .get(i)
            .copied()
            .unwrap_or(summary.tier_rank);
        Scorecard {
            total: summary.total,
            tier: self.tier_key(summary.tier_rank).to_string(),
            tier_rank: u32::from(summary.tier_rank),
            base_tier: self.tier_key(base_rank).to_string(),
            contributions,
            overrides,
            flags: summary.flags.to_vec(),
            next_follow_up_at: summary.next_follow_up_at,
            priority: summary.priority,
            computed_at: now,
        }
    }

    fn pin_override(&self, batch: &LeadBatch, i: usize, from: u8, to: u8) -> AppliedOverride {
        let (from, to) = (
            self.tier_key(from).to_string(),
            self.tier_key(to).to_string(),
        );
        let (by, reason, until) = match batch.pin(i) {
            Some((pin, until)) => (pin.pinned_by.as_deref(), pin.reason.as_str(), until),
            None => (None, "", f64::INFINITY),
        };
        // A date, not "n more days": the explanation is stored with the
        // score and read days later.
        let lasting = if until.is_finite() {
            format!(" until {}", utc_date(until as UnixSeconds))
        } else {
            String::new()
        };
        AppliedOverride {
            rule: "PIN".to_string(),
            effect: if from == to {
                format!("pinned at {to}")
            } else {
                format!("pinned {from} → {to}")
            },
            reason: format!(
                "tier pinned to {to} by {}{lasting}: {reason}",
                by.unwrap_or("a manager")
            ),
            from_tier: from,
            to_tier: to,
            flag: None,
            churn_cause: None,
        }
    }
}

/// The UTC calendar date of `at` (Unix seconds) as `YYYY-MM-DD`, by Howard
/// Hinnant's days-to-civil algorithm: the crate keeps no clock or calendar
/// dependency for one date in an explanation.
fn utc_date(at: UnixSeconds) -> String {
    let days = at.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::utc_date;

    #[test]
    fn utc_dates_match_the_calendar() {
        for (at, date) in [
            (0, "1970-01-01"),
            (951_782_400, "2000-02-29"),
            (1_750_000_000, "2025-06-15"),
            (1_764_547_199, "2025-11-30"),
            (1_796_083_200, "2026-12-01"),
            (-86_400, "1969-12-31"),
        ] {
            assert_eq!(utc_date(at), date, "{at}");
        }
    }
}
