//! What the engine knows about one lead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::UnixSeconds;
use crate::decay::ActivityState;

/// A lead field's value, as stored in the lead's `attributes` JSON: a number
/// (RATING, NUMBER), a string (CATEGORY, TEXT) or a boolean.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// A rating 1–5 or a number.
    Number(f64),
    /// A category option or text.
    Text(String),
    /// A boolean.
    Bool(bool),
}

impl AttributeValue {
    /// The number, for RATING and NUMBER fields.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Self::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The string, for CATEGORY and TEXT fields.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, for BOOLEAN fields.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The start (00:00 UTC) of the day, in Unix seconds, for DATE fields,
    /// which hold `YYYY-MM-DD` text; `None` for anything else.
    pub fn as_date(&self) -> Option<UnixSeconds> {
        self.as_text().and_then(parse_date)
    }
}

/// The start (00:00 UTC) of a `YYYY-MM-DD` date, in Unix seconds; `None`
/// unless it is a real calendar date. Only the first ten characters are read,
/// so an RFC 3339 time reads as its date. No allocation: the batch path calls
/// it once per lead and DATE_PROXIMITY dimension.
pub fn parse_date(text: &str) -> Option<UnixSeconds> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        part.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || (b.len() > 10 && b.get(10) != Some(&b'T'))
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl From<f64> for AttributeValue {
    fn from(v: f64) -> Self {
        Self::Number(v)
    }
}

impl From<&str> for AttributeValue {
    fn from(v: &str) -> Self {
        Self::Text(v.to_string())
    }
}

impl From<bool> for AttributeValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// Kind of a pipeline stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StageKind {
    /// Still being worked.
    #[default]
    Open,
    /// Closed as won.
    Won,
    /// Closed as lost.
    Lost,
}

/// The lead's current stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageFacts {
    /// 0-based position of the stage in its pipeline.
    pub position: u32,
    /// Number of stages in the pipeline (positions 0 to count − 1).
    pub stage_count: u32,
    /// The stage's win probability, 0–1.
    pub win_probability: f64,
    /// OPEN, WON or LOST.
    pub kind: StageKind,
    /// When the lead entered the stage, Unix seconds.
    pub entered_at: UnixSeconds,
    /// Days idle in this stage before the lead is STALE; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotting_days: Option<u32>,
    /// The stage's key (`negotiation`), for `STAGE` rules; empty when unknown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
}

impl Default for StageFacts {
    fn default() -> Self {
        Self {
            position: 0,
            stage_count: 1,
            win_probability: 0.0,
            kind: StageKind::Open,
            entered_at: 0,
            rotting_days: None,
            key: String::new(),
        }
    }
}

/// Everything the engine needs about one lead. The server builds it from the
/// lead row: `attributes` straight from its JSON, `activity` from its activity
/// state column, `stage` from its stage, and `predicted_close_probability` from
/// [`crate::predictor::Predictor::predict`] when the tenant has a trained model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeadFacts {
    /// Field key → value.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeValue>,
    /// Deal value in the tenant's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_value: Option<f64>,
    /// Current stage.
    #[serde(default)]
    pub stage: StageFacts,
    /// Activity summary.
    #[serde(default)]
    pub activity: ActivityState,
    /// When the lead was created, Unix seconds.
    #[serde(default)]
    pub created_at: UnixSeconds,
    /// Learned close probability, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_close_probability: Option<f64>,
    /// A manager's tier pin; it applies after every override rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<TierPin>,
    /// A follow-up someone scheduled, Unix seconds: the lead is due at the
    /// earlier of this and its tier's cadence, until an outbound contact at
    /// or after it completes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_follow_up_at: Option<UnixSeconds>,
    /// When the lead last rose into a higher tier, Unix seconds; its
    /// creation when absent. Until an outbound contact after it, the lead
    /// is new to its tier and due within the tier's first response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_rose_at: Option<UnixSeconds>,
}

/// A manager's pin of a lead's tier, with a reason and an optional expiry.
/// While it lasts the lead has the pinned tier whatever its score and rules
/// say, with that tier's cadence (flags still show; the score is computed as
/// ever); the explanation lists it as a `PIN` override naming who set it,
/// why and until when. A pin naming a tier the model does not have is
/// ignored, and so is one at or after `expires_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TierPin {
    /// Tier key.
    pub tier: String,
    /// Why, in the manager's words.
    pub reason: String,
    /// When the pin lapses, Unix seconds; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<UnixSeconds>,
    /// Who set it, by name, for the explanation; "a manager" when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_by: Option<String>,
}

impl LeadFacts {
    /// The attribute `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&AttributeValue> {
        self.attributes.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_date;

    #[test]
    fn dates_read_as_the_start_of_their_utc_day() {
        for (text, at) in [
            ("1970-01-01", Some(0)),
            ("2000-02-29", Some(951_782_400)),
            ("2026-12-01", Some(1_796_083_200)),
            ("2026-12-01T15:30:00Z", Some(1_796_083_200)),
            ("2001-02-29", None),
            ("2026-13-01", None),
            ("2026-1-01", None),
            ("tomorrow", None),
            ("", None),
            ("2026-12-01x", None),
        ] {
            assert_eq!(parse_date(text), at, "{text}");
        }
    }
}
