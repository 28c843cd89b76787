//! Stage urgency, bursts, responsiveness and date proximity (issue 18 items
//! 3 and 4), each with hand-computed figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use scoring::templates::{self, default_catalog};
use scoring::{
    Activity, ActivityState, Catalog, CompiledModel, FieldDef, FieldType, LeadBatch, LeadFacts,
    ModelConfig, Scorecard, StageFacts, UnixSeconds,
};
use serde_json::{Value, json};

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// 2025-06-15 15:06:40 UTC.
const NOW: UnixSeconds = 1_750_000_000;

fn catalog() -> Catalog {
    let mut c = default_catalog();
    c.fields.push(FieldDef {
        key: "tender_date".into(),
        field_type: FieldType::Date,
        options: vec![],
    });
    c.stages = ["lead", "proposal", "negotiation", "won", "lost"]
        .map(String::from)
        .to_vec();
    c
}

/// A model of `dimensions` with the default tiers and `overrides`.
fn model(dimensions: Value, overrides: Value) -> CompiledModel {
    parse(dimensions, overrides)
        .unwrap()
        .compile(&catalog())
        .unwrap()
}

fn parse(dimensions: Value, overrides: Value) -> Result<ModelConfig, Vec<scoring::ConfigError>> {
    ModelConfig::parse(
        &json!({
            "dimensions": dimensions,
            "tiers": serde_json::to_value(templates::default_tiers()).unwrap(),
            "overrides": overrides,
        }),
        &catalog(),
    )
}

fn errors_of(dimensions: Value, overrides: Value) -> Vec<(String, String)> {
    parse(dimensions, overrides)
        .unwrap_err()
        .into_iter()
        .map(|e| (e.path, e.message))
        .collect()
}

/// One RATING dimension on budget, so the tier follows the budget.
fn budget_only() -> Value {
    json!([{"key": "b", "label": "Budget", "kind": "RATING", "weight": 100.0, "params": {"field": "budget"}}])
}

/// A lead rated `budget` (3 scores 50, tier B; 2 scores 25, tier C).
fn lead(budget: u8, stage: &str) -> LeadFacts {
    LeadFacts {
        attributes: serde_json::from_value(json!({ "budget": budget })).unwrap(),
        created_at: NOW - 60 * DAY,
        stage: StageFacts {
            key: stage.into(),
            position: 1,
            stage_count: 5,
            entered_at: NOW - 3 * DAY,
            ..StageFacts::default()
        },
        ..LeadFacts::default()
    }
}

fn record(facts: &mut LeadFacts, signal: &str, at: UnixSeconds) {
    let c = catalog();
    let def = &c.signals[c.signal_index(signal).unwrap()];
    facts.activity.record(def, at, None);
}

fn override_of<'a>(card: &'a Scorecard, rule: &str) -> Option<&'a scoring::AppliedOverride> {
    card.overrides.iter().find(|o| o.rule == rule)
}

/// Scoring one lead and scoring it in a batch agree.
fn batch_agrees(model: &CompiledModel, facts: &[LeadFacts]) {
    let batch = LeadBatch::from_facts(model, facts, NOW);
    let mut out = Vec::new();
    model.score_batch(&batch, &mut out);
    for (f, s) in facts.iter().zip(&out) {
        let card = model.score(f, NOW);
        assert_eq!(card.total, s.total);
        assert_eq!(card.tier_rank, u32::from(s.tier_rank));
    }
}

#[test]
fn a_stage_rule_lifts_a_lead_in_contract_negotiation_to_a() {
    let m = model(
        budget_only(),
        json!([{"kind": "STAGE", "params": {"stages": ["negotiation"], "tier": "A"}}]),
    );
    let negotiating = m.score(&lead(2, "negotiation"), NOW);
    assert_eq!(
        (negotiating.base_tier.as_str(), negotiating.tier.as_str()),
        ("C", "A")
    );
    let o = override_of(&negotiating, "STAGE").unwrap();
    assert_eq!(o.effect, "raised C → A");
    assert_eq!(o.reason, "in stage negotiation: at least tier A");
    let proposing = m.score(&lead(2, "proposal"), NOW);
    assert_eq!(proposing.tier, "C");
    assert!(proposing.overrides.is_empty());
    batch_agrees(&m, &[lead(2, "negotiation"), lead(2, "proposal")]);
}

