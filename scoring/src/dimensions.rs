//! Dimension kinds: how each one reads a lead and maps it to 0–1.
//!
//! Each kind has two halves: *extraction* reads [`LeadFacts`] into one number per
//! lead (a column of the batch), and *normalisation* maps that column to 0–1 in
//! a loop the compiler can vectorise. The per-lead and batch paths share both.

use std::collections::BTreeMap;

use crate::decay::exp2;
use crate::facts::{LeadFacts, StageKind};
use crate::model::{
    Catalog, Criterion, DimensionParams, Direction, FieldType, MonetarySource, StageBasis,
};
use crate::{SECONDS_PER_DAY, UnixSeconds};

/// How a RATING dimension maps its column to 0–1.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum RatingMap {
    /// A 1–5 rating: `(r − 1) / 4`.
    Linear,
    /// Piecewise linear through `[x, y]` points, flat outside.
    Breakpoints(Vec<[f64; 2]>),
    /// Already 0–1 at extraction (CATEGORY tables, BOOLEAN).
    Direct,
}

/// How a RATING dimension reads its field.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum FieldRead {
    Number,
    Table(BTreeMap<String, f64>),
    Bool,
}

/// A criterion resolved against the catalog.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CompiledCriterion {
    field: String,
    test: CriterionTest,
}

#[derive(Clone, Debug, PartialEq)]
enum CriterionTest {
    AtLeast(f64),
    OneOf(Vec<String>),
    IsTrue,
}

impl CompiledCriterion {
    pub(crate) fn compile(c: &Criterion, catalog: &Catalog) -> Self {
        let field_type = catalog.field(&c.field).map(|f| f.field_type);
        let test = match (field_type, c.at_least, &c.one_of) {
            (Some(FieldType::Boolean), _, _) => CriterionTest::IsTrue,
            (_, Some(v), _) => CriterionTest::AtLeast(v),
            (_, None, Some(list)) => CriterionTest::OneOf(list.clone()),
            (_, None, None) => CriterionTest::IsTrue,
        };
        Self {
            field: c.field.clone(),
            test,
        }
    }

    pub(crate) fn is_met(&self, facts: &LeadFacts) -> bool {
        let Some(v) = facts.attribute(&self.field) else {
            return false;
        };
        match &self.test {
            CriterionTest::AtLeast(min) => v.as_number().is_some_and(|x| x >= *min),
            CriterionTest::OneOf(list) => v.as_text().is_some_and(|s| list.iter().any(|o| o == s)),
            CriterionTest::IsTrue => v.as_bool() == Some(true),
        }
    }
}

/// Criteria met by `facts`.
pub(crate) fn count_met(criteria: &[CompiledCriterion], facts: &LeadFacts) -> f64 {
    criteria.iter().filter(|c| c.is_met(facts)).count() as f64
}

/// One group of signals sharing a half-life within an ENGAGEMENT dimension:
/// their decayed points fold into one accumulator, so the kernel takes one
/// exponential per group rather than per signal.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EngagementGroup {
    pub(crate) half_life_seconds: f64,
    /// (signal key, points)
    pub(crate) signals: Vec<(String, f64)>,
}

impl EngagementGroup {
    /// `(value, ref)`: Σ points × decayed count, all brought to `ref`, the latest
    /// occurrence among the group's signals (NaN-free; `ref` 0 when none).
    pub(crate) fn extract(&self, facts: &LeadFacts) -> (f64, f64) {
        let accs: Vec<(f64, &crate::decay::SignalAccumulator)> = self
            .signals
            .iter()
            .filter_map(|(k, p)| facts.activity.signals.get(k).map(|a| (*p, a)))
            .collect();
        let Some(reference) = accs.iter().map(|(_, a)| a.ref_at).max() else {
            return (0.0, 0.0);
        };
        let value = accs
            .iter()
            .map(|(p, a)| {
                p * a.decayed * exp2(-((reference - a.ref_at) as f64) / self.half_life_seconds)
            })
            .filter(|v| v.is_finite())
            .sum();
        (value, reference as f64)
    }
}

