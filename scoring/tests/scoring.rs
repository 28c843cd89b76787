//! Scoring: each dimension kind, override and flag with hand-computed figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use scoring::templates::{self, default_catalog};
use scoring::{
    ActivityState, Catalog, FieldDef, FieldType, LeadFacts, LeadFlag, ModelConfig, Scorecard,
    StageFacts, StageKind, UnixSeconds,
};
use serde_json::{Value, json};

const DAY: i64 = 86_400;
const NOW: UnixSeconds = 1_750_000_000;

fn catalog() -> Catalog {
    let mut c = default_catalog();
    c.fields.push(FieldDef {
        key: "employees".into(),
        field_type: FieldType::Number,
        options: vec![],
    });
    c.fields.push(FieldDef {
        key: "is_customer".into(),
        field_type: FieldType::Boolean,
        options: vec![],
    });
    c
}

/// A model with one dimension of weight 100 and the default tiers, no overrides.
fn one_dimension(kind: &str, params: Value) -> ModelConfig {
    ModelConfig::parse(
        &json!({
            "dimensions": [{"key": "d", "label": "D", "kind": kind, "weight": 100.0, "params": params}],
            "tiers": serde_json::to_value(templates::default_tiers()).unwrap(),
        }),
        &catalog(),
    )
    .unwrap()
}

fn lead() -> LeadFacts {
    LeadFacts {
        created_at: NOW - 100 * DAY,
        stage: StageFacts {
            position: 1,
            stage_count: 7,
            win_probability: 0.2,
            kind: StageKind::Open,
            entered_at: NOW - 5 * DAY,
            rotting_days: Some(30),
            ..StageFacts::default()
        },
        ..LeadFacts::default()
    }
}

fn with(mut facts: LeadFacts, attrs: Value) -> LeadFacts {
    facts.attributes = serde_json::from_value(attrs).unwrap();
    facts
}

fn record(facts: &mut LeadFacts, signal: &str, days_ago: f64, amount: Option<f64>) {
    let c = catalog();
    let def = &c.signals[c.signal_index(signal).unwrap()];
    facts
        .activity
        .record(def, NOW - (days_ago * DAY as f64) as i64, amount);
}

fn score(config: &ModelConfig, facts: &LeadFacts) -> Scorecard {
    config.compile(&catalog()).unwrap().score(facts, NOW)
}

fn assert_close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
}

/// Asserts the single dimension's raw and normalised values and the total.
fn assert_dimension(config: &ModelConfig, facts: &LeadFacts, raw: f64, normalised: f64) {
    let card = score(config, facts);
    let c = &card.contributions[0];
    assert_close(c.raw_value, raw);
    assert_close(c.normalized, normalised);
    assert_close(c.points, 100.0 * normalised);
    assert_close(card.total, 100.0 * normalised);
}

macro_rules! dimension_cases {
    ($($name:ident: $kind:expr, $params:expr, $facts:expr => raw $raw:expr, normalised $norm:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_dimension(&one_dimension($kind, $params), &$facts, $raw, $norm);
        }
    )*};
}

