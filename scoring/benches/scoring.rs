//! `cargo bench -p scoring`: batch scoring, full explanations, one scorecard,
//! recording an activity and training the predictor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scoring::predictor::{FeatureSpace, Predictor, TrainOptions};
use scoring::templates::{self, default_catalog};
use scoring::{AttributeValue, BatchExplanation, LeadBatch, LeadFacts, StageFacts};

const NOW: i64 = 1_750_000_000;
const DAY: i64 = 86_400;
const LEADS: usize = 100_000;

fn leads(n: usize) -> Vec<LeadFacts> {
    let catalog = default_catalog();
    (0..n)
        .map(|i| {
            let mut f = LeadFacts {
                created_at: NOW - 100 * DAY,
                stage: StageFacts {
                    win_probability: (i % 10) as f64 / 10.0,
                    entered_at: NOW - (i % 40) as i64 * DAY,
                    rotting_days: Some(30),
                    ..StageFacts::default()
                },
                ..LeadFacts::default()
            };
            for (k, key) in [
                "budget",
                "timeline",
                "authority",
                "need",
                "industry_position",
                "decision_chain",
            ]
            .iter()
            .enumerate()
            {
                let r = ((i * 7 + k * 3) % 5 + 1) as f64;
                f.attributes
                    .insert((*key).into(), AttributeValue::Number(r));
            }
            for (s, def) in catalog.signals.iter().enumerate().take(10) {
                let ago = ((i * 13 + s * 17) % 90) as i64 * DAY;
                f.activity.record(def, NOW - ago, None);
            }
            f
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let catalog = default_catalog();
    let model = templates::general().compile(&catalog).unwrap();
    let facts = leads(LEADS);
    let batch = LeadBatch::from_facts(&model, &facts, NOW);

    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Elements(LEADS as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    let mut out = Vec::new();
    group.bench_function("score_100k", |b| {
        b.iter(|| model.score_batch(black_box(&batch), &mut out))
    });
    let mut explanation = BatchExplanation::default();
    group.bench_function("explain_100k", |b| {
        b.iter(|| model.explain_batch(black_box(&batch), &mut out, &mut explanation))
    });
    group.bench_function("build_columns_100k", |b| {
        b.iter(|| LeadBatch::from_facts(&model, black_box(&facts), NOW))
    });
    group.finish();

    let mut group = c.benchmark_group("one_lead");
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("scorecard", |b| {
        b.iter(|| model.score(black_box(&facts[7]), NOW))
    });
    let mut state = facts[7].activity.clone();
    let signal = &catalog.signals[4];
    group.bench_function("record_activity", |b| {
        b.iter(|| state.record(black_box(signal), NOW, None))
    });
    group.finish();

    let space = FeatureSpace::from_catalog(&catalog);
    let rows: Vec<f64> = facts
        .iter()
        .take(10_000)
        .flat_map(|f| space.encode(f))
        .collect();
    let labels: Vec<bool> = (0..10_000).map(|i| (i * 7919) % 10 < 3).collect();
    let mut group = c.benchmark_group("predictor");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.bench_function("train_10k", |b| {
        b.iter(|| {
            Predictor::train_rows(
                space.clone(),
                black_box(&rows),
                &labels,
                TrainOptions::default(),
                NOW,
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