/// A dimension resolved against the catalog.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kernel {
    Rating {
        field: String,
        read: FieldRead,
        map: RatingMap,
        missing: f64,
    },
    Bant {
        criteria: Vec<CompiledCriterion>,
    },
    Engagement {
        groups: Vec<EngagementGroup>,
        /// `3 / (cap · ln 2)`: normalised = 1 − 2^(−points · this).
        saturation: f64,
    },
    Recency {
        horizon_days: f64,
    },
    Frequency {
        window_days: u32,
        target: f64,
    },
    Monetary {
        source: MonetarySource,
        window_days: u32,
        ln_cap: f64,
    },
    Stage {
        basis: StageBasis,
    },
    Predicted {
        fallback: Option<f64>,
    },
    Responsiveness {
        window_days: u32,
        target_hours: f64,
        missing: f64,
    },
    DateProximity {
        field: String,
        horizon_days: f64,
        grace_days: f64,
    },
}

impl Kernel {
    /// Resolves validated parameters against `catalog`.
    pub(crate) fn compile(params: &DimensionParams, catalog: &Catalog) -> Self {
        match params {
            DimensionParams::Rating(r) => {
                let field_type = catalog
                    .field(&r.field)
                    .map_or(FieldType::Number, |f| f.field_type);
                let (read, map) = match (field_type, &r.values, &r.breakpoints) {
                    (FieldType::Category, values, _) => (
                        FieldRead::Table(values.clone().unwrap_or_default()),
                        RatingMap::Direct,
                    ),
                    (FieldType::Boolean, _, _) => (FieldRead::Bool, RatingMap::Direct),
                    (_, _, Some(bp)) => (FieldRead::Number, RatingMap::Breakpoints(bp.clone())),
                    (_, _, None) => (FieldRead::Number, RatingMap::Linear),
                };
                Kernel::Rating {
                    field: r.field.clone(),
                    read,
                    map,
                    missing: r.missing.unwrap_or(0.0),
                }
            }
            DimensionParams::Bant(b) => Kernel::Bant {
                criteria: b
                    .criteria
                    .iter()
                    .map(|c| CompiledCriterion::compile(c, catalog))
                    .collect(),
            },
            DimensionParams::Engagement(e) => {
                let mut by_half_life: BTreeMap<u64, EngagementGroup> = BTreeMap::new();
                for s in &catalog.signals {
                    let chosen = match &e.signals {
                        Some(keys) => keys.contains(&s.key),
                        None => {
                            !s.retired && (e.include_outbound || s.direction == Direction::Inbound)
                        }
                    };
                    if !(chosen && s.half_life_days > 0.0 && s.half_life_days.is_finite()) {
                        continue;
                    }
                    let h = s.half_life_days * SECONDS_PER_DAY;
                    by_half_life
                        .entry(h.to_bits())
                        .or_insert_with(|| EngagementGroup {
                            half_life_seconds: h,
                            signals: Vec::new(),
                        })
                        .signals
                        .push((s.key.clone(), s.points));
                }
                Kernel::Engagement {
                    groups: by_half_life.into_values().collect(),
                    saturation: 3.0 / (e.cap * std::f64::consts::LN_2),
                }
            }
            DimensionParams::Recency(r) => Kernel::Recency {
                horizon_days: r.horizon_days,
            },
            DimensionParams::Frequency(f) => Kernel::Frequency {
                window_days: f.window_days,
                target: f.target,
            },
            DimensionParams::Monetary(m) => Kernel::Monetary {
                source: m.source,
                window_days: m.window_days.unwrap_or(0),
                ln_cap: m.cap.ln_1p(),
            },
            DimensionParams::Stage(s) => Kernel::Stage { basis: s.basis },
            DimensionParams::Predicted(p) => Kernel::Predicted {
                fallback: p.fallback,
            },
            DimensionParams::Responsiveness(r) => Kernel::Responsiveness {
                window_days: r.window_days,
                target_hours: r.target_hours,
                missing: r.missing.unwrap_or(0.0),
            },
            DimensionParams::DateProximity(d) => Kernel::DateProximity {
                field: d.field.clone(),
                horizon_days: d.horizon_days,
                grace_days: d.grace_days,
            },
        }
    }

