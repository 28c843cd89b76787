//! Time decay and a lead's activity state.
//!
//! [`ActivityState`] is what the server keeps on the lead row (one column, in
//! the form of [`crate::stored`]) instead of replaying the activity history on
//! every score:
//!
//! * per signal, a decayed count with its reference time, so recording one
//!   activity is O(1) and scoring at any later `now` needs no history;
//! * the last inbound and outbound times (RECENCY, COLD, cadence);
//! * daily buckets of inbound interactions, amounts and negative signals
//!   (complaints) for the last [`MAX_WINDOW_DAYS`] days (FREQUENCY,
//!   MONETARY amounts, CHURN_RISK's three causes).
//!
//! Counts, not points, are stored, so editing a signal's points applies to past
//! activities at once. The half-life is taken when an activity is recorded; a
//! changed half-life applies from then on (rebuild with
//! [`ActivityState::from_activities`] to apply it to the past).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::UnixSeconds;
use crate::model::{Catalog, Direction, MAX_WINDOW_DAYS, SignalDef};

/// Seconds in a day, as an integer.
pub const DAY_SECONDS: i64 = 86_400;

/// How many of the latest inbound and of the latest outbound activity times
/// [`ActivityState`] keeps, for BURST rules and RESPONSIVENESS dimensions.
/// A BURST rule may ask for at most this many signals.
pub const RECENT_CONTACTS: usize = 32;

/// `2^x`, accurate to about 2 ulp for x in [−1020, 1020] and clamped outside;
/// NaN gives `2^−1020`. Written without branches or library calls so that loops
/// over columns vectorise.
#[inline(always)]
pub fn exp2(x: f64) -> f64 {
    // Adding 1.5·2^52 rounds x to the nearest integer n and leaves n in the low
    // mantissa bits, which then become the exponent of 2^n without a float→int
    // conversion (not vectorisable on baseline x86-64).
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    let x = x.clamp(-1020.0, 1020.0);
    let x = if x.is_nan() { -1020.0 } else { x };
    let t = x + SHIFT;
    let n = t - SHIFT;
    let y = (x - n) * std::f64::consts::LN_2;
    // Taylor series of e^y for |y| ≤ ln2/2: the degree-13 term is below 2e-17.
    let mut p = 1.0 / 479_001_600.0;
    p = p * y + 1.0 / 39_916_800.0;
    p = p * y + 1.0 / 3_628_800.0;
    p = p * y + 1.0 / 362_880.0;
    p = p * y + 1.0 / 40_320.0;
    p = p * y + 1.0 / 5_040.0;
    p = p * y + 1.0 / 720.0;
    p = p * y + 1.0 / 120.0;
    p = p * y + 1.0 / 24.0;
    p = p * y + 1.0 / 6.0;
    p = p * y + 0.5;
    p = p * y + 1.0;
    p = p * y + 1.0;
    let n_bits = t.to_bits().wrapping_sub(SHIFT.to_bits());
    f64::from_bits(p.to_bits().wrapping_add(n_bits << 52))
}

/// The factor by which something with a half-life of `half_life_days` shrinks
/// over `elapsed_seconds`: `2^(−elapsed / half_life)`. Never grows: a negative
/// elapsed time (an activity after `now`) gives 1.
#[inline]
pub fn decay_factor(elapsed_seconds: f64, half_life_days: f64) -> f64 {
    exp2(-(elapsed_seconds.max(0.0)) / (half_life_days * crate::SECONDS_PER_DAY))
}

/// One signal's decayed occurrence count.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalAccumulator {
    /// Σ 2^(−(refAt − occurredAt) / half-life) over the signal's activities.
    pub decayed: f64,
    /// Reference time of `decayed`: the latest occurrence, Unix seconds.
    pub ref_at: UnixSeconds,
    /// Half-life in days used to decay `decayed`.
    pub half_life_days: f64,
    /// Undecayed number of occurrences.
    pub count: u64,
}

impl SignalAccumulator {
    /// The decayed count at `now`; occurrences after `now` count as if at `now`
    /// when they are the latest.
    pub fn decayed_at(&self, now: UnixSeconds) -> f64 {
        self.decayed * decay_factor((now - self.ref_at) as f64, self.half_life_days)
    }
}