dimension_cases! {
    a_top_rating_scores_one: "RATING", json!({"field": "budget"}), with(lead(), json!({"budget": 5})) => raw 5.0, normalised 1.0;
    a_middle_rating_scores_half: "RATING", json!({"field": "budget"}), with(lead(), json!({"budget": 3})) => raw 3.0, normalised 0.5;
    the_lowest_rating_scores_zero: "RATING", json!({"field": "budget"}), with(lead(), json!({"budget": 1})) => raw 1.0, normalised 0.0;
    a_missing_rating_scores_the_missing_value: "RATING", json!({"field": "budget", "missing": 0.25}), lead() => raw 0.0, normalised 0.25;
    a_category_maps_through_its_table: "RATING", json!({"field": "source", "values": {"referral": 1.0, "website": 0.6}}),
        with(lead(), json!({"source": "website"})) => raw 0.6, normalised 0.6;
    a_category_option_left_out_of_the_table_scores_zero: "RATING", json!({"field": "source", "values": {"referral": 1.0}}),
        with(lead(), json!({"source": "event"})) => raw 0.0, normalised 0.0;
    a_number_maps_through_breakpoints: "RATING", json!({"field": "employees", "breakpoints": [[0, 0], [100, 0.5], [1000, 1]]}),
        with(lead(), json!({"employees": 550})) => raw 550.0, normalised 0.75;
    a_number_beyond_the_last_breakpoint_is_flat: "RATING", json!({"field": "employees", "breakpoints": [[0, 0], [100, 0.5], [1000, 1]]}),
        with(lead(), json!({"employees": 5000})) => raw 5000.0, normalised 1.0;
    a_true_boolean_scores_one: "RATING", json!({"field": "is_customer"}), with(lead(), json!({"is_customer": true})) => raw 1.0, normalised 1.0;
    bant_counts_the_criteria_met: "BANT", json!({"criteria": templates::bant_criteria()}),
        with(lead(), json!({"budget": 5, "authority": 4, "need": 2})) => raw 2.0, normalised 0.5;
    bant_with_a_category_criterion: "BANT", json!({"criteria": [{"field": "source", "oneOf": ["referral", "partner"]}, {"field": "budget", "atLeast": 4}]}),
        with(lead(), json!({"source": "partner", "budget": 3})) => raw 1.0, normalised 0.5;
    recency_is_linear_to_the_horizon: "RECENCY", json!({"horizonDays": 30}), {
        let mut f = lead(); record(&mut f, "website_visit", 6.0, None); f
    } => raw 6.0, normalised 0.8;
    recency_ignores_outbound_contact: "RECENCY", json!({"horizonDays": 30}), {
        let mut f = lead(); record(&mut f, "call", 1.0, None); f
    } => raw -1.0, normalised 0.0;
    recency_past_the_horizon_is_zero: "RECENCY", json!({"horizonDays": 30}), {
        let mut f = lead(); record(&mut f, "website_visit", 45.0, None); f
    } => raw 45.0, normalised 0.0;
    frequency_counts_inbound_in_the_window: "FREQUENCY", json!({"windowDays": 7, "target": 4}), {
        let mut f = lead();
        record(&mut f, "website_visit", 1.0, None);
        record(&mut f, "inbound_inquiry", 3.0, None);
        record(&mut f, "email", 2.0, None);
        record(&mut f, "website_visit", 9.0, None);
        f
    } => raw 2.0, normalised 0.5;
    frequency_saturates_at_its_target: "FREQUENCY", json!({"windowDays": 7, "target": 2}), {
        let mut f = lead();
        for d in 0..5 { record(&mut f, "website_visit", f64::from(d), None); }
        f
    } => raw 5.0, normalised 1.0;
    monetary_log_scales_the_deal_value: "MONETARY", json!({"cap": 999_999.0}),
        LeadFacts { deal_value: Some(999.0), ..lead() } => raw 999.0, normalised 0.5;
    monetary_sums_amounts_in_its_window: "MONETARY", json!({"source": "AMOUNTS", "windowDays": 30, "cap": 999_999.0}), {
        let mut f = lead();
        record(&mut f, "purchase", 3.0, Some(60.0));
        record(&mut f, "purchase", 10.0, Some(39.0));
        record(&mut f, "purchase", 40.0, Some(900.0));
        f
    } => raw 99.0, normalised 1.0 / 3.0;
    stage_uses_the_win_probability: "STAGE", json!({}), lead() => raw 0.2, normalised 0.2;
    stage_can_use_the_position: "STAGE", json!({"basis": "POSITION"}),
        LeadFacts { stage: StageFacts { position: 3, stage_count: 7, ..lead().stage }, ..lead() } => raw 0.5, normalised 0.5;
    predicted_uses_the_learned_probability: "PREDICTED", json!(null),
        LeadFacts { predicted_close_probability: Some(0.7), ..lead() } => raw 0.7, normalised 0.7;
    predicted_falls_back_to_the_stage_win_probability: "PREDICTED", json!(null), lead() => raw 0.2, normalised 0.2;
    predicted_can_fall_back_to_a_constant: "PREDICTED", json!({"fallback": 0.35}), lead() => raw 0.35, normalised 0.35;
}

#[test]
fn engagement_decays_each_signal_by_its_half_life() {
    let config = one_dimension("ENGAGEMENT", json!({"cap": 40.0}));
    let mut f = lead();
    // 8 points with a 14-day half-life, 14 days ago: 4 points; 2 points, 7-day
    // half-life, 7 days ago: 1 point.
    record(&mut f, "inbound_inquiry", 14.0, None);
    record(&mut f, "website_visit", 7.0, None);
    let raw = 5.0;
    let normalised = 1.0 - (-3.0f64 * raw / 40.0).exp();
    assert_dimension(&config, &f, raw, normalised);
}

