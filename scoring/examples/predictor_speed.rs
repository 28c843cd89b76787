//! How fast the close-probability predictor trains and scores, on one core:
//!
//! ```text
//! cargo run --release -p scoring --example predictor_speed
//! ```
//!
//! Trains on 100,000 closed leads with 20 fields (10 numbers with missing
//! values and heavy tails, 10 categories of up to 200 options, a drifting
//! won rate) and scores single leads from their facts. Prints the median
//! of several runs, one `name=value` per line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use scoring::predictor::{FeatureSpace, Predictor, TrainOptions};
use scoring::{AttributeValue, FieldDef, FieldType, LeadFacts};

const ROWS: usize = 100_000;

/// SplitMix64.
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
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// CPU seconds this thread has run (Linux; 0 elsewhere): on a busy
/// machine the wall clock counts other processes' time too.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/thread-self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces), closed by ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |k: usize| {
        fields
            .get(k)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state.
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let mut rng = Rng(7);
    let mut fields = Vec::new();
    for j in 0..10 {
        fields.push(FieldDef {
            key: format!("n{j}"),
            field_type: FieldType::Number,
            options: Vec::new(),
        });
    }
    for j in 0..10 {
        let options = (0..if j < 5 { 8 } else { 200 })
            .map(|k| format!("Option {k}"))
            .collect();
        fields.push(FieldDef {
            key: format!("c{j}"),
            field_type: FieldType::Category,
            options,
        });
    }
    let space = FeatureSpace::new(&fields, &[]);
    let mut facts = Vec::with_capacity(ROWS);
    let mut labels = Vec::with_capacity(ROWS);
    for i in 0..ROWS {
        let mut f = LeadFacts::default();
        let drift = i as f64 / ROWS as f64;
        let mut z = -2.0 + drift;
        for j in 0..10 {
            if rng.unit() < 0.1 {
                continue;
            }
            // Log-normal: a heavy tail.
            let x = (rng.unit() * 4.0 - 2.0).exp() * 100.0;
            z += (j as f64 - 5.0) / 10.0 * (x / 100.0).ln();
            f.attributes
                .insert(format!("n{j}"), AttributeValue::Number(x));
        }
        for j in 0..10 {
            let n_options = if j < 5 { 8 } else { 200 };
            // Skewed: a few common options, many rare ones.
            let k = ((rng.unit().powi(3)) * n_options as f64) as usize;
            z += if k.is_multiple_of(3) { 0.3 } else { -0.1 };
            f.attributes
                .insert(format!("c{j}"), AttributeValue::Text(format!("Option {k}")));
        }
        labels.push(rng.unit() < 1.0 / (1.0 + (-z).exp()));
        facts.push(f);
    }
    let mut rows = Vec::with_capacity(ROWS * space.len());
    for f in &facts {
        space.encode_into(f, &mut rows);
    }
    let closed_at: Vec<i64> = (0..ROWS as i64).map(|i| 1_600_000_000 + i * 600).collect();

    let mut times = Vec::new();
    let mut cpu = Vec::new();
    let mut model = None;
    for _ in 0..3 {
        let c = cpu_seconds();
        let t = Instant::now();
        let m = Predictor::train_rows_at(
            space.clone(),
            &rows,
            &labels,
            &closed_at,
            TrainOptions::default(),
            0,
        )
        .unwrap();
        times.push(t.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c);
        model = Some(m);
    }
    let model = model.unwrap();
    let train_s = median(times);
    let train_cpu_s = median(cpu);

    let mut times = Vec::new();
    let sample = 20_000;
    for _ in 0..5 {
        let t = Instant::now();
        let mut sum = 0.0;
        for f in facts.iter().take(sample) {
            sum += model.predict(black_box(f));
        }
        black_box(sum);
        times.push(t.elapsed().as_secs_f64() / sample as f64);
    }
    let predict_us = median(times) * 1e6;

    let mut times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        for f in facts.iter().take(2_000) {
            black_box(model.explain(black_box(f), 3));
        }
        times.push(t.elapsed().as_secs_f64() / 2_000.0);
    }
    let explain_us = median(times) * 1e6;

    let v = model.metadata.validation.clone().unwrap_or_default();
    println!("rows={ROWS}");
    println!("fields={}", fields.len());
    println!("trees={}", model.metadata.iterations);
    println!("depth={}", v.depth);
    println!("held_out_auc={:.4}", v.auc.unwrap_or(f64::NAN));
    println!("train_100k_s={train_s:.3}");
    println!("train_100k_cpu_s={train_cpu_s:.2}");
    println!("predict_one_lead_us={predict_us:.2}");
    println!("explain_one_lead_us={explain_us:.2}");
}