/// A recorded activity, for [`ActivityState::from_activities`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// Signal key.
    pub signal: String,
    /// When it happened, Unix seconds.
    pub occurred_at: UnixSeconds,
    /// Money amount (purchases), in the tenant's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
}

/// A lead's activity summary, updatable one activity at a time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityState {
    /// Decayed counts by signal key.
    #[serde(default)]
    pub signals: BTreeMap<String, SignalAccumulator>,
    /// Latest inbound activity, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inbound_at: Option<UnixSeconds>,
    /// Latest outbound activity (the last contact), Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outbound_at: Option<UnixSeconds>,
    /// `[day, count]` of inbound activities, day = Unix seconds / 86 400,
    /// ascending; days older than [`MAX_WINDOW_DAYS`] before the newest are dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound_days: Vec<(i64, u32)>,
    /// `[day, amount]` of activity amounts, like `inbound_days`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amount_days: Vec<(i64, f64)>,
    /// The latest [`RECENT_CONTACTS`] inbound activities of signals worth
    /// zero or more points, Unix seconds, ascending: a complaint, a no-show
    /// or an unsubscribe is neither a burst of interest nor a reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_inbound: Vec<UnixSeconds>,
    /// The latest [`RECENT_CONTACTS`] outbound activities, Unix seconds,
    /// ascending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_outbound: Vec<UnixSeconds>,
    /// `[day, count]` of activities of signals with negative points
    /// (complaints, no-shows) when they were recorded, like `inbound_days`.
    /// A signal whose points later turn negative counts from then on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub negative_days: Vec<(i64, u32)>,
}

