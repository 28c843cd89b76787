//! Why a lead is in the queue where it is, in the tenant's language: the
//! short phrases a salesperson reads next to each name.

use chrono::{DateTime, Utc};
use entity::{lead, signal_type};
use scoring::{ActivityState, LeadFlag};

/// The words of one locale.
struct Phrases {
    urgent: fn(&str, i64) -> String,
    due_today: &'static str,
    overdue: fn(i64) -> String,
    scheduled: fn(Option<&str>) -> String,
    first_response: fn(&str, bool, f64) -> String,
    tier: fn(&str, f64) -> String,
    cold: fn(i64) -> String,
    stale: fn(&str, i64) -> String,
    churn_risk: &'static str,
    burst: fn(u32, f64) -> String,
    stage: fn(&str) -> String,
}

const EN: Phrases = Phrases {
    urgent: |what, days| format!("urgent: {what} {}", en_ago(days)),
    due_today: "follow-up due today",
    overdue: |days| format!("overdue by {days} {}", plural(days, "day", "days")),
    scheduled: |note| match note {
        Some(note) => format!("scheduled follow-up: {note}"),
        None => "scheduled follow-up".to_owned(),
    },
    first_response: |tier, new, hours| {
        let within = if hours == 1.0 {
            "1 hour".to_owned()
        } else {
            format!("{hours} hours")
        };
        if new {
            format!("new tier {tier} lead: respond within {within}")
        } else {
            format!("rose to tier {tier}: respond within {within}")
        }
    },
    tier: |tier, score| format!("tier {tier}: score {score:.0}"),
    cold: |days| format!("cold: no reply for {days} {}", plural(days, "day", "days")),
    stale: |stage, days| format!("stale: {days} {} in {stage}", plural(days, "day", "days")),
    churn_risk: "churn risk: replying less often than before",
    burst: |n, days| {
        format!(
            "burst: {n} inbound {} in {} {}",
            plural(i64::from(n), "signal", "signals"),
            short_days(days),
            if days == 1.0 { "day" } else { "days" }
        )
    },
    stage: |stage| format!("late stage: {stage}"),
};

const ZH: Phrases = Phrases {
    urgent: |what, days| match days {
        0 => format!("紧急：今天{what}"),
        d => format!("紧急：{d}天前{what}"),
    },
    due_today: "今天需要跟进",
    overdue: |days| format!("跟进已逾期{days}天"),
    scheduled: |note| match note {
        Some(note) => format!("预约跟进：{note}"),
        None => "预约跟进".to_owned(),
    },
    first_response: |tier, new, hours| {
        if new {
            format!("新的{tier}级线索：{hours}小时内响应")
        } else {
            format!("升至{tier}级：{hours}小时内响应")
        }
    },
    tier: |tier, score| format!("{tier}级：得分{score:.0}"),
    cold: |days| format!("冷线索：{days}天未回复"),
    stale: |stage, days| format!("停滞：在“{stage}”阶段已{days}天"),
    churn_risk: "流失风险：回复比以前少",
    burst: |n, days| format!("活跃激增：{}天内{n}次互动", short_days(days)),
    stage: |stage| format!("关键阶段：“{stage}”"),
};

/// Days as people write them: `2`, `1.5`.
fn short_days(days: f64) -> String {
    if days.fract() == 0.0 {
        format!("{days:.0}")
    } else {
        format!("{}", (days * 10.0).round() / 10.0)
    }
}

fn plural(n: i64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn en_ago(days: i64) -> String {
    match days {
        0 => "today".to_owned(),
        1 => "1 day ago".to_owned(),
        d => format!("{d} days ago"),
    }
}

fn phrases(locale: &str) -> &'static Phrases {
    if locale == "zh-CN" { &ZH } else { &EN }
}

/// Whole days from `from` to `to`, never negative.
fn days_between(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_days().max(0)
}

/// English labels start lower-case inside a sentence ("urgent: requests
/// an urgent quote"); other scripts are left alone.
fn in_sentence(label: &str, locale: &str) -> String {
    if locale == "zh-CN" {
        return label.to_owned();
    }
    let mut chars = label.chars();
    match chars.next() {
        Some(first) if chars.clone().next().is_some_and(char::is_lowercase) => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => label.to_owned(),
    }
}

/// What a queue entry needs to explain itself.
pub struct QueueFacts<'a> {
    pub lead: &'a lead::Model,
    pub stage_name: &'a str,
    /// The key of the lead's stage, for STAGE rules.
    pub stage_key: &'a str,
    pub signals: &'a [signal_type::Model],
    /// Hours of the first response the lead's tier asks, if it asks one.
    pub first_response_hours: Option<f64>,
    /// The override rules of the model scoring the lead: STAGE and BURST
    /// rules that hold say so.
    pub rules: &'a [scoring::OverrideRule],
}