#[test]
fn engagement_saturates_so_a_flood_of_page_views_stays_below_the_weight() {
    let config = one_dimension("ENGAGEMENT", json!({"cap": 40.0}));
    let mut f = lead();
    for i in 0..500 {
        record(&mut f, "website_visit", f64::from(i) * 0.01, None);
    }
    let card = score(&config, &f);
    assert!(card.contributions[0].raw_value > 500.0);
    assert!(card.total <= 100.0 && card.total > 99.9);
}

#[test]
fn negative_signals_lower_engagement() {
    let config = one_dimension("ENGAGEMENT", json!({"cap": 40.0}));
    let mut f = lead();
    record(&mut f, "inbound_inquiry", 0.0, None);
    record(&mut f, "detail_question", 0.0, None);
    let before = score(&config, &f).total;
    record(&mut f, "no_show", 0.0, None);
    let after = score(&config, &f);
    assert_close(after.contributions[0].raw_value, 8.0);
    assert!(after.total < before);
    record(&mut f, "complaint", 0.0, None);
    let worse = score(&config, &f);
    assert_close(worse.contributions[0].raw_value, -2.0);
    assert_eq!(worse.total, 0.0);
}

#[test]
fn engagement_ignores_outbound_signals_unless_asked() {
    let mut f = lead();
    record(&mut f, "meeting", 0.0, None);
    let inbound_only = one_dimension("ENGAGEMENT", json!({"cap": 40.0}));
    assert_eq!(score(&inbound_only, &f).contributions[0].raw_value, 0.0);
    let with_outbound = one_dimension("ENGAGEMENT", json!({"cap": 40.0, "includeOutbound": true}));
    assert_close(score(&with_outbound, &f).contributions[0].raw_value, 3.0);
}

#[test]
fn engagement_can_count_only_chosen_signals() {
    let config = one_dimension(
        "ENGAGEMENT",
        json!({"cap": 40.0, "signals": ["trial_activity"]}),
    );
    let mut f = lead();
    record(&mut f, "trial_activity", 0.0, None);
    record(&mut f, "inbound_inquiry", 0.0, None);
    assert_close(score(&config, &f).contributions[0].raw_value, 5.0);
}

// ---------------------------------------------------------------------------
// The general template end to end: overrides, flags, cadence.
// ---------------------------------------------------------------------------

fn general(facts: &LeadFacts) -> Scorecard {
    general_at(facts, NOW)
}

fn general_at(facts: &LeadFacts, now: i64) -> Scorecard {
    templates::general()
        .compile(&default_catalog())
        .unwrap()
        .score(facts, now)
}

fn strong_attributes() -> Value {
    json!({"budget": 5, "authority": 5, "need": 5, "timeline": 5, "industry_position": 5, "decision_chain": 5})
}

fn warm_lead() -> LeadFacts {
    let mut f = with(
        lead(),
        json!({"budget": 3, "authority": 3, "need": 3, "timeline": 3, "industry_position": 3, "decision_chain": 3}),
    );
    record(&mut f, "website_visit", 2.0, None);
    record(&mut f, "call", 1.0, None);
    f
}

#[test]
fn the_general_model_adds_up_a_hand_computed_total() {
    let f = warm_lead();
    let card = general(&f);
    // industry 5×0.5, activity 20×(1−e^(−3·2·2^(−2/7)/40)), recency 15×(1−2/30),
    // budget 20×0.5, decision chain 10×0.5, close probability 20×0.2 (stage
    // fallback), stage progress 10×1/6 (second of seven stages).
    let visit = 2.0 * 2f64.powf(-2.0 / 7.0);
    let want = 2.5
        + 20.0 * (1.0 - (-3.0 * visit / 40.0).exp())
        + 15.0 * (1.0 - 2.0 / 30.0)
        + 10.0
        + 5.0
        + 4.0
        + 10.0 / 6.0;
    assert_close(card.total, want);
    let sum: f64 = card.contributions.iter().map(|c| c.points).sum();
    assert_close(sum, card.total);
    assert_eq!(card.tier, "C");
    assert_eq!(card.base_tier, "C");
    assert!(card.overrides.is_empty(), "{:?}", card.overrides);
    assert!(card.flags.is_empty());
    assert_eq!(card.next_follow_up_at, NOW - DAY + 14 * DAY);
}

