//! The scorecard: a score with its explanation.

use serde::{Deserialize, Serialize};

use crate::UnixSeconds;
use crate::model::DimensionKind;

/// A flag on a lead; matches the contract's `LeadFlag`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LeadFlag {
    /// An urgent signal inside its window.
    Urgent,
    /// No inbound response for the COLD rule's days.
    Cold,
    /// Idle in an open stage beyond the stage's rotting days.
    Stale,
    /// Inbound frequency dropped below the CHURN_RISK rule's fraction.
    ChurnRisk,
    /// The next follow-up is in the past.
    Overdue,
}

impl LeadFlag {
    /// All flags, in bit order.
    pub const ALL: [LeadFlag; 5] = [
        LeadFlag::Urgent,
        LeadFlag::Cold,
        LeadFlag::Stale,
        LeadFlag::ChurnRisk,
        LeadFlag::Overdue,
    ];

    /// The flag's bit in [`Flags`].
    pub const fn bit(self) -> u8 {
        match self {
            LeadFlag::Urgent => 1,
            LeadFlag::Cold => 2,
            LeadFlag::Stale => 4,
            LeadFlag::ChurnRisk => 8,
            LeadFlag::Overdue => 16,
        }
    }

    /// The contract's name, e.g. `CHURN_RISK`.
    pub const fn name(self) -> &'static str {
        match self {
            LeadFlag::Urgent => "URGENT",
            LeadFlag::Cold => "COLD",
            LeadFlag::Stale => "STALE",
            LeadFlag::ChurnRisk => "CHURN_RISK",
            LeadFlag::Overdue => "OVERDUE",
        }
    }
}

/// A set of [`LeadFlag`]s in one byte, for the batch path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u8);

impl Flags {
    /// Sets `flag`.
    pub fn insert(&mut self, flag: LeadFlag) {
        self.0 |= flag.bit();
    }

    /// Whether `flag` is set.
    pub fn contains(self, flag: LeadFlag) -> bool {
        self.0 & flag.bit() != 0
    }

    /// The flags, in [`LeadFlag::ALL`] order.
    pub fn to_vec(self) -> Vec<LeadFlag> {
        LeadFlag::ALL
            .into_iter()
            .filter(|f| self.contains(*f))
            .collect()
    }
}

/// One dimension's share of the score; matches the contract's `Contribution`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contribution {
    /// The dimension's key.
    pub dimension_key: String,
    /// The dimension's label.
    pub label: String,
    /// The dimension's kind.
    pub kind: DimensionKind,
    /// The measured value in the dimension's own unit: a rating, a count met,
    /// decayed points, days, interactions, money, a probability.
    pub raw_value: f64,
    /// The value mapped to 0–1.
    pub normalized: f64,
    /// The dimension's weight, in percent.
    pub weight: f64,
    /// `weight × normalized`: points out of 100; the points sum to the total.
    pub points: f64,
    /// What was measured, in a sentence, where the number alone does not say
    /// it: "replies to our contacts in 3.5 hours (median)", "tender_date in
    /// 12 days". RESPONSIVENESS and DATE_PROXIMITY only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An override rule that fired; matches the contract's `AppliedOverride`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedOverride {
    /// The rule's kind, e.g. `URGENT_SIGNAL`.
    pub rule: String,
    /// What it did, e.g. `raised C → A`, `capped A → C`, `no change (already A)`,
    /// `flag STALE`.
    pub effect: String,
    /// Why, in plain English: "urgent signal meeting_request 2 days ago".
    pub reason: String,
    /// The tier key before the rule.
    pub from_tier: String,
    /// The tier key after the rule.
    pub to_tier: String,
    /// The flag the rule set, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<LeadFlag>,
    /// For a CHURN_RISK rule, the cause that fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churn_cause: Option<ChurnCause>,
}

/// Why a customer is a churn risk: the named causes of CHURN_RISK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChurnCause {
    /// Inbound interactions fell window over window.
    InteractionsFalling,
    /// Complaints (negative signals) rose over a window.
    ComplaintsRising,
    /// Purchase amounts fell window over window.
    OrderAmountsFalling,
}

impl ChurnCause {
    /// Every cause, in the order the rule lists them.
    pub const ALL: [ChurnCause; 3] = [
        ChurnCause::InteractionsFalling,
        ChurnCause::ComplaintsRising,
        ChurnCause::OrderAmountsFalling,
    ];

    /// The name, e.g. `ORDER_AMOUNTS_FALLING`.
    pub const fn name(self) -> &'static str {
        match self {
            ChurnCause::InteractionsFalling => "INTERACTIONS_FALLING",
            ChurnCause::ComplaintsRising => "COMPLAINTS_RISING",
            ChurnCause::OrderAmountsFalling => "ORDER_AMOUNTS_FALLING",
        }
    }
}

/// A lead's score with its full explanation; the server stores it as the
/// breakdown JSON. Deterministic for the same model, facts and `now`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scorecard {
    /// Total score, 0–100: the sum of the contributions' points.
    pub total: f64,
    /// Tier key after overrides.
    pub tier: String,
    /// Rank of `tier`, 0 = top.
    pub tier_rank: u32,
    /// Tier key from the thresholds alone, before overrides.
    pub base_tier: String,
    /// Every dimension, in model order.
    pub contributions: Vec<Contribution>,
    /// Override rules that fired, in the order they applied.
    pub overrides: Vec<AppliedOverride>,
    /// Flags, in [`LeadFlag::ALL`] order.
    pub flags: Vec<LeadFlag>,
    /// When the next follow-up is due, Unix seconds: the last outbound contact
    /// (or creation) plus the tier's cadence (a slower one for cold leads).
    pub next_follow_up_at: UnixSeconds,
    /// Queue priority; larger comes first. See [`crate::tiers::priority`].
    pub priority: i64,
    /// The `now` it was computed at, Unix seconds.
    pub computed_at: UnixSeconds,
}

impl Scorecard {
    /// Whether `flag` is set.
    pub fn has_flag(&self, flag: LeadFlag) -> bool {
        self.flags.contains(&flag)
    }

    /// Whole days the follow-up is overdue (0 when not overdue).
    pub fn overdue_days(&self) -> u32 {
        let late = self.computed_at - self.next_follow_up_at;
        if late <= 0 {
            0
        } else {
            u32::try_from(late / crate::decay::DAY_SECONDS).unwrap_or(u32::MAX)
        }
    }

    /// Reasons for a queue entry, most pressing first: overdue, then each
    /// applied override's reason, then the top contributions.
    pub fn reasons(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.has_flag(LeadFlag::Overdue) {
            out.push(format!(
                "follow-up overdue by {} day(s)",
                self.overdue_days()
            ));
        }
        out.extend(self.overrides.iter().map(|o| o.reason.clone()));
        let mut top: Vec<&Contribution> = self
            .contributions
            .iter()
            .filter(|c| c.points > 0.0)
            .collect();
        top.sort_by(|a, b| b.points.total_cmp(&a.points));
        out.extend(
            top.iter()
                .take(2)
                .map(|c| format!("{}: {:.1} of {:.0} points", c.label, c.points, c.weight)),
        );
        out
    }
}

/// The score without its explanation, from the batch path.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScoreSummary {
    /// Total score, 0–100.
    pub total: f64,
    /// Tier rank after overrides, 0 = top.
    pub tier_rank: u8,
    /// Flags.
    pub flags: Flags,
    /// Next follow-up, Unix seconds.
    pub next_follow_up_at: UnixSeconds,
    /// Queue priority; larger comes first.
    pub priority: i64,
}
