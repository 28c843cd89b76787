//! The close-probability predictor on real lead data, beside scikit-learn's
//! figures on the same file:
//!
//! ```text
//! cargo run --release -p scoring --example real_data -- ../shared/data/bank_leads.csv
//! ```
//!
//! The CSV has an `id`, an `outcome` (`won` | `lost`) and feature columns
//! named by kind: `cat_*` categories, `num_*` numbers, `count_*` counts
//! (empty = missing); rows are in time order. Prints ROC AUC and Brier score
//! for a stratified 5-fold cross-validation (folds drawn at random with a
//! fixed seed) and for training on the first 80% of rows and testing on the
//! last 20%, for the boosted predictor and for the version 1 logistic
//! regression, and how long each training took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Instant;

use scoring::evaluate::{brier_score, roc_auc};
use scoring::predictor::{Family, FeatureSpace, Predictor, TrainOptions};
use scoring::{AttributeValue, FieldDef, FieldType, LeadFacts};

struct Data {
    fields: Vec<FieldDef>,
    facts: Vec<LeadFacts>,
    won: Vec<bool>,
}

fn load(path: &str) -> Data {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let records: Vec<Vec<&str>> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').collect())
        .collect();
    let outcome = header
        .iter()
        .position(|h| *h == "outcome")
        .expect("an outcome column");
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (j, name) in header.iter().enumerate() {
        let field_type = if name.starts_with("cat_") {
            FieldType::Category
        } else if name.starts_with("num_") || name.starts_with("count_") {
            FieldType::Number
        } else {
            continue;
        };
        let options: BTreeSet<String> = if field_type == FieldType::Category {
            records
                .iter()
                .filter_map(|r| r.get(j))
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string())
                .collect()
        } else {
            BTreeSet::new()
        };
        fields.push(FieldDef {
            key: name.to_string(),
            field_type,
            options: options.into_iter().collect(),
        });
        columns.push(j);
    }
    let mut facts = Vec::with_capacity(records.len());
    let mut won = Vec::with_capacity(records.len());
    for r in &records {
        let mut f = LeadFacts::default();
        for (field, &j) in fields.iter().zip(&columns) {
            let Some(v) = r.get(j).filter(|v| !v.is_empty()) else {
                continue;
            };
            let value = match field.field_type {
                FieldType::Category => AttributeValue::Text(v.to_string()),
                _ => match v.parse::<f64>() {
                    Ok(x) => AttributeValue::Number(x),
                    Err(_) => continue,
                },
            };
            f.attributes.insert(field.key.clone(), value);
        }
        facts.push(f);
        won.push(r.get(outcome) == Some(&"won"));
    }
    Data { fields, facts, won }
}

struct Scored {
    probabilities: Vec<f64>,
    won: Vec<bool>,
    train_s: f64,
}

/// Trains on `train` (indices, oldest first) and predicts `test`; with
/// `timed`, the row index is the close time.
fn run(
    data: &Data,
    space: &FeatureSpace,
    family: Family,
    train: &[usize],
    test: &[usize],
    timed: bool,
) -> Scored {
    let mut rows = Vec::new();
    for &i in train {
        space.encode_into(&data.facts[i], &mut rows);
    }
    let labels: Vec<bool> = train.iter().map(|&i| data.won[i]).collect();
    // The row index stands for the close time: the file is in time order.
    let closed_at: Vec<i64> = train.iter().map(|&i| i as i64).collect();
    let options = TrainOptions {
        family,
        ..TrainOptions::default()
    };
    let t = Instant::now();
    let model = if timed {
        Predictor::train_rows_at(space.clone(), &rows, &labels, &closed_at, options, 0)
    } else {
        Predictor::train_rows(space.clone(), &rows, &labels, options, 0)
    }
    .expect("trains");
    let train_s = t.elapsed().as_secs_f64();
    if family == Family::Boosted
        && let Some(v) = &model.metadata.validation
    {
        eprintln!(
            "    chose depth {} with {} trees, recency half-life {:?} rows, blend weights: trees {:.2}, naive Bayes {:.2}; held-out AUC {:.4}",
            v.depth,
            v.trees,
            v.recency_half_life.map(|h| h.round()),
            v.calibration_slope,
            v.naive_bayes_weight,
            v.auc.unwrap_or(f64::NAN)
        );
    }
    Scored {
        probabilities: test
            .iter()
            .map(|&i| model.predict(&data.facts[i]))
            .collect(),
        won: test.iter().map(|&i| data.won[i]).collect(),
        train_s,
    }
}

