//! Batch scoring over struct-of-arrays columns.
//!
//! [`LeadBatch`] holds one `f64` column per input the model reads (a rating, a
//! count, a time), extracted from [`LeadFacts`] once. The kernel then walks the
//! columns in chunks of [`CHUNK`] leads, one dimension or rule at a time, in
//! loops without allocation or lookups that the compiler vectorises. Time decay
//! stays in the kernel: an ENGAGEMENT dimension keeps, per group of signals
//! sharing a half-life, the decayed points at the group's latest activity, and
//! the kernel decays them to `now`.
//!
//! Window counts (FREQUENCY, MONETARY amounts, CHURN_RISK) are taken when the
//! batch is built, so a batch is "the leads as of `as_of`" and is scored at that
//! time.

use crate::UnixSeconds;
use crate::decay::exp2;
use crate::dimensions::Kernel;
use crate::engine::CompiledModel;
use crate::explain::ScoreSummary;
use crate::facts::{LeadFacts, TierPin};
use crate::overrides::CompiledRule;
use crate::tiers::{Urgency, priority, rank_of};

/// Leads per kernel chunk: small enough that a chunk's scratch stays in L1.
pub const CHUNK: usize = 256;

/// The decayed points of one group of signals for every lead.
#[derive(Clone, Debug, Default)]
struct GroupColumns {
    value: Vec<f64>,
    reference: Vec<f64>,
}

/// Leads laid out as columns for one compiled model, as of one time.
#[derive(Clone, Debug)]
pub struct LeadBatch {
    as_of: UnixSeconds,
    len: usize,
    /// One per dimension; empty for ENGAGEMENT.
    columns: Vec<Vec<f64>>,
    /// Per dimension, per signal group; empty except for ENGAGEMENT.
    groups: Vec<Vec<GroupColumns>>,
    rule_a: Vec<Vec<f64>>,
    rule_b: Vec<Vec<f64>>,
    /// Last outbound contact, or creation: the cadence counts from here.
    contact_base: Vec<f64>,
    /// A scheduled follow-up not yet completed (+∞ when none).
    scheduled: Vec<f64>,
    /// Since when the lead is new to its tier with no outbound contact
    /// since (+∞ once contacted): its tier's first response counts from here.
    fresh_since: Vec<f64>,
    /// Pinned tier rank (NaN when none) and when the pin lapses (+∞ never).
    pin_rank: Vec<f64>,
    pin_until: Vec<f64>,
    /// The pin itself, for its explanation; pins are rare, so a clone is cheap.
    pins: Vec<Option<TierPin>>,
}

impl LeadBatch {
    /// An empty batch for `model`, as of `as_of` (Unix seconds), with room for
    /// `capacity` leads.
    pub fn with_capacity(model: &CompiledModel, as_of: UnixSeconds, capacity: usize) -> Self {
        let col = || Vec::with_capacity(capacity);
        Self {
            as_of,
            len: 0,
            columns: model
                .kernels
                .iter()
                .map(|k| match k {
                    Kernel::Engagement { .. } => Vec::new(),
                    _ => col(),
                })
                .collect(),
            groups: model
                .kernels
                .iter()
                .map(|k| match k {
                    Kernel::Engagement { groups, .. } => groups
                        .iter()
                        .map(|_| GroupColumns {
                            value: col(),
                            reference: col(),
                        })
                        .collect(),
                    _ => Vec::new(),
                })
                .collect(),
            rule_a: model.rules.iter().map(|_| col()).collect(),
            rule_b: model
                .rules
                .iter()
                .map(|r| if r.has_b() { col() } else { Vec::new() })
                .collect(),
            contact_base: col(),
            scheduled: col(),
            fresh_since: col(),
            pin_rank: col(),
            pin_until: col(),
            pins: Vec::with_capacity(capacity),
        }
    }

    /// A batch of `facts` for `model`, as of `as_of`.
    pub fn from_facts(model: &CompiledModel, facts: &[LeadFacts], as_of: UnixSeconds) -> Self {
        let mut batch = Self::with_capacity(model, as_of, facts.len());
        for f in facts {
            batch.push(model, f);
        }
        batch
    }