#[test]
fn a_stage_rule_naming_an_unknown_stage_is_refused_with_its_path() {
    let errors = errors_of(
        budget_only(),
        json!([{"kind": "STAGE", "params": {"stages": ["proposal", "haggling"], "tier": "A"}}]),
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "overrides[0].params.stages[1]");
    assert!(
        errors[0].1.contains("unknown stage `haggling`"),
        "{}",
        errors[0].1
    );
    let errors = errors_of(
        budget_only(),
        json!([{"kind": "STAGE", "params": {"stages": [], "tier": "Z"}}]),
    );
    let paths: Vec<&str> = errors.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        paths,
        ["overrides[0].params.stages", "overrides[0].params.tier"]
    );
}

fn burst_rule() -> Value {
    json!([{"kind": "BURST", "params": {"atLeast": 3, "withinDays": 2, "tier": "B"}}])
}

#[test]
fn a_burst_of_three_inbound_signals_in_two_days_lifts_a_quiet_c_lead() {
    let m = model(budget_only(), burst_rule());
    let mut quiet = lead(2, "lead");
    record(&mut quiet, "website_visit", NOW - 40 * DAY);
    record(&mut quiet, "website_visit", NOW - 30 * DAY);
    let mut engaged = quiet.clone();
    for hours in [40, 20, 1] {
        record(&mut engaged, "detail_question", NOW - hours * HOUR);
    }
    let card = m.score(&engaged, NOW);
    assert_eq!((card.base_tier.as_str(), card.tier.as_str()), ("C", "B"));
    let o = override_of(&card, "BURST").unwrap();
    assert_eq!(
        o.reason,
        "burst: 3 inbound signals in 2 days: at least tier B"
    );
    assert_eq!(m.score(&quiet, NOW).tier, "C");
    batch_agrees(&m, &[quiet, engaged]);
}

#[test]
fn a_burst_counts_only_recent_positive_inbound_signals() {
    let m = model(budget_only(), burst_rule());
    let mut f = lead(2, "lead");
    // Two days and an hour ago: outside the window.
    record(&mut f, "website_visit", NOW - 49 * HOUR);
    record(&mut f, "website_visit", NOW - 10 * HOUR);
    // Complaints and our own calls are not the lead engaging.
    record(&mut f, "complaint", NOW - 5 * HOUR);
    record(&mut f, "call", NOW - 4 * HOUR);
    record(&mut f, "website_visit", NOW - 2 * HOUR);
    assert_eq!(m.score(&f, NOW).tier, "C");
    record(&mut f, "inbound_inquiry", NOW - HOUR);
    assert_eq!(m.score(&f, NOW).tier, "B");
}

#[test]
fn a_burst_rule_needs_a_positive_count_and_window() {
    let errors = errors_of(
        budget_only(),
        json!([{"kind": "BURST", "params": {"atLeast": 0, "withinDays": -1, "tier": "B"}}]),
    );
    let paths: Vec<&str> = errors.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "overrides[0].params.atLeast",
            "overrides[0].params.withinDays"
        ]
    );
    let errors = errors_of(
        budget_only(),
        json!([{"kind": "BURST", "params": {"atLeast": 33, "withinDays": 1, "tier": "B"}}]),
    );
    assert!(errors[0].1.contains("between 1 and 32"), "{errors:?}");
}

fn responsiveness() -> Value {
    json!([{"key": "r", "label": "Responsiveness", "kind": "RESPONSIVENESS", "weight": 100.0,
            "params": {"windowDays": 30, "targetHours": 24}}])
}