/// The reasons for a queue entry, most pressing first: an urgent signal,
/// an overdue follow-up, a first response, a burst of activity or a late
/// stage that raised the tier, the tier and score, then cold, stale and
/// churn warnings.
pub fn queue_reasons(facts: &QueueFacts<'_>, locale: &str, now: DateTime<Utc>) -> Vec<String> {
    let words = phrases(locale);
    let QueueFacts { lead, signals, .. } = facts;
    let has = |flag: LeadFlag| lead.flags & i32::from(flag.bit()) != 0;
    let state: Option<ActivityState> = ActivityState::from_bytes(&lead.signal_state).ok();
    let mut out = Vec::new();
    if has(LeadFlag::Urgent)
        && let Some((label, at)) = state
            .as_ref()
            .and_then(|state| latest_urgent_signal(state, signals))
    {
        let label = in_sentence(label, locale);
        out.push((words.urgent)(&label, days_between(at, now)));
    }
    if let Some(due) = lead.next_follow_up_at.filter(|due| *due <= now) {
        let days = days_between(due, now);
        out.push(if days == 0 {
            words.due_today.to_owned()
        } else {
            (words.overdue)(days)
        });
        // Someone chose this date: say what they wanted done.
        if lead.scheduled_follow_up_at.is_some_and(|at| at <= now) {
            out.push((words.scheduled)(
                lead.scheduled_follow_up_note
                    .as_deref()
                    .filter(|n| !n.is_empty()),
            ));
        }
    }
    // New to its tier (created in it, or risen into it) with no outbound
    // contact since: the tier's first response is what is asked.
    if let Some(hours) = facts.first_response_hours {
        let since = lead.tier_rose_at.unwrap_or(lead.created_at);
        if lead.status == entity::enums::LeadStatus::Open
            && lead.last_outbound_at.is_none_or(|at| at < since)
        {
            // Never contacted at all: new to the rep too, however it
            // reached the tier.
            out.push((words.first_response)(
                &lead.tier,
                lead.last_outbound_at.is_none(),
                hours,
            ));
        }
    }
    // The rules that lift a tier without a flag of their own: said as they
    // stand now, once each.
    let mut burst_said = false;
    let mut stage_said = false;
    for rule in facts.rules {
        match &rule.params {
            scoring::OverrideParams::Burst(r) if !burst_said => {
                let n = state.as_ref().map_or(0, |s| {
                    s.recent_inbound_within(
                        now.timestamp(),
                        r.within_days * scoring::SECONDS_PER_DAY,
                    )
                });
                if i64::from(n) >= r.at_least {
                    out.push((words.burst)(n, r.within_days));
                    burst_said = true;
                }
            }
            scoring::OverrideParams::Stage(r)
                if !stage_said && r.stages.iter().any(|k| *k == facts.stage_key) =>
            {
                out.push((words.stage)(facts.stage_name));
                stage_said = true;
            }
            _ => {}
        }
    }
    out.push((words.tier)(&lead.tier, lead.score));
    if has(LeadFlag::Cold) {
        let since = lead.last_inbound_at.unwrap_or(lead.created_at);
        out.push((words.cold)(days_between(since, now)));
    }
    if has(LeadFlag::Stale) {
        out.push((words.stale)(
            facts.stage_name,
            days_between(lead.stage_entered_at, now),
        ));
    }
    if has(LeadFlag::ChurnRisk) {
        out.push(words.churn_risk.to_owned());
    }
    out
}

/// The urgent signal the lead showed most recently, with when.
fn latest_urgent_signal<'s>(
    state: &ActivityState,
    signals: &'s [signal_type::Model],
) -> Option<(&'s str, DateTime<Utc>)> {
    signals
        .iter()
        .filter(|s| s.urgent)
        .filter_map(|s| {
            let acc = state.signals.get(&s.key)?;
            Some((
                s.label.as_str(),
                crate::service::leads::rescoring::from_secs(acc.ref_at),
            ))
        })
        .max_by_key(|(_, at)| *at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_labels_read_inside_a_sentence() {
        assert_eq!(
            in_sentence("Requests an urgent quote", "en"),
            "requests an urgent quote"
        );
        assert_eq!(in_sentence("CEO call", "en"), "CEO call");
        assert_eq!(in_sentence("紧急索要报价", "zh-CN"), "紧急索要报价");
    }

    #[test]
    fn a_first_response_says_whether_the_lead_is_new_or_risen() {
        assert_eq!(
            (EN.first_response)("A", true, 1.0),
            "new tier A lead: respond within 1 hour"
        );
        assert_eq!(
            (EN.first_response)("B", false, 24.0),
            "rose to tier B: respond within 24 hours"
        );
        assert_eq!(
            (ZH.first_response)("B", false, 24.0),
            "升至B级：24小时内响应"
        );
    }

    #[test]
    fn phrases_count_days_in_each_language() {
        assert_eq!((EN.overdue)(3), "overdue by 3 days");
        assert_eq!((EN.overdue)(1), "overdue by 1 day");
        assert_eq!((EN.tier)("A", 86.4), "tier A: score 86");
        assert_eq!((EN.cold)(16), "cold: no reply for 16 days");
        assert_eq!(
            (EN.urgent)("requests an urgent quote", 2),
            "urgent: requests an urgent quote 2 days ago"
        );
        assert_eq!((ZH.overdue)(3), "跟进已逾期3天");
        assert_eq!((EN.burst)(3, 2.0), "burst: 3 inbound signals in 2 days");
        assert_eq!((ZH.burst)(3, 2.0), "活跃激增：2天内3次互动");
        assert_eq!((EN.burst)(4, 1.5), "burst: 4 inbound signals in 1.5 days");
        assert_eq!((ZH.stage)("合同谈判"), "关键阶段：“合同谈判”");
        assert_eq!((ZH.tier)("A", 86.0), "A级：得分86");
    }
}