impl ActivityState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one activity of `signal` at `occurred_at` (any order: the past is
    /// fine), with an optional money amount. O(1) for the decayed counts; the day
    /// buckets take O(log d) plus a shift when the day is not the newest.
    /// Non-finite amounts are ignored.
    pub fn record(&mut self, signal: &SignalDef, occurred_at: UnixSeconds, amount: Option<f64>) {
        self.record_as(signal, signal.direction, occurred_at, amount);
    }

    /// Like [`ActivityState::record`], with the direction given by the activity
    /// instead of the signal type (the contract lets an activity say it).
    pub fn record_as(
        &mut self,
        signal: &SignalDef,
        direction: Direction,
        occurred_at: UnixSeconds,
        amount: Option<f64>,
    ) {
        let acc = self
            .signals
            .entry(signal.key.clone())
            .or_insert_with(|| SignalAccumulator {
                decayed: 0.0,
                ref_at: occurred_at,
                half_life_days: signal.half_life_days,
                count: 0,
            });
        if occurred_at >= acc.ref_at {
            acc.decayed = acc.decayed_at(occurred_at) + 1.0;
            acc.ref_at = occurred_at;
        } else {
            acc.decayed += decay_factor((acc.ref_at - occurred_at) as f64, acc.half_life_days);
        }
        acc.half_life_days = signal.half_life_days;
        acc.count += 1;
        let day = occurred_at.div_euclid(DAY_SECONDS);
        match direction {
            Direction::Inbound => {
                self.last_inbound_at = Some(
                    self.last_inbound_at
                        .map_or(occurred_at, |t| t.max(occurred_at)),
                );
                add_to_bucket(&mut self.inbound_days, day, 1);
                if signal.points >= 0.0 {
                    push_recent(&mut self.recent_inbound, occurred_at);
                }
            }
            Direction::Outbound => {
                self.last_outbound_at = Some(
                    self.last_outbound_at
                        .map_or(occurred_at, |t| t.max(occurred_at)),
                );
                push_recent(&mut self.recent_outbound, occurred_at);
            }
        }
        if let Some(a) = amount.filter(|a| a.is_finite()) {
            add_to_bucket(&mut self.amount_days, day, a);
        }
        if signal.points < 0.0 {
            add_to_bucket(&mut self.negative_days, day, 1);
        }
    }

    /// Builds the state from scratch over `activities` (any order), by the closed
    /// formula rather than by repeated [`ActivityState::record`]; the two agree.
    /// Activities of signals not in `catalog` are skipped.
    pub fn from_activities<'a>(
        catalog: &Catalog,
        activities: impl IntoIterator<Item = &'a Activity>,
    ) -> Self {
        let mut by_signal: BTreeMap<usize, Vec<&Activity>> = BTreeMap::new();
        for a in activities {
            if let Some(i) = catalog.signal_index(&a.signal) {
                by_signal.entry(i).or_default().push(a);
            }
        }
        let mut state = Self::new();
        for (i, acts) in by_signal {
            let Some(def) = catalog.signals.get(i) else {
                continue;
            };
            let Some(ref_at) = acts.iter().map(|a| a.occurred_at).max() else {
                continue;
            };
            let decayed = acts
                .iter()
                .map(|a| decay_factor((ref_at - a.occurred_at) as f64, def.half_life_days))
                .sum();
            state.signals.insert(
                def.key.clone(),
                SignalAccumulator {
                    decayed,
                    ref_at,
                    half_life_days: def.half_life_days,
                    count: acts.len() as u64,
                },
            );
            let last = Some(ref_at);
            match def.direction {
                Direction::Inbound => state.last_inbound_at = state.last_inbound_at.max(last),
                Direction::Outbound => state.last_outbound_at = state.last_outbound_at.max(last),
            }
            for a in acts {
                let day = a.occurred_at.div_euclid(DAY_SECONDS);
                match def.direction {
                    Direction::Inbound => {
                        add_to_bucket(&mut state.inbound_days, day, 1);
                        if def.points >= 0.0 {
                            push_recent(&mut state.recent_inbound, a.occurred_at);
                        }
                    }
                    Direction::Outbound => push_recent(&mut state.recent_outbound, a.occurred_at),
                }
                if let Some(x) = a.amount.filter(|x| x.is_finite()) {
                    add_to_bucket(&mut state.amount_days, day, x);
                }
                if def.points < 0.0 {
                    add_to_bucket(&mut state.negative_days, day, 1);
                }
            }
        }
        state
    }

    /// The decayed count of `signal` at `now` (0 when it never happened).
    pub fn decayed_count(&self, signal: &str, now: UnixSeconds) -> f64 {
        self.signals.get(signal).map_or(0.0, |a| a.decayed_at(now))
    }

    /// The latest occurrence of `signal`, Unix seconds.
    pub fn last_at(&self, signal: &str) -> Option<UnixSeconds> {
        self.signals.get(signal).map(|a| a.ref_at)
    }

    /// Inbound activities on the `window_days` days ending with `now`'s day
    /// (whole UTC days), skipping the `skip_days` days before that.
    pub fn inbound_in_window(&self, now: UnixSeconds, window_days: u32, skip_days: u32) -> u32 {
        let (lo, hi) = window_bounds(now, window_days, skip_days);
        self.inbound_days
            .iter()
            .filter(|(d, _)| *d >= lo && *d <= hi)
            .map(|(_, c)| *c)
            .sum()
    }

    /// Sum of amounts on the `window_days` days ending with `now`'s day.
    pub fn amount_in_window(&self, now: UnixSeconds, window_days: u32) -> f64 {
        self.amount_in_window_before(now, window_days, 0)
    }

    /// Sum of amounts (money) on the `window_days` days ending with `now`'s
    /// day, skipping the `skip_days` days before that.
    pub fn amount_in_window_before(
        &self,
        now: UnixSeconds,
        window_days: u32,
        skip_days: u32,
    ) -> f64 {
        let (lo, hi) = window_bounds(now, window_days, skip_days);
        self.amount_days
            .iter()
            .filter(|(d, _)| *d >= lo && *d <= hi)
            .map(|(_, a)| *a)
            .sum()
    }

    /// Activities of negative signals (complaints) on the `window_days`
    /// days ending with `now`'s day, skipping the `skip_days` days before.
    pub fn negative_in_window(&self, now: UnixSeconds, window_days: u32, skip_days: u32) -> u32 {
        let (lo, hi) = window_bounds(now, window_days, skip_days);
        self.negative_days
            .iter()
            .filter(|(d, _)| *d >= lo && *d <= hi)
            .map(|(_, c)| *c)
            .sum()
    }

    /// Inbound activities (of signals worth zero or more points) in the
    /// `window_seconds` up to `now`, both ends included, as far as the
    /// latest [`RECENT_CONTACTS`] go. No allocation.
    pub fn recent_inbound_within(&self, now: UnixSeconds, window_seconds: f64) -> u32 {
        let from = now as f64 - window_seconds;
        let n = self
            .recent_inbound
            .iter()
            .filter(|&&t| t <= now && t as f64 >= from)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// How quickly the lead answers our contacts: the median, in hours, of
    /// the time from an outbound contact at or after `since` to the next
    /// inbound activity, with the number of times measured. Several
    /// contacts before one reply count once, from the first of them: the
    /// lead was asked then. A contact still unanswered at `now` counts as
    /// a reply at `now` once it has waited `pending_hours`, so a lead that
    /// stops answering slows down rather than keeping its old median.
    /// `(NaN, 0)` when nothing was measured. No allocation.
    pub fn response_hours(
        &self,
        since: UnixSeconds,
        now: UnixSeconds,
        pending_hours: f64,
    ) -> (f64, u32) {
        let mut samples = [0.0f64; RECENT_CONTACTS + 1];
        let mut n = 0usize;
        // Replies older than the oldest kept inbound activity are forgotten,
        // so a contact before it cannot be paired reliably.
        let floor = if self.recent_inbound.len() >= RECENT_CONTACTS {
            self.recent_inbound
                .first()
                .copied()
                .unwrap_or(UnixSeconds::MIN)
        } else {
            UnixSeconds::MIN
        };
        let mut waiting: Option<UnixSeconds> = None;
        let mut inbound = self
            .recent_inbound
            .iter()
            .copied()
            .filter(|&t| t <= now)
            .peekable();
        for out in self.recent_outbound.iter().copied().filter(|&t| t <= now) {
            // Replies up to this contact answer the one before it.
            while let Some(reply) = inbound.next_if(|&t| t <= out) {
                if let Some(asked) = waiting.take()
                    && let Some(slot) = samples.get_mut(n)
                {
                    *slot = (reply - asked) as f64 / 3600.0;
                    n += 1;
                }
            }
            if waiting.is_none() && out >= since && out > floor {
                waiting = Some(out);
            }
        }
        if let Some(asked) = waiting {
            let pending = match inbound.next() {
                Some(reply) => Some((reply - asked) as f64 / 3600.0),
                None => Some((now - asked) as f64 / 3600.0).filter(|h| *h >= pending_hours),
            };
            if let (Some(h), Some(slot)) = (pending, samples.get_mut(n)) {
                *slot = h;
                n += 1;
            }
        }
        let Some(taken) = samples.get_mut(..n) else {
            return (f64::NAN, 0);
        };
        if taken.is_empty() {
            return (f64::NAN, 0);
        }
        taken.sort_unstable_by(f64::total_cmp);
        let mid = n / 2;
        let median = if n % 2 == 1 {
            taken.get(mid).copied().unwrap_or(f64::NAN)
        } else {
            let (a, b) = (taken.get(mid - 1), taken.get(mid));
            a.zip(b).map_or(f64::NAN, |(a, b)| (a + b) / 2.0)
        };
        (median, u32::try_from(n).unwrap_or(u32::MAX))
    }
}