#[test]
fn an_urgent_signal_within_its_window_raises_a_lead_to_the_top_tier() {
    let mut f = lead();
    record(&mut f, "meeting_request", 3.0, None);
    let card = general(&f);
    assert_eq!(card.base_tier, "C");
    assert_eq!(card.tier, "A");
    assert_eq!(card.tier_rank, 0);
    assert!(card.has_flag(LeadFlag::Urgent));
    let o = card
        .overrides
        .iter()
        .find(|o| o.rule == "URGENT_SIGNAL")
        .unwrap();
    assert_eq!(o.effect, "raised C → A");
    assert!(
        o.reason
            .contains("urgent signal meeting_request 3.0 days ago"),
        "{}",
        o.reason
    );
}

#[test]
fn an_urgent_signal_outside_its_window_does_nothing() {
    let mut f = lead();
    record(&mut f, "meeting_request", 8.0, None);
    let card = general(&f);
    assert!(!card.has_flag(LeadFlag::Urgent));
    assert_ne!(card.tier, "A");
}

#[test]
fn three_bant_criteria_raise_a_lead_to_at_least_b() {
    let mut f = with(
        lead(),
        json!({"budget": 4, "authority": 5, "need": 4, "timeline": 1}),
    );
    record(&mut f, "website_visit", 1.0, None);
    let card = general(&f);
    assert_eq!(card.base_tier, "C");
    assert_eq!(card.tier, "B");
    let o = card.overrides.iter().find(|o| o.rule == "BANT").unwrap();
    assert!(
        o.reason.starts_with("3 of 4 BANT criteria met"),
        "{}",
        o.reason
    );
}

#[test]
fn two_weeks_without_inbound_make_a_lead_cold_capped_and_slower() {
    let mut f = with(
        lead(),
        json!({"budget": 5, "authority": 5, "need": 5, "timeline": 5, "industry_position": 5, "decision_chain": 5}),
    );
    f.predicted_close_probability = Some(0.95);
    record(&mut f, "inbound_inquiry", 15.0, None);
    record(&mut f, "call", 2.0, None);
    let card = general(&f);
    assert!(card.has_flag(LeadFlag::Cold));
    assert_eq!(
        card.tier, "C",
        "BANT says B but COLD comes later and caps at C"
    );
    let cold = card.overrides.iter().find(|o| o.rule == "COLD").unwrap();
    assert_eq!(cold.effect, "capped B → C");
    assert!(
        cold.reason.contains("no inbound response for 15 days"),
        "{}",
        cold.reason
    );
    // C's cadence is 14 days; cold leads every 21.
    assert_eq!(card.next_follow_up_at, NOW - 2 * DAY + 21 * DAY);
}

#[test]
fn a_lead_that_never_replied_goes_cold_two_weeks_after_creation() {
    let mut f = lead();
    f.created_at = NOW - 13 * DAY;
    assert!(!general(&f).has_flag(LeadFlag::Cold));
    f.created_at = NOW - 14 * DAY;
    assert!(general(&f).has_flag(LeadFlag::Cold));
}

#[test]
fn a_lead_created_today_whose_last_reply_was_a_month_ago_is_cold() {
    let mut f = lead();
    f.created_at = NOW - 3600;
    record(&mut f, "positive_feedback", 30.0, None);
    let card = general(&f);
    assert!(card.has_flag(LeadFlag::Cold));
    let cold = card.overrides.iter().find(|o| o.rule == "COLD").unwrap();
    assert!(
        cold.reason.contains("no inbound response for 30 days"),
        "{}",
        cold.reason
    );
    // A reply yesterday: not cold, however old the lead.
    let mut f = lead();
    f.created_at = NOW - 90 * DAY;
    record(&mut f, "positive_feedback", 1.0, None);
    assert!(!general(&f).has_flag(LeadFlag::Cold));
}

