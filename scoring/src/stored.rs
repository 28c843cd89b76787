//! [`ActivityState`] as the server stores it: a compact binary form.
//!
//! The state is rewritten with every activity a lead gets, so its size is
//! paid on every write: in the row, in the write-ahead log, in the pages a
//! database must keep in memory. As JSON it took about 1.2 KB for a lead
//! with a few months of history, most of it field names and decimal
//! digits; this form takes about a third of that.
//!
//! Layout, version 1 (all integers LEB128 varints, signed ones zigzagged;
//! floats 8 bytes little-endian, so they come back bit for bit):
//!
//! ```text
//! 0x01                          version
//! n, n × signal                 key (length, UTF-8), decayed, ref_at, half-life, count
//! presence byte                 bit 0: last inbound, bit 1: last outbound; then each
//! n, n × (day Δ, count)         inbound days, each day after the first as a difference
//! n, n × (day Δ, amount)        amount days
//! n, n × time Δ                 recent inbound, each after the first as a difference
//! n, n × time Δ                 recent outbound
//! n, n × (day Δ, count)         negative days
//! ```
//!
//! Anything that starts with `{` is read as the JSON of earlier versions,
//! so rows written before stay readable until their next write; empty bytes
//! are an empty state.

use std::collections::BTreeMap;

use crate::decay::{ActivityState, SignalAccumulator};

const VERSION: u8 = 1;

/// Why stored bytes did not read as an [`ActivityState`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// It ends before its last field.
    #[error("the activity state ends early")]
    Truncated,
    /// A layout this version does not know (a newer server wrote it).
    #[error("the activity state has unknown version {0}")]
    UnknownVersion(u8),
    /// More bytes than the layout holds.
    #[error("the activity state has bytes left over")]
    TrailingBytes,
    /// A signal key that is not text.
    #[error("the activity state holds a signal key that is not UTF-8")]
    BadKey,
    /// JSON of an earlier version that does not read as a state.
    #[error("the activity state's JSON does not read: {0}")]
    Json(String),
}