    /// Appends one lead; `model` must be the one the batch was made for.
    pub fn push(&mut self, model: &CompiledModel, facts: &LeadFacts) {
        for ((kernel, column), groups) in model
            .kernels
            .iter()
            .zip(&mut self.columns)
            .zip(&mut self.groups)
        {
            match kernel {
                Kernel::Engagement { groups: defs, .. } => {
                    for (def, cols) in defs.iter().zip(groups.iter_mut()) {
                        let (value, reference) = def.extract(facts);
                        cols.value.push(value);
                        cols.reference.push(reference);
                    }
                }
                _ => column.push(kernel.extract(facts, self.as_of)),
            }
        }
        for ((rule, a), b) in model
            .rules
            .iter()
            .zip(&mut self.rule_a)
            .zip(&mut self.rule_b)
        {
            let (va, vb) = rule.extract(facts, self.as_of);
            a.push(va);
            if rule.has_b() {
                b.push(vb);
            }
        }
        let base = facts.activity.last_outbound_at.unwrap_or(facts.created_at);
        self.contact_base.push(base as f64);
        // An outbound contact at or after the scheduled time completed it.
        let scheduled = facts
            .scheduled_follow_up_at
            .filter(|at| facts.activity.last_outbound_at < Some(*at));
        self.scheduled
            .push(scheduled.map_or(f64::INFINITY, |at| at as f64));
        let new_since = facts.tier_rose_at.unwrap_or(facts.created_at);
        self.fresh_since.push(
            if facts
                .activity
                .last_outbound_at
                .is_some_and(|t| t >= new_since)
            {
                f64::INFINITY
            } else {
                new_since as f64
            },
        );
        let pin = facts
            .pin
            .as_ref()
            .and_then(|p| model.config.tier_rank(&p.tier).map(|r| (p, r)));
        match pin {
            Some((p, rank)) => {
                self.pin_rank.push(rank as f64);
                self.pin_until
                    .push(p.expires_at.map_or(f64::INFINITY, |t| t as f64));
                self.pins.push(Some(p.clone()));
            }
            None => {
                self.pin_rank.push(f64::NAN);
                self.pin_until.push(f64::INFINITY);
                self.pins.push(None);
            }
        }
        self.len += 1;
    }

    /// Number of leads.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch has no leads.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The time the batch describes and is scored at, Unix seconds.
    pub fn as_of(&self) -> UnixSeconds {
        self.as_of
    }

    /// Removes every lead, keeping the allocations, and moves to `as_of`.
    pub fn clear(&mut self, as_of: UnixSeconds) {
        self.as_of = as_of;
        self.len = 0;
        for c in self
            .columns
            .iter_mut()
            .chain(self.rule_a.iter_mut())
            .chain(self.rule_b.iter_mut())
        {
            c.clear();
        }
        for g in self.groups.iter_mut().flatten() {
            g.value.clear();
            g.reference.clear();
        }
        self.contact_base.clear();
        self.scheduled.clear();
        self.fresh_since.clear();
        self.pin_rank.clear();
        self.pin_until.clear();
        self.pins.clear();
    }

    pub(crate) fn pin(&self, lead: usize) -> Option<(&TierPin, f64)> {
        let pin = self.pins.get(lead)?.as_ref()?;
        Some((
            pin,
            self.pin_until.get(lead).copied().unwrap_or(f64::INFINITY),
        ))
    }

    pub(crate) fn rule_values(&self, rule: usize, lead: usize) -> (f64, f64) {
        let get = |cols: &Vec<Vec<f64>>| {
            cols.get(rule)
                .and_then(|c| c.get(lead))
                .copied()
                .unwrap_or(0.0)
        };
        (get(&self.rule_a), get(&self.rule_b))
    }
}

/// One dimension of one lead in a [`BatchExplanation`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ContributionRow {
    /// Raw value in the dimension's unit.
    pub raw: f64,
    /// Normalised value, 0–1.
    pub normalized: f64,
    /// weight × normalised, out of 100.
    pub points: f64,
}

/// [`OverrideRow::rule`] of a manager's pin rather than a model rule.
pub const PIN_RULE: u16 = u16::MAX;