#[test]
fn a_scheduled_follow_up_earlier_than_the_cadence_is_when_the_lead_is_due() {
    let mut f = warm_lead();
    let cadence = general(&f).next_follow_up_at;
    f.scheduled_follow_up_at = Some(NOW + 3600);
    assert!(NOW + 3600 < cadence);
    assert_eq!(general(&f).next_follow_up_at, NOW + 3600);
    // Later than the cadence: the cadence still calls first.
    f.scheduled_follow_up_at = Some(cadence + 30 * DAY);
    assert_eq!(general(&f).next_follow_up_at, cadence);
    // Its time passed without a call: overdue.
    f.scheduled_follow_up_at = Some(NOW - 3600);
    let card = general(&f);
    assert_eq!(card.next_follow_up_at, NOW - 3600);
    assert!(card.has_flag(LeadFlag::Overdue));
}

#[test]
fn an_outbound_contact_at_or_after_the_scheduled_time_completes_it() {
    let mut f = warm_lead();
    f.scheduled_follow_up_at = Some(NOW - 2 * DAY);
    record(&mut f, "call", 1.0, None);
    let card = general(&f);
    assert_ne!(card.next_follow_up_at, NOW - 2 * DAY);
    assert!(!card.has_flag(LeadFlag::Overdue), "{:?}", card.flags);
    // A call before the scheduled time does not.
    let mut f = lead();
    f.scheduled_follow_up_at = Some(NOW - DAY);
    record(&mut f, "call", 2.0, None);
    assert_eq!(general(&f).next_follow_up_at, NOW - DAY);
}

#[test]
fn a_new_top_tier_lead_is_due_within_its_tiers_first_response() {
    let mut f = with(lead(), strong_attributes());
    f.created_at = NOW - 600;
    f.predicted_close_probability = Some(0.95);
    record(&mut f, "meeting_request", 0.0, None);
    let card = general(&f);
    assert_eq!(card.tier, "A", "{card:?}");
    assert_eq!(
        card.next_follow_up_at,
        NOW - 600 + 3600,
        "A: within the hour"
    );
    // Two hours on without a call it is overdue, and the most pressing kind.
    let later = general_at(&f, NOW + 2 * 3600);
    assert!(later.has_flag(LeadFlag::Overdue));
    // The first call answers it: from then on the tier's cadence counts.
    record(&mut f, "call", 0.0, None);
    assert_eq!(general(&f).next_follow_up_at, NOW + 2 * DAY);
    // Rising into A again later makes it new to the tier again.
    f.tier_rose_at = Some(NOW + 60);
    assert_eq!(general(&f).next_follow_up_at, NOW + 60 + 3600);
}

#[test]
fn a_lower_tier_without_a_first_response_waits_for_its_cadence() {
    let f = lead();
    let card = general(&f);
    assert!(card.tier == "C" || card.tier == "D", "{card:?}");
    assert!(card.next_follow_up_at >= f.created_at + 14 * DAY);
}

#[test]
fn a_lead_idle_past_its_stages_rotting_days_is_stale() {
    let mut f = warm_lead();
    f.stage.entered_at = NOW - 31 * DAY;
    let card = general(&f);
    assert!(card.has_flag(LeadFlag::Stale));
    assert_eq!(
        card.overrides
            .iter()
            .find(|o| o.rule == "STALE")
            .unwrap()
            .effect,
        "flag STALE"
    );
    f.stage.kind = StageKind::Won;
    assert!(
        !general(&f).has_flag(LeadFlag::Stale),
        "closed leads do not rot"
    );
    f.stage.kind = StageKind::Open;
    f.stage.rotting_days = None;
    assert!(!general(&f).has_flag(LeadFlag::Stale));
}

#[test]
fn falling_inbound_frequency_flags_churn_risk() {
    let mut f = lead();
    for d in [35.0, 40.0, 45.0, 50.0] {
        record(&mut f, "purchase", d, Some(100.0));
    }
    record(&mut f, "website_visit", 2.0, None);
    let card = general(&f);
    assert!(card.has_flag(LeadFlag::ChurnRisk));
    let o = card
        .overrides
        .iter()
        .find(|o| o.rule == "CHURN_RISK")
        .unwrap();
    assert!(o.reason.contains("fell from 4 to 1"), "{}", o.reason);
}

#[test]
fn a_single_earlier_interaction_is_too_few_to_call_churn() {
    let mut f = lead();
    record(&mut f, "website_visit", 40.0, None);
    assert!(!general(&f).has_flag(LeadFlag::ChurnRisk));
}