    /// The batch column value for one lead (ENGAGEMENT uses its groups instead).
    /// Missing values are NaN where the normalisation distinguishes them.
    pub(crate) fn extract(&self, facts: &LeadFacts, now: UnixSeconds) -> f64 {
        match self {
            Kernel::Rating { field, read, .. } => {
                let Some(v) = facts.attribute(field) else {
                    return f64::NAN;
                };
                match read {
                    FieldRead::Number => {
                        v.as_number().filter(|x| x.is_finite()).unwrap_or(f64::NAN)
                    }
                    // An option the table leaves out scores 0, like an unrated need.
                    FieldRead::Table(t) => v
                        .as_text()
                        .map_or(f64::NAN, |s| t.get(s).copied().unwrap_or(0.0)),
                    FieldRead::Bool => v.as_bool().map_or(f64::NAN, |b| f64::from(u8::from(b))),
                }
            }
            Kernel::Bant { criteria } => count_met(criteria, facts),
            Kernel::Engagement { .. } => 0.0,
            Kernel::Recency { .. } => facts
                .activity
                .last_inbound_at
                .map_or(f64::NAN, |t| t as f64),
            Kernel::Frequency { window_days, .. } => {
                f64::from(facts.activity.inbound_in_window(now, *window_days, 0))
            }
            Kernel::Monetary {
                source,
                window_days,
                ..
            } => {
                let v = match source {
                    MonetarySource::DealValue => facts.deal_value.unwrap_or(0.0),
                    MonetarySource::Amounts => facts.activity.amount_in_window(now, *window_days),
                };
                if v.is_finite() { v.max(0.0) } else { 0.0 }
            }
            Kernel::Stage { basis } => {
                let s = &facts.stage;
                let v = match basis {
                    StageBasis::WinProbability => s.win_probability,
                    StageBasis::Position if s.kind == StageKind::Won => 1.0,
                    StageBasis::Position if s.stage_count > 1 => {
                        f64::from(s.position) / f64::from(s.stage_count - 1)
                    }
                    StageBasis::Position => 0.0,
                };
                clamp_unit(v)
            }
            Kernel::Predicted { fallback } => {
                let v = facts
                    .predicted_close_probability
                    .filter(|p| p.is_finite())
                    .unwrap_or_else(|| fallback.unwrap_or(facts.stage.win_probability));
                clamp_unit(v)
            }
            Kernel::Responsiveness {
                window_days,
                target_hours,
                ..
            } => {
                let since = now - i64::from(*window_days) * crate::decay::DAY_SECONDS;
                facts.activity.response_hours(since, now, *target_hours).0
            }
            // Whole UTC days from today to the date: people plan by the day.
            Kernel::DateProximity { field, .. } => facts
                .attribute(field)
                .and_then(|v| v.as_date())
                .map_or(f64::NAN, |date| {
                    (date.div_euclid(crate::decay::DAY_SECONDS)
                        - now.div_euclid(crate::decay::DAY_SECONDS)) as f64
                }),
        }
    }