/// One override that fired for one lead in a [`BatchExplanation`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverrideRow {
    /// Lead index in the batch.
    pub lead: u32,
    /// Rule index in the model, or [`PIN_RULE`].
    pub rule: u16,
    /// Tier rank before the rule.
    pub from_rank: u8,
    /// Tier rank after the rule.
    pub to_rank: u8,
}

/// Every lead's contributions and fired overrides, without strings; turn one
/// lead's into a [`crate::Scorecard`] with [`CompiledModel::scorecard`].
#[derive(Clone, Debug, Default)]
pub struct BatchExplanation {
    /// `contributions[lead × dimensions + dimension]`.
    pub contributions: Vec<ContributionRow>,
    /// Fired overrides, by lead, then in rule order.
    pub overrides: Vec<OverrideRow>,
    /// Tier rank from the thresholds alone, per lead.
    pub base_ranks: Vec<u8>,
}

impl BatchExplanation {
    /// The overrides that fired for lead `i`, in the order they applied.
    pub fn overrides_of(&self, i: usize) -> impl Iterator<Item = &OverrideRow> {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        let lo = self.overrides.partition_point(|o| o.lead < i);
        let hi = self.overrides.partition_point(|o| o.lead <= i);
        self.overrides.get(lo..hi).unwrap_or(&[]).iter()
    }
}

/// Receives the kernel's intermediate results; the no-op sink compiles away.
trait Sink {
    fn dimension(&mut self, d: usize, start: usize, raw: &[f64], norm: &[f64], weight: f64);
    fn base_ranks(&mut self, ranks: &[u8]);
    fn rule(&mut self, lead: usize, rule: usize, from: u8, to: u8);
}

struct NoExplain;

impl Sink for NoExplain {
    #[inline(always)]
    fn dimension(&mut self, _: usize, _: usize, _: &[f64], _: &[f64], _: f64) {}
    #[inline(always)]
    fn base_ranks(&mut self, _: &[u8]) {}
    #[inline(always)]
    fn rule(&mut self, _: usize, _: usize, _: u8, _: u8) {}
}

struct Explain<'a> {
    dims: usize,
    out: &'a mut BatchExplanation,
}

impl Sink for Explain<'_> {
    #[inline]
    fn dimension(&mut self, d: usize, start: usize, raw: &[f64], norm: &[f64], weight: f64) {
        let rows = self
            .out
            .contributions
            .iter_mut()
            .skip(start * self.dims + d)
            .step_by(self.dims);
        for ((row, &r), &n) in rows.zip(raw).zip(norm) {
            *row = ContributionRow {
                raw: r,
                normalized: n,
                points: weight * n,
            };
        }
    }
    #[inline]
    fn base_ranks(&mut self, ranks: &[u8]) {
        self.out.base_ranks.extend_from_slice(ranks);
    }
    #[inline]
    fn rule(&mut self, lead: usize, rule: usize, from: u8, to: u8) {
        self.out.overrides.push(OverrideRow {
            lead: u32::try_from(lead).unwrap_or(u32::MAX),
            rule: u16::try_from(rule).unwrap_or(u16::MAX),
            from_rank: from,
            to_rank: to,
        });
    }
}

impl CompiledModel {
    /// Scores every lead of `batch` at its `as_of` into `out` (cleared first;
    /// reuse it across batches to avoid allocation). Score, tier, flags, next
    /// follow-up and priority only.
    pub fn score_batch(&self, batch: &LeadBatch, out: &mut Vec<ScoreSummary>) {
        out.clear();
        out.resize(batch.len(), ScoreSummary::default());
        self.run(batch, 0, out, &mut NoExplain);
    }

    /// Like [`CompiledModel::score_batch`], spread over rayon's thread pool.
    #[cfg(feature = "parallel")]
    pub fn score_batch_parallel(&self, batch: &LeadBatch, out: &mut Vec<ScoreSummary>) {
        use rayon::prelude::*;
        const SPLIT: usize = CHUNK * 64;
        out.clear();
        out.resize(batch.len(), ScoreSummary::default());
        out.par_chunks_mut(SPLIT)
            .enumerate()
            .for_each(|(k, part)| self.run(batch, k * SPLIT, part, &mut NoExplain));
    }

