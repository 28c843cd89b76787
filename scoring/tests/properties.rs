//! Properties of the engine over generated leads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use scoring::decay::{Activity, decay_factor};
use scoring::templates::{self, default_catalog};
use scoring::{
    ActivityState, AttributeValue, CompiledModel, LeadBatch, LeadFacts, LeadFlag, StageFacts,
    StageKind, UnixSeconds,
};

const DAY: i64 = 86_400;
const NOW: UnixSeconds = 1_750_000_000;
const RATINGS: [&str; 6] = [
    "budget",
    "timeline",
    "authority",
    "need",
    "industry_position",
    "decision_chain",
];

fn general() -> CompiledModel {
    templates::general().compile(&default_catalog()).unwrap()
}

fn arb_activities() -> impl Strategy<Value = Vec<(usize, i64, Option<f64>)>> {
    prop::collection::vec(
        (
            0usize..17,
            0i64..200 * DAY,
            prop::option::of(0.0f64..10_000.0),
        ),
        0..30,
    )
}

prop_compose! {
    fn arb_lead()(
        ratings in prop::collection::vec(prop::option::of(1u8..=5), 6),
        activities in arb_activities(),
        position in 0u32..7,
        win in 0.0f64..=1.0,
        predicted in prop::option::of(0.0f64..=1.0),
        entered_days in 0i64..90,
        rotting in prop::option::of(1u32..60),
        created_days in 0i64..400,
        deal in prop::option::of(0.0f64..1e7),
    ) -> LeadFacts {
        let catalog = default_catalog();
        let mut f = LeadFacts {
            created_at: NOW - created_days * DAY,
            deal_value: deal,
            stage: StageFacts {
                position,
                stage_count: 7,
                win_probability: win,
                kind: StageKind::Open,
                entered_at: NOW - entered_days * DAY,
                rotting_days: rotting,
                ..StageFacts::default()
            },
            predicted_close_probability: predicted,
            ..LeadFacts::default()
        };
        for (key, r) in RATINGS.iter().zip(ratings) {
            if let Some(r) = r {
                f.attributes.insert((*key).into(), AttributeValue::Number(f64::from(r)));
            }
        }
        for (s, ago, amount) in activities {
            f.activity.record(&catalog.signals[s], NOW - ago, amount);
        }
        f
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_total_stays_within_0_and_100_and_the_points_sum_to_it(f in arb_lead()) {
        for config in [templates::general(), templates::saas()] {
            let card = config.compile(&default_catalog()).unwrap().score(&f, NOW);
            prop_assert!((0.0..=100.0).contains(&card.total), "{}", card.total);
            let sum: f64 = card.contributions.iter().map(|c| c.points).sum();
            prop_assert!((sum - card.total).abs() < 1e-9, "{sum} vs {}", card.total);
            for c in &card.contributions {
                prop_assert!((0.0..=1.0).contains(&c.normalized));
            }
        }
    }

    #[test]
    fn raising_any_rating_never_lowers_the_score(f in arb_lead(), which in 0usize..6, by in 1u8..4) {
        let model = general();
        let before = model.score(&f, NOW).total;
        let mut g = f.clone();
        let key = RATINGS[which];
        let old = g.attributes.get(key).and_then(AttributeValue::as_number).unwrap_or(1.0);
        g.attributes.insert(key.into(), AttributeValue::Number((old + f64::from(by)).min(5.0)));
        prop_assert!(model.score(&g, NOW).total >= before - 1e-9);
    }

    #[test]
    fn more_positive_activity_or_probability_never_lowers_the_score(
        f in arb_lead(), signal in 0usize..11, ago in 0i64..30 * DAY, p in 0.0f64..=1.0
    ) {
        let model = general();
        let before = model.score(&f, NOW).total;
        let mut g = f.clone();
        // Inbound signals with positive points only (indices 0..11 of the default catalog).
        g.activity.record(&default_catalog().signals[signal], NOW - ago, None);
        prop_assert!(model.score(&g, NOW).total >= before - 1e-9);
        let mut h = f.clone();
        let current = h.predicted_close_probability.unwrap_or(h.stage.win_probability);
        h.predicted_close_probability = Some(current.max(p));
        prop_assert!(model.score(&h, NOW).total >= before - 1e-9);
    }

    #[test]
    fn decay_halves_at_the_half_life(half_life in 0.01f64..1000.0, elapsed in 0.0f64..1e8) {
        let h = half_life * 86_400.0;
        let at = decay_factor(elapsed, half_life);
        let later = decay_factor(elapsed + h, half_life);
        if at > 1e-290 {
            prop_assert!((later / at - 0.5).abs() < 1e-12, "{later} / {at}");
        }
    }

    #[test]
    fn incremental_and_from_scratch_engagement_agree(acts in arb_activities(), later in 0i64..100 * DAY) {
        let catalog = default_catalog();
        let activities: Vec<Activity> = acts
            .iter()
            .map(|(s, ago, amount)| Activity {
                signal: catalog.signals[*s].key.clone(),
                occurred_at: NOW - ago,
                amount: *amount,
            })
            .collect();
        let mut incremental = ActivityState::new();
        for a in &activities {
            let def = &catalog.signals[catalog.signal_index(&a.signal).unwrap()];
            incremental.record(def, a.occurred_at, a.amount);
        }
        let scratch = ActivityState::from_activities(&catalog, &activities);
        let now = NOW + later;
        for s in &catalog.signals {
            let a = incremental.decayed_count(&s.key, now);
            let b = scratch.decayed_count(&s.key, now);
            prop_assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{}: {a} vs {b}", s.key);
            // And both equal the closed form over the history.
            let direct: f64 = activities
                .iter()
                .filter(|x| x.signal == s.key)
                .map(|x| 0.5f64.powf((now - x.occurred_at) as f64 / (s.half_life_days * 86_400.0)))
                .sum();
            prop_assert!((a - direct).abs() <= 1e-9 * direct.max(1.0), "{}: {a} vs {direct}", s.key);
        }
        prop_assert_eq!(incremental.last_inbound_at, scratch.last_inbound_at);
        prop_assert_eq!(incremental.last_outbound_at, scratch.last_outbound_at);
        prop_assert_eq!(&incremental.inbound_days, &scratch.inbound_days);
        let model = general();
        let lead = |activity| LeadFacts { activity, created_at: NOW - 300 * DAY, ..LeadFacts::default() };
        let x = model.score(&lead(incremental), now);
        let y = model.score(&lead(scratch), now);
        prop_assert!((x.total - y.total).abs() < 1e-9);
        prop_assert_eq!(x.tier, y.tier);
    }

    #[test]
    fn an_urgent_signal_inside_its_window_always_yields_the_top_tier(
        f in arb_lead(), urgent in 6usize..10, ago in 0i64..7 * DAY
    ) {
        let mut g = f.clone();
        g.activity.record(&default_catalog().signals[urgent], NOW - ago, None);
        let card = general().score(&g, NOW);
        prop_assert_eq!(card.tier.as_str(), "A");
        prop_assert!(card.has_flag(LeadFlag::Urgent));
    }

    #[test]
    fn the_batch_path_agrees_with_scoring_one_lead_at_a_time(leads in prop::collection::vec(arb_lead(), 1..40)) {
        let model = general();
        let batch = LeadBatch::from_facts(&model, &leads, NOW);
        let mut out = Vec::new();
        model.score_batch(&batch, &mut out);
        for (f, s) in leads.iter().zip(&out) {
            let card = model.score(f, NOW);
            prop_assert_eq!(card.total, s.total);
            prop_assert_eq!(card.tier_rank, u32::from(s.tier_rank));
            prop_assert_eq!(card.flags, s.flags.to_vec());
            prop_assert_eq!(card.next_follow_up_at, s.next_follow_up_at);
            prop_assert_eq!(card.priority, s.priority);
        }
    }
}

#[test]
fn a_batch_larger_than_one_chunk_scores_every_lead() {
    let model = general();
    let catalog = default_catalog();
    let leads: Vec<LeadFacts> = (0..1000)
        .map(|i| {
            let mut f = LeadFacts {
                created_at: NOW - 50 * DAY,
                ..LeadFacts::default()
            };
            f.attributes.insert(
                "budget".into(),
                AttributeValue::Number(f64::from(i % 5 + 1)),
            );
            if i % 7 == 0 {
                f.activity.record(&catalog.signals[6], NOW - DAY, None);
            }
            f
        })
        .collect();
    let batch = LeadBatch::from_facts(&model, &leads, NOW);
    let mut out = Vec::new();
    model.score_batch(&batch, &mut out);
    assert_eq!(out.len(), 1000);
    for (i, (f, s)) in leads.iter().zip(&out).enumerate() {
        assert_eq!(model.score_summary(f, NOW), *s, "lead {i}");
    }
    let mut explanation = scoring::BatchExplanation::default();
    let mut again = Vec::new();
    model.explain_batch(&batch, &mut again, &mut explanation);
    assert_eq!(again, out);
    let card = model.scorecard(&batch, &explanation, 700, out[700]);
    assert_eq!(card, model.score(&leads[700], NOW));
}

#[cfg(feature = "parallel")]
#[test]
fn parallel_batch_scoring_agrees_with_one_core() {
    let model = general();
    let catalog = default_catalog();
    let leads: Vec<LeadFacts> = (0..40_000)
        .map(|i| {
            let mut f = LeadFacts {
                created_at: NOW - 50 * DAY,
                ..LeadFacts::default()
            };
            f.attributes.insert(
                "budget".into(),
                AttributeValue::Number(f64::from(i % 5 + 1)),
            );
            f.activity.record(
                &catalog.signals[(i % 17) as usize],
                NOW - i64::from(i % 30) * DAY,
                None,
            );
            f
        })
        .collect();
    let batch = LeadBatch::from_facts(&model, &leads, NOW);
    let (mut one, mut many) = (Vec::new(), Vec::new());
    model.score_batch(&batch, &mut one);
    model.score_batch_parallel(&batch, &mut many);
    assert_eq!(one, many);
}