    /// Maps a column slice to raw values (in the dimension's unit) and
    /// normalised values (0–1). `engagement` holds the decayed points for
    /// ENGAGEMENT dimensions and is ignored otherwise.
    #[inline]
    pub(crate) fn normalise(
        &self,
        column: &[f64],
        engagement: &[f64],
        now: UnixSeconds,
        raw: &mut [f64],
        norm: &mut [f64],
    ) {
        match self {
            Kernel::Rating { map, missing, .. } => {
                let missing = *missing;
                match map {
                    RatingMap::Linear => {
                        for ((r, n), &x) in raw.iter_mut().zip(norm.iter_mut()).zip(column) {
                            let present = !x.is_nan();
                            *r = if present { x } else { 0.0 };
                            *n = if present {
                                ((x - 1.0) * 0.25).clamp(0.0, 1.0)
                            } else {
                                missing
                            };
                        }
                    }
                    RatingMap::Direct => {
                        for ((r, n), &x) in raw.iter_mut().zip(norm.iter_mut()).zip(column) {
                            let present = !x.is_nan();
                            *r = if present { x } else { 0.0 };
                            *n = if present { x.clamp(0.0, 1.0) } else { missing };
                        }
                    }
                    RatingMap::Breakpoints(bp) => {
                        for ((r, n), &x) in raw.iter_mut().zip(norm.iter_mut()).zip(column) {
                            let present = !x.is_nan();
                            *r = if present { x } else { 0.0 };
                            *n = if present { piecewise(bp, x) } else { missing };
                        }
                    }
                }
            }
            Kernel::Bant { criteria } => {
                let inv = 1.0 / criteria.len().max(1) as f64;
                for ((r, n), &x) in raw.iter_mut().zip(norm.iter_mut()).zip(column) {
                    *r = x;
                    *n = x * inv;
                }
            }
            Kernel::Engagement { saturation, .. } => {
                let k = *saturation;
                for ((r, n), &s) in raw.iter_mut().zip(norm.iter_mut()).zip(engagement) {
                    *r = s;
                    *n = 1.0 - exp2(-(s.max(0.0)) * k);
                }
            }
            Kernel::Recency { horizon_days } => {
                let inv = 1.0 / horizon_days;
                let now = now as f64;
                for ((r, n), &last) in raw.iter_mut().zip(norm.iter_mut()).zip(column) {
                    let never = last.is_nan();
                    let days = ((now - last) / SECONDS_PER_DAY).max(0.0);
                    *r = if never { -1.0 } else { days };
                    *n = if never {
                        0.0
                    } else {
                        (1.0 - days * inv).clamp(0.0, 1.0)
                    };
                }
            }
            Kernel::Frequency { target, .. } => {
                let inv = 1.0 / target;
                for ((r, n), &x) in raw.iter_mut().zip(norm.iter_mut()).zip(column) {
                    *r = x;
                    *n = (x * inv).min(1.0);
                }
            }
            Kernel::Monetary { ln_cap, .. } => {
                let inv = 1.0 / ln_cap;
                for ((r, n), &x) in raw.iter_mut().zip(norm.iter_mut()).zip(column) {
                    *r = x;
                    *n = (x.ln_1p() * inv).clamp(0.0, 1.0);
                }
            }
            Kernel::Stage { .. } | Kernel::Predicted { .. } => {
                raw.copy_from_slice(column);
                norm.copy_from_slice(column);
            }
            Kernel::Responsiveness {
                target_hours,
                missing,
                ..
            } => {
                let (target, missing) = (*target_hours, *missing);
                for ((r, n), &x) in raw.iter_mut().zip(norm.iter_mut()).zip(column) {
                    let measured = !x.is_nan();
                    *r = if measured { x } else { -1.0 };
                    *n = if measured {
                        target / (target + x.max(0.0))
                    } else {
                        missing
                    };
                }
            }
            Kernel::DateProximity {
                horizon_days,
                grace_days,
                ..
            } => {
                let (inv, grace) = (1.0 / horizon_days, -grace_days);
                // Raw stays NaN for a lead without the date: the scorecard
                // says so and shows 0.
                for ((r, n), &days) in raw.iter_mut().zip(norm.iter_mut()).zip(column) {
                    *r = days;
                    *n = if days.is_nan() || days < grace {
                        0.0
                    } else {
                        (1.0 - days.max(0.0) * inv).clamp(0.0, 1.0)
                    };
                }
            }
        }
    }
}

impl Kernel {
    /// A sentence on the raw value, for the kinds whose number needs one.
    pub(crate) fn detail(&self, raw: f64) -> Option<String> {
        match self {
            Kernel::Responsiveness { window_days, .. } => Some(if raw < 0.0 || raw.is_nan() {
                format!("no reply to our contacts measured in the last {window_days} days")
            } else {
                format!("replies to our contacts in {raw:.1} hours (median)")
            }),
            Kernel::DateProximity { field, .. } => Some(if raw.is_nan() {
                format!("no {field} set")
            } else if raw > 0.0 {
                format!("{field} in {raw:.0} day(s)")
            } else if raw == 0.0 {
                format!("{field} is today")
            } else {
                format!("{field} passed {:.0} day(s) ago", -raw)
            }),
            _ => None,
        }
    }
}

/// Clamps to 0–1, mapping NaN to 0.
pub(crate) fn clamp_unit(v: f64) -> f64 {
    if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) }
}

/// Piecewise-linear interpolation through `bp` (x strictly increasing), flat
/// outside the first and last points.
pub(crate) fn piecewise(bp: &[[f64; 2]], x: f64) -> f64 {
    let (Some(first), Some(last)) = (bp.first(), bp.last()) else {
        return 0.0;
    };
    if x <= first[0] {
        return clamp_unit(first[1]);
    }
    if x >= last[0] {
        return clamp_unit(last[1]);
    }
    for w in bp.windows(2) {
        if let [a, b] = w
            && x <= b[0]
        {
            let t = (x - a[0]) / (b[0] - a[0]);
            return clamp_unit(a[1] + t * (b[1] - a[1]));
        }
    }
    clamp_unit(last[1])
}
