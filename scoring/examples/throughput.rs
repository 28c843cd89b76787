//! Prints machine-readable throughput figures, one `name=value` per line:
//!
//! ```text
//! cargo run --release -p scoring --example throughput
//! ```
//!
//! Batch scoring of 1,000,000 leads with 8 dimensions and 10 signal types each,
//! on one core: score/tier/flags/follow-up only, then with the full
//! explanation; and training the predictor on 100,000 closed leads with 20
//! features. Each figure is the median of several runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use scoring::templates::{self, default_catalog};
use scoring::{
    BatchExplanation, Catalog, LeadBatch, LeadFacts, ModelConfig, StageFacts, StageKind,
};
use serde_json::json;

const LEADS: usize = 1_000_000;
const NOW: i64 = 1_750_000_000;
const DAY: i64 = 86_400;

/// SplitMix64: a tiny deterministic generator, enough for synthetic leads.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The default catalog cut to 10 signal types (8 inbound incl. 2 urgent, 2 outbound).
fn catalog() -> Catalog {
    let mut c = default_catalog();
    let keep = [
        "website_visit",
        "deep_page_view",
        "trial_activity",
        "inbound_inquiry",
        "meeting_request",
        "urgent_quote_request",
        "purchase",
        "no_show",
        "call",
        "email",
    ];
    c.signals.retain(|s| keep.contains(&s.key.as_str()));
    c
}

/// The general template plus BANT and STAGE: 8 dimensions, 5 overrides.
fn model() -> ModelConfig {
    let mut v = templates::general().to_json();
    let dims = v["dimensions"].as_array_mut().unwrap();
    for d in dims.iter_mut() {
        let w = d["weight"].as_f64().unwrap();
        d["weight"] = json!(w * 0.8);
    }
    dims.push(
        json!({"key": "bant", "label": "BANT", "kind": "BANT", "weight": 10.0,
                     "params": {"criteria": templates::bant_criteria()}}),
    );
    dims.push(
        json!({"key": "stage", "label": "Stage", "kind": "STAGE", "weight": 10.0, "params": {}}),
    );
    ModelConfig::parse(&v, &catalog()).unwrap()
}

fn lead(rng: &mut Rng, catalog: &Catalog) -> LeadFacts {
    let mut f = LeadFacts {
        created_at: NOW - 200 * DAY,
        stage: StageFacts {
            position: rng.below(6) as u32,
            stage_count: 8,
            win_probability: rng.unit(),
            kind: StageKind::Open,
            entered_at: NOW - rng.below(60) as i64 * DAY,
            rotting_days: Some(30),
            ..StageFacts::default()
        },
        predicted_close_probability: Some(rng.unit()),
        ..LeadFacts::default()
    };
    for key in [
        "budget",
        "timeline",
        "authority",
        "need",
        "industry_position",
        "decision_chain",
    ] {
        f.attributes.insert(
            key.into(),
            (1 + rng.below(5))
                .to_string()
                .parse::<f64>()
                .unwrap()
                .into(),
        );
    }
    for s in &catalog.signals {
        for _ in 0..1 + rng.below(3) {
            let t = NOW - (rng.unit() * 120.0 * DAY as f64) as i64;
            f.activity.record(s, t, None);
        }
    }
    f
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median seconds to train on 100,000 closed leads with 20 numeric features
/// drawn from a logistic model.
fn train_100k(rng: &mut Rng) -> f64 {
    use scoring::predictor::{Feature, FeatureSpace, Predictor, TrainOptions};
    const ROWS: usize = 100_000;
    const FEATURES: usize = 20;
    let space = FeatureSpace {
        features: (0..FEATURES)
            .map(|i| Feature::Number {
                field: format!("f{i}"),
            })
            .collect(),
    };
    let mut rows = Vec::with_capacity(ROWS * FEATURES);
    let mut labels = Vec::with_capacity(ROWS);
    for _ in 0..ROWS {
        let mut z = -1.0;
        for j in 0..FEATURES {
            let x = rng.unit() * 4.0 - 2.0;
            z += x * (j as f64 - 10.0) / 20.0;
            rows.push(x);
        }
        labels.push(rng.unit() < 1.0 / (1.0 + (-z).exp()));
    }
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let p = Predictor::train_rows(space.clone(), &rows, &labels, TrainOptions::default(), NOW)
            .unwrap();
        times.push(t.elapsed().as_secs_f64());
        assert!(p.metadata.rows == ROWS);
    }
    median(times)
}

fn main() {
    let catalog = catalog();
    let compiled = model().compile(&catalog).unwrap();
    let mut rng = Rng(42);

    // Facts are built in slices so a million LeadFacts never sit in memory at once.
    let started = Instant::now();
    let mut batch = LeadBatch::with_capacity(&compiled, NOW, LEADS);
    let mut facts = Vec::with_capacity(10_000);
    while batch.len() < LEADS {
        facts.clear();
        facts.extend((0..10_000).map(|_| lead(&mut rng, &catalog)));
        for f in &facts {
            batch.push(&compiled, f);
        }
    }
    let build_s = started.elapsed().as_secs_f64();

    let mut out = Vec::with_capacity(LEADS);
    let mut times = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        compiled.score_batch(&batch, &mut out);
        times.push(t.elapsed().as_secs_f64());
    }
    let score_s = median(times);
    let checksum: i64 = out.iter().map(|s| i64::from(s.tier_rank)).sum();

    let mut explanation = BatchExplanation::default();
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        compiled.explain_batch(&batch, &mut out, &mut explanation);
        times.push(t.elapsed().as_secs_f64());
    }
    let explain_s = median(times);

    // Full scorecards with strings, as the server stores them, for a sample.
    let sample = 100_000;
    let t = Instant::now();
    let mut bytes = 0usize;
    for (i, s) in out.iter().take(sample).enumerate() {
        let card = compiled.scorecard(&batch, &explanation, i, *s);
        bytes += card.contributions.len() + card.overrides.len();
    }
    let scorecard_s = t.elapsed().as_secs_f64();

    let train_s = train_100k(&mut rng);

    println!("leads={LEADS}");
    println!("dimensions={}", compiled.config().dimensions.len());
    println!("signal_types={}", catalog.signals.len());
    println!("build_columns_leads_per_s={:.0}", LEADS as f64 / build_s);
    println!("score_leads_per_s={:.0}", LEADS as f64 / score_s);
    println!("explain_leads_per_s={:.0}", LEADS as f64 / explain_s);
    println!("scorecard_structs_per_s={:.0}", sample as f64 / scorecard_s);
    println!("scorecard_rows={bytes}");
    println!("train_100k_s={train_s:.3}");
    println!("checksum={checksum}");
}