/// Inserts `at` into an ascending list of the latest [`RECENT_CONTACTS`]
/// times, dropping the oldest when full.
fn push_recent(list: &mut Vec<UnixSeconds>, at: UnixSeconds) {
    if list.len() >= RECENT_CONTACTS && list.first().is_some_and(|&oldest| at < oldest) {
        return;
    }
    let i = list.partition_point(|&t| t <= at);
    list.insert(i, at);
    if list.len() > RECENT_CONTACTS {
        list.remove(0);
    }
}

fn window_bounds(now: UnixSeconds, window_days: u32, skip_days: u32) -> (i64, i64) {
    let hi = now.div_euclid(DAY_SECONDS) - i64::from(skip_days);
    (hi - i64::from(window_days) + 1, hi)
}

trait BucketValue: Copy + std::ops::AddAssign {}
impl BucketValue for u32 {}
impl BucketValue for f64 {}

fn add_to_bucket<T: BucketValue>(buckets: &mut Vec<(i64, T)>, day: i64, value: T) {
    let newest = buckets.last().map_or(day, |(d, _)| (*d).max(day));
    let oldest_kept = newest - i64::from(MAX_WINDOW_DAYS);
    if day < oldest_kept {
        return;
    }
    match buckets.binary_search_by_key(&day, |(d, _)| *d) {
        Ok(i) => {
            if let Some((_, v)) = buckets.get_mut(i) {
                *v += value;
            }
        }
        Err(i) => buckets.insert(i, (day, value)),
    }
    let keep_from = buckets.partition_point(|(d, _)| *d < oldest_kept);
    buckets.drain(..keep_from);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::templates::default_catalog;

    #[test]
    fn exp2_matches_the_standard_library() {
        let mut x = -1000.0;
        while x < 1000.0 {
            let want = 2f64.powf(x);
            let got = exp2(x);
            assert!(
                ((got - want) / want).abs() < 1e-14,
                "x={x} got={got} want={want}"
            );
            x += 0.731;
        }
        assert_eq!(exp2(0.0), 1.0);
        assert_eq!(exp2(-1.0), 0.5);
        assert_eq!(exp2(3.0), 8.0);
    }

    #[test]
    fn decay_halves_at_the_half_life_and_never_grows() {
        assert!((decay_factor(7.0 * 86_400.0, 7.0) - 0.5).abs() < 1e-15);
        assert!((decay_factor(14.0 * 86_400.0, 7.0) - 0.25).abs() < 1e-15);
        assert_eq!(decay_factor(-86_400.0, 7.0), 1.0);
    }

    #[test]
    fn recording_out_of_order_equals_recording_in_order() {
        let catalog = default_catalog();
        let visit = &catalog.signals[0];
        let times = [1_000_000, 1_500_000, 1_200_000, 900_000];
        let mut shuffled = ActivityState::new();
        for t in times {
            shuffled.record(visit, t, None);
        }
        let mut sorted_times = times;
        sorted_times.sort();
        let mut ordered = ActivityState::new();
        for t in sorted_times {
            ordered.record(visit, t, None);
        }
        let now = 2_000_000;
        let a = shuffled.decayed_count("website_visit", now);
        let b = ordered.decayed_count("website_visit", now);
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        assert_eq!(shuffled.last_inbound_at, Some(1_500_000));
        assert_eq!(shuffled.inbound_days, ordered.inbound_days);
    }

    #[test]
    fn buckets_keep_only_the_retention_window() {
        let catalog = default_catalog();
        let visit = &catalog.signals[0];
        let mut s = ActivityState::new();
        s.record(visit, 0, None);
        s.record(visit, 500 * DAY_SECONDS, Some(5.0));
        assert_eq!(s.inbound_days, vec![(500, 1)]);
        s.record(visit, 10 * DAY_SECONDS, None);
        assert_eq!(s.inbound_days, vec![(500, 1)], "too old to matter");
        assert_eq!(s.amount_in_window(500 * DAY_SECONDS, 1), 5.0);
    }

    #[test]
    fn window_counts_are_by_whole_days() {
        let catalog = default_catalog();
        let visit = &catalog.signals[0];
        let mut s = ActivityState::new();
        let day = |d: i64| d * DAY_SECONDS + 3600;
        for d in [1, 2, 2, 9, 10] {
            s.record(visit, day(d), None);
        }
        assert_eq!(s.inbound_in_window(day(10), 1, 0), 1);
        assert_eq!(s.inbound_in_window(day(10), 2, 0), 2);
        assert_eq!(s.inbound_in_window(day(10), 8, 0), 2);
        assert_eq!(s.inbound_in_window(day(10), 9, 0), 4);
        assert_eq!(s.inbound_in_window(day(10), 10, 0), 5);
        assert_eq!(s.inbound_in_window(day(10), 5, 5), 3);
    }

    #[test]
    fn the_state_round_trips_through_json() {
        let catalog = default_catalog();
        let mut s = ActivityState::new();
        s.record(&catalog.signals[4], 86_400 * 100, None);
        s.record(&catalog.signals[10], 86_400 * 101, Some(250.0));
        s.record(&catalog.signals[11], 86_400 * 102, None);
        let text = serde_json::to_string(&s).unwrap();
        let back: ActivityState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
    }
}