    /// Scores every lead of `batch` with the full explanation: every
    /// contribution and every fired override, into reusable buffers.
    pub fn explain_batch(
        &self,
        batch: &LeadBatch,
        out: &mut Vec<ScoreSummary>,
        explanation: &mut BatchExplanation,
    ) {
        out.clear();
        out.resize(batch.len(), ScoreSummary::default());
        explanation.contributions.clear();
        explanation
            .contributions
            .resize(batch.len() * self.kernels.len(), ContributionRow::default());
        explanation.overrides.clear();
        explanation.base_ranks.clear();
        let mut sink = Explain {
            dims: self.kernels.len(),
            out: explanation,
        };
        self.run(batch, 0, out, &mut sink);
        // Rules run one at a time over a chunk; order rows by lead, keeping rule order.
        explanation.overrides.sort_by_key(|o| o.lead);
    }

    fn run<S: Sink>(
        &self,
        batch: &LeadBatch,
        start: usize,
        out: &mut [ScoreSummary],
        sink: &mut S,
    ) {
        let now = batch.as_of;
        let nowf = now as f64;
        let mut total = [0.0f64; CHUNK];
        let mut raw = [0.0f64; CHUNK];
        let mut norm = [0.0f64; CHUNK];
        let mut eng = [0.0f64; CHUNK];
        let mut rank = [0u8; CHUNK];
        let mut flags = [0u8; CHUNK];
        let mut slow = [0.0f64; CHUNK];
        let mut hit = [false; CHUNK];
        for (c, out) in out.chunks_mut(CHUNK).enumerate() {
            let s = start + c * CHUNK;
            let n = out.len();
            let e = s + n;
            let total = &mut total[..n];
            let raw = &mut raw[..n];
            let norm = &mut norm[..n];
            let eng = &mut eng[..n];
            total.fill(0.0);
            for (d, (kernel, &w)) in self.kernels.iter().zip(&self.weights).enumerate() {
                if let Kernel::Engagement { groups, .. } = kernel {
                    eng.fill(0.0);
                    let cols = batch.groups.get(d).map_or(&[][..], |g| g.as_slice());
                    for (g, col) in groups.iter().zip(cols) {
                        let inv_h = 1.0 / g.half_life_seconds;
                        let (Some(value), Some(reference)) =
                            (col.value.get(s..e), col.reference.get(s..e))
                        else {
                            continue;
                        };
                        for ((acc, &v), &r) in eng.iter_mut().zip(value).zip(reference) {
                            *acc += v * exp2(((r - nowf) * inv_h).min(0.0));
                        }
                    }
                }
                let column = batch
                    .columns
                    .get(d)
                    .and_then(|c| c.get(s..e))
                    .unwrap_or(&[]);
                kernel.normalise(column, eng, now, raw, norm);
                for (t, &x) in total.iter_mut().zip(norm.iter()) {
                    *t += w * x;
                }
                sink.dimension(d, s, raw, norm, w);
            }
            let rank = &mut rank[..n];
            let flags = &mut flags[..n];
            let slow = &mut slow[..n];
            let hit = &mut hit[..n];
            for (t, r) in total.iter_mut().zip(rank.iter_mut()) {
                *t = t.clamp(0.0, 100.0);
                *r = rank_of(&self.tiers, *t);
            }
            sink.base_ranks(rank);
            flags.fill(0);
            slow.fill(0.0);
            for (ri, rule) in self.rules.iter().enumerate() {
                let a = batch
                    .rule_a
                    .get(ri)
                    .and_then(|c| c.get(s..e))
                    .unwrap_or(&[]);
                let b = batch.rule_b.get(ri).and_then(|c| c.get(s..e)).unwrap_or(a);
                conditions(rule, a, b, nowf, hit);
                let effect = rule.effect();
                let bit = rule.flag().map_or(0, |f| f.bit());
                let slower = match rule {
                    CompiledRule::Cold {
                        follow_up_seconds, ..
                    } => *follow_up_seconds,
                    _ => 0.0,
                };
                for (i, (((&h, r), f), sl)) in hit
                    .iter()
                    .zip(rank.iter_mut())
                    .zip(flags.iter_mut())
                    .zip(slow.iter_mut())
                    .enumerate()
                {
                    if h {
                        let from = *r;
                        *r = effect.apply(from);
                        *f |= bit;
                        *sl = sl.max(slower);
                        sink.rule(s + i, ri, from, *r);
                    }
                }
            }
            let pins = batch.pin_rank.get(s..e).unwrap_or(&[]);
            let until = batch.pin_until.get(s..e).unwrap_or(&[]);
            for (i, (((r, sl), &pin), &end)) in rank
                .iter_mut()
                .zip(slow.iter_mut())
                .zip(pins)
                .zip(until)
                .enumerate()
            {
                if !pin.is_nan() && nowf < end {
                    let from = *r;
                    *r = pin as u8;
                    // The manager chose this tier, so its cadence holds even when cold.
                    *sl = 0.0;
                    sink.rule(s + i, usize::from(PIN_RULE), from, *r);
                }
            }
            let base = batch.contact_base.get(s..e).unwrap_or(&[]);
            let scheduled = batch.scheduled.get(s..e).unwrap_or(&[]);
            let fresh = batch.fresh_since.get(s..e).unwrap_or(&[]);
            for (((((((o, &t), &r), &f), &sl), &b), &at), &new_since) in out
                .iter_mut()
                .zip(total.iter())
                .zip(rank.iter())
                .zip(flags.iter())
                .zip(slow.iter())
                .zip(base)
                .zip(scheduled)
                .zip(fresh)
            {
                let tier = self.tiers.get(usize::from(r));
                let every = tier.map_or(0.0, |tier| tier.follow_up_seconds).max(sl);
                let first = tier.map_or(f64::INFINITY, |tier| tier.first_response_seconds);
                let next = (b + every).min(at).min(new_since + first);
                let overdue = nowf > next;
                let f = f | if overdue {
                    crate::LeadFlag::Overdue.bit()
                } else {
                    0
                };
                let urgency = if f & crate::LeadFlag::Urgent.bit() != 0 {
                    Urgency::Urgent
                } else if overdue {
                    Urgency::Overdue
                } else {
                    Urgency::NotDue
                };
                *o = ScoreSummary {
                    total: t,
                    tier_rank: r,
                    flags: crate::Flags(f),
                    next_follow_up_at: next as UnixSeconds,
                    priority: priority(urgency, r, t),
                };
            }
        }
    }
}