#[test]
fn a_follow_up_past_its_cadence_is_overdue_and_first_in_the_queue() {
    let mut f = lead();
    record(&mut f, "meeting_request", 1.0, None);
    record(&mut f, "call", 3.0, None);
    let card = general(&f);
    assert_eq!(card.tier, "A");
    assert_eq!(card.next_follow_up_at, NOW - 3 * DAY + 2 * DAY);
    assert!(card.has_flag(LeadFlag::Overdue));
    assert_eq!(card.overdue_days(), 1);
    assert!(card.priority >= 1_000_000_000);
    assert!(card.reasons()[0].contains("overdue by 1 day"));
    let fresh = general(&warm_lead());
    assert!(!fresh.has_flag(LeadFlag::Overdue));
    assert!(card.priority > fresh.priority);
}

#[test]
fn the_scorecard_serialises_with_the_contract_names() {
    let mut f = warm_lead();
    record(&mut f, "meeting_request", 1.0, None);
    let card = general(&f);
    let v = serde_json::to_value(&card).unwrap();
    for key in [
        "total",
        "tier",
        "tierRank",
        "contributions",
        "overrides",
        "flags",
        "nextFollowUpAt",
        "priority",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    let c = &v["contributions"][0];
    for key in [
        "dimensionKey",
        "label",
        "kind",
        "rawValue",
        "normalized",
        "weight",
        "points",
    ] {
        assert!(c.get(key).is_some(), "missing {key} in {c}");
    }
    assert_eq!(v["flags"], json!(["URGENT"]));
    assert_eq!(v["overrides"][0]["rule"], json!("URGENT_SIGNAL"));
    let back: Scorecard = serde_json::from_value(v).unwrap();
    assert_eq!(back, card);
}

#[test]
fn scoring_is_deterministic() {
    let f = warm_lead();
    assert_eq!(general(&f), general(&f));
}

#[test]
fn a_lead_can_be_rescored_later_without_its_history() {
    let model = templates::general().compile(&default_catalog()).unwrap();
    let f = warm_lead();
    let stored: ActivityState =
        serde_json::from_str(&serde_json::to_string(&f.activity).unwrap()).unwrap();
    let later = model.score(
        &LeadFacts {
            activity: stored,
            ..f.clone()
        },
        NOW + 10 * DAY,
    );
    assert!(
        later.total < model.score(&f, NOW).total,
        "decay and recency lower it"
    );
}

#[test]
fn the_saas_and_medical_templates_score_leads() {
    let mut f = with(
        lead(),
        json!({"budget": 5, "authority": 5, "industry_position": 4, "purchase_cycle": 5,
               "hospital_type": "tertiary", "decision_chain": 3}),
    );
    record(&mut f, "trial_activity", 0.5, None);
    record(&mut f, "trial_activity", 1.5, None);
    let saas = templates::saas()
        .compile(&default_catalog())
        .unwrap()
        .score(&f, NOW);
    let medical = templates::medical_devices()
        .compile(&templates::catalog_for("medical"))
        .unwrap()
        .score(&f, NOW);
    // Medical: purchase cycle 25 + budget 25 + tertiary 20 + history 10×0.2 + chain 10×0.5
    // + stage progress 10×1/6.
    assert_close(medical.total, 25.0 + 25.0 + 20.0 + 2.0 + 5.0 + 10.0 / 6.0);
    // Early in the pipeline, a strong account is not yet the most urgent.
    assert_eq!(medical.tier, "B");
    assert!(saas.total > 50.0, "{}", saas.total);
    assert_eq!(saas.contributions[0].dimension_key, "trial_activity");
}

#[test]
fn an_rfm_model_for_existing_customers_is_just_configuration() {
    let config = ModelConfig::parse(
        &json!({
            "dimensions": [
                {"key": "r", "label": "Recency", "kind": "RECENCY", "weight": 40.0, "params": {"horizonDays": 90}},
                {"key": "f", "label": "Frequency", "kind": "FREQUENCY", "weight": 30.0, "params": {"windowDays": 90, "target": 6}},
                {"key": "m", "label": "Monetary", "kind": "MONETARY", "weight": 30.0,
                 "params": {"source": "AMOUNTS", "windowDays": 365, "cap": 10000}}
            ],
            "tiers": [
                {"key": "champion", "label": "Champions", "minScore": 70.0, "followUpEveryDays": 7.0},
                {"key": "at_risk", "label": "At risk", "minScore": 0.0, "followUpEveryDays": 30.0}
            ],
            "overrides": [{"kind": "CHURN_RISK", "params": {"windowDays": 45, "belowFraction": 0.5, "atMostTier": "at_risk"}}]
        }),
        &catalog(),
    )
    .unwrap();
    let mut f = lead();
    record(&mut f, "purchase", 9.0, Some(100.0));
    record(&mut f, "purchase", 30.0, Some(200.0));
    record(&mut f, "purchase", 60.0, Some(700.0));
    let card = score(&config, &f);
    let want = 40.0 * (1.0 - 9.0 / 90.0) + 30.0 * 0.5 + 30.0 * 1000f64.ln_1p() / 10000f64.ln_1p();
    assert_close(card.total, want);
    assert_eq!(card.tier, "champion");
    // Purchases dry up: two in the previous 45 days, none since.
    let mut g = lead();
    record(&mut g, "purchase", 50.0, Some(500.0));
    record(&mut g, "purchase", 60.0, Some(500.0));
    let card = score(&config, &g);
    assert!(card.has_flag(LeadFlag::ChurnRisk));
    assert_eq!(card.tier, "at_risk");
}

#[test]
fn a_lifecycle_model_weighs_pipeline_position_and_stage_urgency() {
    let config = ModelConfig::parse(
        &json!({
            "dimensions": [
                {"key": "lifecycle", "label": "Lifecycle", "kind": "STAGE", "weight": 60.0, "params": {"basis": "POSITION"}},
                {"key": "urgency", "label": "Stage urgency", "kind": "STAGE", "weight": 40.0, "params": {"basis": "WIN_PROBABILITY"}}
            ],
            "tiers": serde_json::to_value(templates::default_tiers()).unwrap()
        }),
        &catalog(),
    )
    .unwrap();
    let negotiating = LeadFacts {
        stage: StageFacts {
            position: 4,
            stage_count: 7,
            win_probability: 0.8,
            ..lead().stage
        },
        ..lead()
    };
    assert_close(
        score(&config, &negotiating).total,
        60.0 * 4.0 / 6.0 + 40.0 * 0.8,
    );
}

#[test]
fn a_managers_pin_sets_the_tier_and_is_explained_until_it_expires() {
    let mut f = lead();
    // Contacted already, so A's cadence (not its first response) counts.
    record(&mut f, "call", 1.0, None);
    f.pin = Some(scoring::TierPin {
        tier: "A".into(),
        reason: "strategic account".into(),
        expires_at: Some(NOW + 3 * DAY),
        pinned_by: Some("Mia Manager".into()),
    });
    let card = general(&f);
    assert_eq!(card.tier, "A");
    let pin = card.overrides.last().unwrap();
    assert_eq!(pin.rule, "PIN");
    assert_eq!(pin.effect, format!("pinned {} → A", card.base_tier));
    assert_eq!(
        pin.reason,
        "tier pinned to A by Mia Manager until 2025-06-18: strategic account"
    );
    assert_eq!(card.next_follow_up_at, NOW - DAY + 2 * DAY, "A's cadence");

    let expired = templates::general()
        .compile(&default_catalog())
        .unwrap()
        .score(&f, NOW + 3 * DAY);
    assert_ne!(expired.tier, "A");
    assert!(expired.overrides.iter().all(|o| o.rule != "PIN"));
}

#[test]
fn a_pin_to_a_tier_the_model_lacks_is_ignored() {
    let mut f = lead();
    f.pin = Some(scoring::TierPin {
        tier: "S".into(),
        reason: "typo".into(),
        expires_at: None,
        pinned_by: None,
    });
    let card = general(&f);
    assert!(card.overrides.iter().all(|o| o.rule != "PIN"));
    assert_eq!(card.tier, card.base_tier);
}

#[test]
fn a_pin_can_hold_an_urgent_lead_down() {
    let mut f = lead();
    record(&mut f, "meeting_request", 1.0, None);
    f.pin = Some(scoring::TierPin {
        tier: "C".into(),
        reason: "on hold until budget year".into(),
        expires_at: None,
        pinned_by: None,
    });
    let card = general(&f);
    assert_eq!(card.tier, "C");
    assert!(card.has_flag(LeadFlag::Urgent), "the flag still shows");
    let pin = card.overrides.last().unwrap();
    assert_eq!(pin.effect, "pinned A → C");
    assert_eq!(
        pin.reason,
        "tier pinned to C by a manager: on hold until budget year"
    );
}