/// A lead contacted three times, answering each after `reply_hours`.
fn answering_after(reply_hours: [i64; 3]) -> LeadFacts {
    let mut f = lead(3, "lead");
    for (k, h) in reply_hours.into_iter().enumerate() {
        let asked = NOW - (20 - 5 * k as i64) * DAY;
        record(&mut f, "call", asked);
        record(&mut f, "inbound_inquiry", asked + h * HOUR);
    }
    f
}

#[test]
fn responsiveness_ranks_a_quick_responder_over_a_slow_one() {
    let m = model(responsiveness(), json!([]));
    let quick = m.score(&answering_after([2, 1, 6]), NOW);
    let slow = m.score(&answering_after([30, 72, 48]), NOW);
    let (q, s) = (&quick.contributions[0], &slow.contributions[0]);
    // Medians 2 and 48 hours: 24/26 and 24/72.
    assert_eq!((q.raw_value, s.raw_value), (2.0, 48.0));
    assert!((q.normalized - 24.0 / 26.0).abs() < 1e-12);
    assert!((s.normalized - 1.0 / 3.0).abs() < 1e-12);
    assert!(quick.total > slow.total);
    assert_eq!(
        q.detail.as_deref(),
        Some("replies to our contacts in 2.0 hours (median)")
    );
    batch_agrees(
        &m,
        &[answering_after([2, 1, 6]), answering_after([30, 72, 48])],
    );
}

#[test]
fn responsiveness_counts_from_the_first_unanswered_contact_and_from_silence() {
    let state = |events: &[(&str, i64)]| {
        let mut f = lead(3, "lead");
        for (s, at) in events {
            record(&mut f, s, *at);
        }
        f.activity
    };
    // Two calls before one reply: the lead was asked at the first.
    let s = state(&[
        ("call", NOW - 10 * DAY),
        ("email", NOW - 10 * DAY + 5 * HOUR),
        ("inbound_inquiry", NOW - 10 * DAY + 8 * HOUR),
    ]);
    assert_eq!(s.response_hours(NOW - 30 * DAY, NOW, 24.0), (8.0, 1));
    // Unanswered for 3 days: counts as 72 hours once past the target.
    let s = state(&[
        ("call", NOW - 10 * DAY),
        ("inbound_inquiry", NOW - 10 * DAY + 2 * HOUR),
        ("call", NOW - 3 * DAY),
    ]);
    assert_eq!(s.response_hours(NOW - 30 * DAY, NOW, 24.0), (37.0, 2));
    // A call an hour ago has not waited long enough to say anything.
    let s = state(&[
        ("call", NOW - 10 * DAY),
        ("inbound_inquiry", NOW - 10 * DAY + 2 * HOUR),
        ("call", NOW - HOUR),
    ]);
    assert_eq!(s.response_hours(NOW - 30 * DAY, NOW, 24.0), (2.0, 1));
    // Contacts before the window do not count; nothing measured is NaN.
    let (median, n) = s.response_hours(NOW - 5 * DAY, NOW, 24.0);
    assert!(median.is_nan());
    assert_eq!(n, 0);
}

#[test]
fn a_lead_never_measured_scores_the_missing_value() {
    let m = model(
        json!([{"key": "r", "label": "R", "kind": "RESPONSIVENESS", "weight": 100.0,
                "params": {"missing": 0.25}}]),
        json!([]),
    );
    let card = m.score(&lead(3, "lead"), NOW);
    let c = &card.contributions[0];
    assert_eq!((c.raw_value, c.normalized), (-1.0, 0.25));
    assert_eq!(
        c.detail.as_deref(),
        Some("no reply to our contacts measured in the last 90 days")
    );
}

fn tender(horizon: f64, grace: f64) -> CompiledModel {
    model(
        json!([{"key": "t", "label": "Tender", "kind": "DATE_PROXIMITY", "weight": 100.0,
                "params": {"field": "tender_date", "horizonDays": horizon, "graceDays": grace}}]),
        json!([]),
    )
}

fn with_tender(date: &str) -> LeadFacts {
    let mut f = lead(3, "lead");
    f.attributes.insert("tender_date".into(), date.into());
    f
}