/// Evaluates `rule` for a chunk, one loop per rule kind so each vectorises.
#[inline]
fn conditions(rule: &CompiledRule, a: &[f64], b: &[f64], now: f64, hit: &mut [bool]) {
    match rule {
        CompiledRule::Urgent { window_seconds, .. } => {
            let w = *window_seconds;
            for (h, &x) in hit.iter_mut().zip(a) {
                *h = now - x <= w;
            }
        }
        CompiledRule::Bant { at_least, .. } => {
            for (h, &x) in hit.iter_mut().zip(a) {
                *h = x >= *at_least;
            }
        }
        CompiledRule::Cold {
            silence_seconds, ..
        } => {
            for (h, &x) in hit.iter_mut().zip(a) {
                *h = now - x >= *silence_seconds;
            }
        }
        CompiledRule::Stale { .. } => {
            for (h, &x) in hit.iter_mut().zip(a) {
                *h = now > x;
            }
        }
        CompiledRule::Churn {
            cause: crate::ChurnCause::ComplaintsRising,
            min_previous,
            ..
        } => {
            // More complaints than the window before, and enough of them.
            for ((h, &x), &y) in hit.iter_mut().zip(a).zip(b) {
                *h = x >= *min_previous && x > y;
            }
        }
        CompiledRule::Churn {
            below_fraction,
            min_previous,
            ..
        } => {
            for ((h, &x), &y) in hit.iter_mut().zip(a).zip(b) {
                *h = y >= *min_previous && x < below_fraction * y;
            }
        }
        CompiledRule::Stage { .. } => {
            for (h, &x) in hit.iter_mut().zip(a) {
                *h = x > 0.0;
            }
        }
        CompiledRule::Burst { at_least, .. } => {
            for (h, &x) in hit.iter_mut().zip(a) {
                *h = x >= *at_least;
            }
        }
    }
}