/// SplitMix64, for the fold assignment.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data/bank_leads.csv".to_string());
    let data = load(&path);
    let n = data.won.len();
    let won = data.won.iter().filter(|w| **w).count();
    println!(
        "{path}: {n} closed leads, {won} won ({:.1}%), {} fields",
        100.0 * won as f64 / n as f64,
        data.fields.len()
    );
    let boosted_space = FeatureSpace::new(&data.fields, &[]);
    let linear_space = FeatureSpace::one_hot(&data.fields, &[]);

    // Stratified 5-fold: won and lost leads each dealt round the folds in
    // a shuffled order.
    let mut fold = vec![0usize; n];
    let (mut k_won, mut k_lost) = (0usize, 0usize);
    for i in shuffled(n, 2024) {
        let k = if data.won[i] { &mut k_won } else { &mut k_lost };
        fold[i] = *k % 5;
        *k += 1;
    }
    let cut = n * 4 / 5;
    let first: Vec<usize> = (0..cut).collect();
    let last: Vec<usize> = (cut..n).collect();

    let mut results = Vec::new();
    for (name, family, space) in [
        ("boosted predictor", Family::Boosted, &boosted_space),
        ("logistic regression (v1)", Family::Linear, &linear_space),
    ] {
        eprintln!("{name}:");
        let (mut probs, mut labels, mut train_s) = (Vec::new(), Vec::new(), 0.0);
        let mut fold_auc = Vec::new();
        for k in 0..5 {
            let train: Vec<usize> = (0..n).filter(|&i| fold[i] != k).collect();
            let test: Vec<usize> = (0..n).filter(|&i| fold[i] == k).collect();
            let s = run(&data, space, family, &train, &test, false);
            fold_auc.push(roc_auc(&s.probabilities, &s.won).unwrap_or(f64::NAN));
            probs.extend(s.probabilities);
            labels.extend(s.won);
            train_s += s.train_s;
        }
        let cv_auc = fold_auc.iter().sum::<f64>() / 5.0;
        let cv_brier = brier_score(&probs, &labels).unwrap_or(f64::NAN);
        let s = run(&data, space, family, &first, &last, true);
        let time_auc = roc_auc(&s.probabilities, &s.won).unwrap_or(f64::NAN);
        let time_brier = brier_score(&s.probabilities, &s.won).unwrap_or(f64::NAN);
        results.push((
            name,
            cv_auc,
            cv_brier,
            time_auc,
            time_brier,
            train_s / 5.0,
            s.train_s,
        ));
    }

    println!();
    println!(
        "{:<34} {:>11} {:>11} {:>11} {:>11}",
        "", "5-fold AUC", "5-fold Brier", "time AUC", "time Brier"
    );
    for (name, cv_auc, cv_brier, time_auc, time_brier, _, _) in &results {
        println!("{name:<34} {cv_auc:>11.4} {cv_brier:>11.4} {time_auc:>11.4} {time_brier:>11.4}");
    }
    println!("reference (scikit-learn, from issue 20):");
    for (name, cv, time) in [
        ("naive Bayes (Laplace)", 0.752, 0.722),
        ("logistic regression", 0.761, 0.700),
        ("histogram gradient boosting", 0.774, 0.647),
    ] {
        println!(
            "  {name:<32} {cv:>11.3} {:>11} {time:>11.3} {:>11}",
            "-", "-"
        );
    }
    println!(
        "targets: 5-fold AUC >= 0.774, time AUC >= 0.722, Brier no worse than logistic regression's"
    );
    println!();
    for (name, _, _, _, _, cv_s, time_s) in &results {
        println!(
            "training {name}: {cv_s:.2} s per fold (33k leads), {time_s:.2} s on the first 80%"
        );
    }
}