impl ActivityState {
    /// The state in its stored form (see the [module](self)).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Writer(Vec::with_capacity(64 + 32 * self.signals.len()));
        out.0.push(VERSION);
        out.unsigned(self.signals.len() as u64);
        for (key, acc) in &self.signals {
            out.unsigned(key.len() as u64);
            out.0.extend_from_slice(key.as_bytes());
            out.float(acc.decayed);
            out.signed(acc.ref_at);
            out.float(acc.half_life_days);
            out.unsigned(acc.count);
        }
        let presence = u8::from(self.last_inbound_at.is_some())
            | u8::from(self.last_outbound_at.is_some()) << 1;
        out.0.push(presence);
        for at in [self.last_inbound_at, self.last_outbound_at]
            .into_iter()
            .flatten()
        {
            out.signed(at);
        }
        out.days(&self.inbound_days, |w, count| w.unsigned(u64::from(*count)));
        out.days(&self.amount_days, |w, amount| w.float(*amount));
        out.times(&self.recent_inbound);
        out.times(&self.recent_outbound);
        out.days(&self.negative_days, |w, count| {
            w.unsigned(u64::from(*count))
        });
        out.0
    }

    /// A state from its stored form, or from the JSON earlier versions
    /// stored; empty bytes are an empty state.
    ///
    /// # Errors
    /// When the bytes are neither.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        match bytes.first() {
            None => return Ok(Self::default()),
            Some(b'{') => {
                return serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()));
            }
            Some(&VERSION) => {}
            Some(&other) => return Err(DecodeError::UnknownVersion(other)),
        }
        let mut r = Reader(&bytes[1..]);
        let mut state = Self::default();
        let signals = r.length()?;
        let mut map = BTreeMap::new();
        for _ in 0..signals {
            let len = r.length()?;
            let key = std::str::from_utf8(r.take(len)?).map_err(|_| DecodeError::BadKey)?;
            let acc = SignalAccumulator {
                decayed: r.float()?,
                ref_at: r.signed()?,
                half_life_days: r.float()?,
                count: r.unsigned()?,
            };
            map.insert(key.to_owned(), acc);
        }
        state.signals = map;
        let presence = r.take(1)?[0];
        if presence & 1 != 0 {
            state.last_inbound_at = Some(r.signed()?);
        }
        if presence & 2 != 0 {
            state.last_outbound_at = Some(r.signed()?);
        }
        state.inbound_days = r.days(Reader::count)?;
        state.amount_days = r.days(Reader::float)?;
        state.recent_inbound = r.times()?;
        state.recent_outbound = r.times()?;
        state.negative_days = r.days(Reader::count)?;
        if r.0.is_empty() {
            Ok(state)
        } else {
            Err(DecodeError::TrailingBytes)
        }
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn unsigned(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn signed(&mut self, v: i64) {
        self.unsigned(((v << 1) ^ (v >> 63)) as u64);
    }

    fn float(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// `items` in order, each as the difference of its time (a day or a
    /// second) from the one before, then what `value` writes of it.
    fn deltas<T>(
        &mut self,
        items: &[T],
        at: impl Fn(&T) -> i64,
        mut value: impl FnMut(&mut Self, &T),
    ) {
        self.unsigned(items.len() as u64);
        let mut previous = 0i64;
        for item in items {
            let at = at(item);
            self.signed(at.wrapping_sub(previous));
            previous = at;
            value(self, item);
        }
    }

    fn days<T>(&mut self, days: &[(i64, T)], mut value: impl FnMut(&mut Self, &T)) {
        self.deltas(days, |(day, _)| *day, |w, (_, v)| value(w, v));
    }

    fn times(&mut self, times: &[i64]) {
        self.deltas(times, |at| *at, |_, _| {});
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn unsigned(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Truncated)
    }

    /// A count of items that follow, each at least a byte: never more
    /// than the bytes left, so a damaged length cannot ask for a huge
    /// allocation.
    fn length(&mut self) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.unsigned()?).map_err(|_| DecodeError::Truncated)?;
        if n > self.0.len() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    fn count(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.unsigned()?).map_err(|_| DecodeError::Truncated)
    }

    fn signed(&mut self) -> Result<i64, DecodeError> {
        let v = self.unsigned()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn float(&mut self) -> Result<f64, DecodeError> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(f64::from_le_bytes(array))
    }

    /// What [`Writer::deltas`] wrote: each item from its time and what
    /// follows it.
    fn deltas<T>(
        &mut self,
        mut item: impl FnMut(&mut Self, i64) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.length()?;
        let mut items = Vec::with_capacity(n);
        let mut previous = 0i64;
        for _ in 0..n {
            let at = previous.wrapping_add(self.signed()?);
            previous = at;
            items.push(item(self, at)?);
        }
        Ok(items)
    }

    fn days<T>(
        &mut self,
        mut value: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<(i64, T)>, DecodeError> {
        self.deltas(|r, day| Ok((day, value(r)?)))
    }

    fn times(&mut self) -> Result<Vec<i64>, DecodeError> {
        self.deltas(|_, at| Ok(at))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::model::{Direction, SignalDef};
    use proptest::prelude::*;

    fn signal(key: &str, points: f64, half_life_days: f64) -> SignalDef {
        SignalDef {
            key: key.into(),
            points,
            half_life_days,
            urgent: false,
            direction: Direction::Inbound,
            retired: false,
        }
    }

    fn lived_state() -> ActivityState {
        let mut state = ActivityState::new();
        let visit = signal("website_visit", 2.0, 7.0);
        let complaint = signal("complaint", -10.0, 30.0);
        for i in 0..40i64 {
            let at = 1_790_000_000 + i * 37_000;
            state.record_as(
                &visit,
                Direction::Inbound,
                at,
                (i % 3 == 0).then_some(120.5),
            );
            if i % 9 == 0 {
                state.record_as(&complaint, Direction::Inbound, at + 5, None);
                state.record_as(&visit, Direction::Outbound, at + 60, None);
            }
        }
        state
    }

    #[test]
    fn a_lived_state_comes_back_whole_in_a_third_of_its_json() {
        let state = lived_state();
        let bytes = state.to_bytes();
        assert_eq!(ActivityState::from_bytes(&bytes).unwrap(), state);
        let json = serde_json::to_vec(&state).unwrap();
        assert!(
            bytes.len() * 3 <= json.len(),
            "{} bytes vs {} of JSON",
            bytes.len(),
            json.len()
        );
    }

    #[test]
    fn json_of_earlier_versions_and_empty_bytes_still_read() {
        let state = lived_state();
        let json = serde_json::to_vec(&state).unwrap();
        assert_eq!(ActivityState::from_bytes(&json).unwrap(), state);
        assert_eq!(
            ActivityState::from_bytes(b"").unwrap(),
            ActivityState::default()
        );
        assert_eq!(
            ActivityState::from_bytes(b"{}").unwrap(),
            ActivityState::default()
        );
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_guess() {
        let bytes = lived_state().to_bytes();
        for cut in 1..bytes.len() {
            assert!(
                ActivityState::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            ActivityState::from_bytes(&longer),
            Err(DecodeError::TrailingBytes)
        ));
        assert!(matches!(
            ActivityState::from_bytes(&[9, 0]),
            Err(DecodeError::UnknownVersion(9))
        ));
        // A length far beyond the bytes left is refused before any allocation.
        assert!(ActivityState::from_bytes(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    proptest! {
        #[test]
        fn any_state_comes_back_bit_for_bit(
            signals in prop::collection::btree_map(
                "[a-z_]{1,20}",
                (any::<f64>(), any::<i64>(), any::<f64>(), any::<u64>()),
                0..12,
            ),
            last_in in any::<Option<i64>>(),
            last_out in any::<Option<i64>>(),
            inbound_days in prop::collection::vec((any::<i64>(), any::<u32>()), 0..20),
            amount_days in prop::collection::vec((any::<i64>(), any::<f64>()), 0..20),
            recent_in in prop::collection::vec(any::<i64>(), 0..32),
            recent_out in prop::collection::vec(any::<i64>(), 0..32),
            negative_days in prop::collection::vec((any::<i64>(), any::<u32>()), 0..20),
        ) {
            let state = ActivityState {
                signals: signals
                    .into_iter()
                    .map(|(k, (decayed, ref_at, half_life_days, count))| {
                        (k, SignalAccumulator { decayed, ref_at, half_life_days, count })
                    })
                    .collect(),
                last_inbound_at: last_in,
                last_outbound_at: last_out,
                inbound_days,
                amount_days,
                recent_inbound: recent_in,
                recent_outbound: recent_out,
                negative_days,
            };
            let back = ActivityState::from_bytes(&state.to_bytes()).unwrap();
            // Compared as bytes: NaNs are not equal to themselves.
            prop_assert_eq!(back.to_bytes(), state.to_bytes());
            prop_assert_eq!(back.signals.len(), state.signals.len());
        }
    }
}