#[test]
fn a_date_near_its_day_scores_higher_than_a_far_one() {
    // NOW is 2025-06-15.
    let m = tender(30.0, 0.0);
    let cases = [
        ("2025-06-15", 0.0, 1.0, "tender_date is today"),
        ("2025-06-18", 3.0, 0.9, "tender_date in 3 day(s)"),
        ("2025-07-05", 20.0, 1.0 / 3.0, "tender_date in 20 day(s)"),
        ("2025-08-30", 76.0, 0.0, "tender_date in 76 day(s)"),
        ("2025-06-14", -1.0, 0.0, "tender_date passed 1 day(s) ago"),
    ];
    for (date, raw, normalised, detail) in cases {
        let card = m.score(&with_tender(date), NOW);
        let c = &card.contributions[0];
        assert_eq!(c.raw_value, raw, "{date}");
        assert!(
            (c.normalized - normalised).abs() < 1e-12,
            "{date}: {}",
            c.normalized
        );
        assert_eq!(c.detail.as_deref(), Some(detail));
    }
    let none = m.score(&lead(3, "lead"), NOW);
    assert_eq!(
        (
            none.contributions[0].raw_value,
            none.contributions[0].normalized
        ),
        (0.0, 0.0)
    );
    assert_eq!(
        none.contributions[0].detail.as_deref(),
        Some("no tender_date set")
    );
    batch_agrees(&m, &[with_tender("2025-06-18"), lead(3, "lead")]);
}

#[test]
fn a_date_just_passed_still_counts_within_its_grace_days() {
    let m = tender(30.0, 3.0);
    assert_eq!(m.score(&with_tender("2025-06-13"), NOW).total, 100.0);
    assert_eq!(m.score(&with_tender("2025-06-11"), NOW).total, 0.0);
}

#[test]
fn date_proximity_needs_a_date_field_and_a_positive_horizon() {
    let errors = errors_of(
        json!([{"key": "t", "label": "T", "kind": "DATE_PROXIMITY", "weight": 100.0,
                "params": {"field": "budget", "horizonDays": 0, "graceDays": -1}}]),
        json!([]),
    );
    let paths: Vec<&str> = errors.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        paths,
        [
            "dimensions[0].params.horizonDays",
            "dimensions[0].params.graceDays",
            "dimensions[0].params.field"
        ]
    );
    assert!(errors[2].1.contains("needs a DATE field"), "{errors:?}");
    let errors = errors_of(
        json!([{"key": "t", "label": "T", "kind": "RATING", "weight": 100.0,
                "params": {"field": "tender_date"}}]),
        json!([]),
    );
    assert!(errors[0].1.contains("DATE_PROXIMITY"), "{errors:?}");
}

#[test]
fn recent_contacts_rebuilt_from_history_match_those_recorded_one_by_one() {
    let c = catalog();
    let activities: Vec<Activity> = (0..50)
        .map(|i| Activity {
            signal: ["website_visit", "call", "complaint"][i % 3].into(),
            occurred_at: NOW - (i as i64 * 7 % 50) * HOUR,
            amount: None,
        })
        .collect();
    let rebuilt = ActivityState::from_activities(&c, &activities);
    let mut recorded = ActivityState::new();
    for a in &activities {
        recorded.record(
            &c.signals[c.signal_index(&a.signal).unwrap()],
            a.occurred_at,
            None,
        );
    }
    assert_eq!(rebuilt.recent_inbound, recorded.recent_inbound);
    assert_eq!(rebuilt.recent_outbound, recorded.recent_outbound);
    assert!(rebuilt.recent_inbound.len() <= scoring::decay::RECENT_CONTACTS);
    assert!(rebuilt.recent_inbound.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn later_stages_weigh_more_in_the_general_template() {
    let m = templates::general().compile(&default_catalog()).unwrap();
    let at = |position| {
        let mut f = lead(3, "x");
        f.stage.position = position;
        f.stage.stage_count = 8;
        m.score(&f, NOW).total
    };
    assert!(at(4) > at(1));
    assert!((at(4) - at(1) - 10.0 * 3.0 / 7.0).abs() < 1e-9);
}
