//! Why the version 1 predictor (an L2 logistic regression over one-hot and
//! standardised features) ranks worse than scikit-learn's logistic
//! regression on mostly categorical lead data (issue 20, item 2), by
//! ablation on synthetic leads shaped like the held-back set:
//!
//! ```text
//! cargo run --release -p scoring --example categorical_ablation
//! ```
//!
//! A fixed-seed generator draws 9,000 time-ordered leads, about 38% won:
//! a `lead_source` of 30 levels (Zipf frequencies, rare levels with strong
//! effects, the frequent ones also spelled `google`, `Google ` and
//! `GOOGLE`), a `specialisation` of 20 levels where `Select` (and an
//! empty value) means "not filled in", a `country` of 40 mostly rare
//! levels, an `occupation` and a `last_activity`, and three heavy-tailed
//! numbers: `time_on_site` (a quarter zeros, lognormal otherwise), and
//! `visits` and `page_views`, missing together for 30% of leads, the
//! missingness itself lowering the odds. One interaction: working
//! professionals who spent long on the site close more still.
//!
//! The true effect of `time_on_site` is set twice: linear in the seconds
//! (saturating at 2,000; the shape of "time spent on the website" in
//! public lead-scoring data) and linear in `ln(1 + seconds)`; the other
//! numbers act through their logarithm in both worlds.
//!
//! Each row of the table changes one thing in front of the version 1
//! model (`Family::Linear` over [`FeatureSpace::one_hot`], trained through
//! the public API on rows encoded here): spellings normalised, the
//! placeholder read as missing, rare options pooled, the missing
//! indicators removed (version 1 has them), the numbers fed raw instead
//! of as `sign(x)·ln(1+|x|)` (version 1 takes the logarithm), its L2
//! chosen (0.1, 1, 10 or 100) by AUC on the most recent fifth of the
//! training leads. Reference logistic regressions written here imitate
//! scikit-learn's `LogisticRegression(C=1)` behind a `ColumnTransformer`:
//! the numbers mean-imputed (no indicator) and standardised, the
//! categories one-hot (a missing value its own level); with the one-hot
//! columns as 0/1, standardised too, and with the numbers taken as
//! version 1 takes them, `sign(x)·ln(1+|x|)`. Last, the current (boosted) predictor on the raw
//! facts. ROC AUC on the last 20% of leads after training on the first
//! 80%, and the mean over a stratified 5-fold cross-validation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Instant;

use scoring::evaluate::roc_auc;
use scoring::predictor::{
    Family, Feature, FeatureSpace, Predictor, TrainOptions, normalise_option,
};
use scoring::{AttributeValue, FieldDef, FieldType, LeadFacts};

const N: usize = 9_000;
const SEED: u64 = 20;

/// SplitMix64, as in `scoring/tests/predictor.rs`.
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
    fn normal(&mut self) -> f64 {
        (-2.0 * self.unit().ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// An index drawn with probability proportional to `weights`.
    fn pick(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut u = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                return i;
            }
            u -= w;
        }
        weights.len() - 1
    }
}

/// A category: its levels, their frequencies and true effects (log-odds).
struct Category {
    key: &'static str,
    levels: Vec<String>,
    weights: Vec<f64>,
    effects: Vec<f64>,
    /// Share of leads with no value at all, and its effect.
    absent: f64,
    absent_effect: f64,
}

/// Zipf weights `1/(k+1)^s` for `n` levels.
fn zipf(n: usize, s: f64) -> Vec<f64> {
    (0..n).map(|k| 1.0 / ((k + 1) as f64).powf(s)).collect()
}

fn categories(rng: &mut Rng) -> Vec<Category> {
    // lead_source: named frequent levels, then a tail of rare ones, some
    // with strong effects (a partner site that nearly always closes, a
    // purchased list that never does).
    let mut names: Vec<String> = [
        "Google",
        "Direct Traffic",
        "Olark Chat",
        "Organic Search",
        "Reference",
        "Welingak Website",
        "Referral Sites",
        "Facebook",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.extend((names.len()..30).map(|k| format!("Source {k}")));
    let mut effects: Vec<f64> = vec![0.2, -0.3, -0.9, 0.0, 1.8, 2.6, -0.5, -0.4];
    effects.extend((effects.len()..30).map(|k| match k % 6 {
        0 => 2.2,
        3 => -2.0,
        _ => 0.6 * rng.normal(),
    }));
    let lead_source = Category {
        key: "lead_source",
        levels: names,
        weights: zipf(30, 1.3),
        effects,
        absent: 0.005,
        absent_effect: 0.0,
    };

    // specialisation: "Select" is the form's placeholder, a lead who did
    // not say (as is an empty value); both close less.
    let mut levels = vec!["Select".to_string()];
    levels.extend((1..20).map(|k| format!("Specialisation {k}")));
    let mut weights = vec![0.25];
    weights.extend(zipf(19, 0.8).iter().map(|w| w * 0.35));
    let mut effects = vec![-0.8];
    effects.extend((1..20).map(|_| 0.35 * rng.normal()));
    let specialisation = Category {
        key: "specialisation",
        levels,
        weights,
        effects,
        absent: 0.15,
        absent_effect: -0.8,
    };

    // country: one dominant level, 39 rare ones, little signal.
    let mut levels = vec!["India".to_string()];
    levels.extend((1..40).map(|k| format!("Country {k}")));
    let mut weights = vec![40.0];
    weights.extend(zipf(39, 1.0));
    let effects = (0..40).map(|_| 0.3 * rng.normal()).collect();
    let country = Category {
        key: "country",
        levels,
        weights,
        effects,
        absent: 0.25,
        absent_effect: 0.1,
    };

    let occupation = Category {
        key: "occupation",
        levels: [
            "Unemployed",
            "Working Professional",
            "Student",
            "Other",
            "Housewife",
            "Businessman",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        weights: vec![60.0, 8.0, 2.5, 0.3, 0.1, 0.1],
        effects: vec![0.0, 2.2, -0.2, 0.5, 2.5, 0.8],
        absent: 0.29,
        absent_effect: -1.0,
    };

    let mut levels = vec![
        "Email Opened".to_string(),
        "SMS Sent".to_string(),
        "Olark Chat Conversation".to_string(),
        "Page Visited on Website".to_string(),
    ];
    levels.extend((4..15).map(|k| format!("Activity {k}")));
    let mut effects = vec![0.2, 1.3, -1.0, -0.2];
    effects.extend((4..15).map(|_| 0.7 * rng.normal()));
    let last_activity = Category {
        key: "last_activity",
        levels,
        weights: zipf(15, 1.2),
        effects,
        absent: 0.01,
        absent_effect: 0.0,
    };
    vec![
        lead_source,
        specialisation,
        country,
        occupation,
        last_activity,
    ]
}

/// How `time_on_site` acts on the log-odds in the world drawn.
#[derive(Clone, Copy)]
enum TimeEffect {
    Seconds,
    LogSeconds,
}

struct Data {
    fields: Vec<FieldDef>,
    /// As entered: spelling variants, placeholders.
    facts: Vec<LeadFacts>,
    won: Vec<bool>,
}

fn generate(world: TimeEffect) -> Data {
    let mut rng = Rng(SEED);
    let cats = categories(&mut rng);
    let mut facts = Vec::with_capacity(N);
    let mut z = Vec::with_capacity(N);
    for i in 0..N {
        let mut f = LeadFacts::default();
        let mut logit = 0.0;
        let mut occupation = None;
        for c in &cats {
            if rng.unit() < c.absent {
                logit += c.absent_effect;
                continue;
            }
            let k = rng.pick(&c.weights);
            logit += c.effects[k];
            let mut text = c.levels[k].clone();
            // Spelling variants of the frequent sources: one lead in five
            // typed in lower case, with a trailing space or in capitals.
            if c.key == "lead_source" && k < 4 {
                text = match rng.below(15) {
                    0 => text.to_lowercase(),
                    1 => format!("{text} "),
                    2 => text.to_uppercase(),
                    _ => text,
                };
            }
            // The placeholder as the form sent it, or cleared.
            if c.key == "specialisation" && k == 0 && rng.below(5) == 0 {
                text = "select".into();
            }
            if c.key == "occupation" {
                occupation = Some(k);
            }
            f.attributes
                .insert(c.key.into(), AttributeValue::Text(text));
        }
        // time_on_site: a quarter never visited; the rest lognormal.
        let seconds = if rng.below(4) == 0 {
            0.0
        } else {
            (6.0 + 0.9 * rng.normal()).exp().round()
        };
        logit += match world {
            TimeEffect::Seconds => 2.2 * seconds.min(2_000.0) / 1_000.0,
            TimeEffect::LogSeconds => 0.45 * seconds.ln_1p(),
        };
        if occupation == Some(1) && seconds > 800.0 {
            logit += 1.0;
        }
        f.attributes
            .insert("time_on_site".into(), AttributeValue::Number(seconds));
        // visits and page views: missing together for 30% of leads (a
        // tracking gap on a channel that closes less).
        if rng.unit() < 0.3 {
            logit -= 0.7;
        } else {
            let visits = (1.0 + 0.9 * rng.normal()).exp().round();
            let views = (visits * (0.5 + 0.4 * rng.normal()).exp()).round();
            logit += 0.35 * visits.ln_1p() - 0.15 * views.ln_1p();
            f.attributes
                .insert("visits".into(), AttributeValue::Number(visits));
            f.attributes
                .insert("page_views".into(), AttributeValue::Number(views));
        }
        // A little drift: later leads close a little more.
        logit += 0.4 * i as f64 / N as f64;
        facts.push(f);
        z.push(logit);
    }
    // The intercept that makes 38% won in expectation.
    let rate = |b: f64| {
        z.iter()
            .map(|z| 1.0 / (1.0 + (-(z + b)).exp()))
            .sum::<f64>()
            / N as f64
    };
    let (mut lo, mut hi) = (-20.0, 20.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if rate(mid) < 0.38 { lo = mid } else { hi = mid }
    }
    let won = z
        .iter()
        .map(|z| rng.unit() < 1.0 / (1.0 + (-(z + lo)).exp()))
        .collect();
    let mut fields: Vec<FieldDef> = cats
        .iter()
        .map(|c| {
            let options: BTreeSet<String> = facts
                .iter()
                .filter_map(|f: &LeadFacts| f.attribute(c.key).and_then(|v| v.as_text()))
                .map(str::to_string)
                .collect();
            FieldDef {
                key: c.key.into(),
                field_type: FieldType::Category,
                options: options.into_iter().collect(),
            }
        })
        .collect();
    for key in ["time_on_site", "visits", "page_views"] {
        fields.push(FieldDef {
            key: key.into(),
            field_type: FieldType::Number,
            options: Vec::new(),
        });
    }
    Data { fields, facts, won }
}

/// One change in front of the version 1 model.
#[derive(Clone, Copy, Default)]
struct Prep {
    normalise: bool,
    placeholder_missing: bool,
    /// Pool options taken by fewer training rows than this.
    pool_below: usize,
    no_missing_indicator: bool,
    raw_numbers: bool,
    tune_l2: bool,
}

/// The facts as the prep sees them: spelling normalised, placeholder gone.
fn prepared(facts: &LeadFacts, prep: Prep) -> LeadFacts {
    let mut f = facts.clone();
    for v in f.attributes.values_mut() {
        if let AttributeValue::Text(t) = v
            && prep.normalise
        {
            *t = normalise_option(t).into_owned();
        }
    }
    if prep.placeholder_missing {
        f.attributes.retain(
            |_, v| !matches!(v, AttributeValue::Text(t) if normalise_option(t) == "select"),
        );
    }
    f
}

fn prepared_fields(fields: &[FieldDef], prep: Prep) -> Vec<FieldDef> {
    fields
        .iter()
        .map(|f| {
            let options: BTreeSet<String> = f
                .options
                .iter()
                .filter(|o| !(prep.placeholder_missing && normalise_option(o) == "select"))
                .map(|o| {
                    if prep.normalise {
                        normalise_option(o).into_owned()
                    } else {
                        o.clone()
                    }
                })
                .collect();
            FieldDef {
                options: options.into_iter().collect(),
                ..f.clone()
            }
        })
        .collect()
}

/// Rows of `space` for `idx`, numbers back on their raw scale if asked.
fn encode(space: &FeatureSpace, data: &Data, idx: &[usize], prep: Prep) -> Vec<f64> {
    let mut rows = Vec::with_capacity(idx.len() * space.len());
    for &i in idx {
        let start = rows.len();
        space.encode_into(&prepared(&data.facts[i], prep), &mut rows);
        if prep.raw_numbers {
            for (v, f) in rows[start..].iter_mut().zip(&space.features) {
                if matches!(f, Feature::Number { .. }) {
                    *v = v.signum() * v.abs().exp_m1();
                }
            }
        }
    }
    rows
}

fn linear(l2: f64) -> TrainOptions {
    TrainOptions {
        family: Family::Linear,
        l2,
        ..TrainOptions::default()
    }
}

/// The version 1 model behind `prep`: trained on `train`, scores for `test`.
fn version_1(data: &Data, prep: Prep, train: &[usize], test: &[usize]) -> Vec<f64> {
    let full = FeatureSpace::one_hot(&prepared_fields(&data.fields, prep), &[]);
    let rows = encode(&full, data, train, prep);
    let mut kept: Vec<usize> = if prep.pool_below > 0 {
        full.kept_columns(&rows, train.len(), usize::MAX, prep.pool_below)
    } else {
        (0..full.len()).collect()
    };
    if prep.no_missing_indicator {
        kept.retain(|&j| !matches!(full.features[j], Feature::Missing { .. }));
    }
    let space = full.select(&kept);
    let rows = full.project(&rows, &kept);
    let labels: Vec<bool> = train.iter().map(|&i| data.won[i]).collect();
    let l2 = if prep.tune_l2 {
        // The most recent fifth of the training leads judges each L2.
        let cut = train.len() * 4 / 5;
        let p = space.len();
        let mut best = (f64::NEG_INFINITY, 1.0);
        for l2 in [0.1, 1.0, 10.0, 100.0] {
            let model = Predictor::train_rows(
                space.clone(),
                &rows[..cut * p],
                &labels[..cut],
                linear(l2),
                0,
            )
            .expect("trains");
            let scores: Vec<f64> = rows[cut * p..]
                .chunks_exact(p)
                .map(|r| model.predict_row(r))
                .collect();
            let auc = roc_auc(&scores, &labels[cut..]).unwrap_or(0.0);
            if auc > best.0 {
                best = (auc, l2);
            }
        }
        best.1
    } else {
        1.0
    };
    let model =
        Predictor::train_rows(space.clone(), &rows, &labels, linear(l2), 0).expect("trains");
    let test_rows = full.project(&encode(&full, data, test, prep), &kept);
    test_rows
        .chunks_exact(space.len())
        .map(|r| model.predict_row(r))
        .collect()
}

/// The current predictor on the raw facts.
fn boosted(data: &Data, train: &[usize], test: &[usize], timed: bool) -> Vec<f64> {
    let space = FeatureSpace::new(&data.fields, &[]);
    let rows = encode(&space, data, train, Prep::default());
    let labels: Vec<bool> = train.iter().map(|&i| data.won[i]).collect();
    let closed_at: Vec<i64> = train.iter().map(|&i| i as i64).collect();
    let options = TrainOptions::default();
    let model = if timed {
        Predictor::train_rows_at(space, &rows, &labels, &closed_at, options, 0)
    } else {
        Predictor::train_rows(space, &rows, &labels, options, 0)
    }
    .expect("trains");
    test.iter()
        .map(|&i| model.predict(&data.facts[i]))
        .collect()
}

/// scikit-learn's pipeline, written out: numbers raw, mean-imputed and
/// standardised; categories one-hot over the training rows' values, a
/// missing value its own level (`standardise_one_hot`: those columns
/// standardised too; `ln_numbers`: the numbers as `sign(x)·ln(1+|x|)`, as
/// version 1 takes them); `LogisticRegression(C=1)`, the intercept unpenalised.
fn reference(
    data: &Data,
    standardise_one_hot: bool,
    ln_numbers: bool,
    train: &[usize],
    test: &[usize],
) -> Vec<f64> {
    let mut columns: Vec<(String, Option<String>)> = Vec::new();
    for f in &data.fields {
        match f.field_type {
            FieldType::Category => {
                let seen: BTreeSet<String> = train
                    .iter()
                    .map(|&i| text_of(&data.facts[i], &f.key))
                    .collect();
                columns.extend(seen.into_iter().map(|o| (f.key.clone(), Some(o))));
            }
            _ => columns.push((f.key.clone(), None)),
        }
    }
    let d = columns.len() + 1;
    let raw = |i: usize| -> Vec<f64> {
        let facts = &data.facts[i];
        let mut row = vec![1.0];
        row.extend(columns.iter().map(|(key, option)| {
            match option {
                Some(o) => f64::from(u8::from(text_of(facts, key) == *o)),
                None => facts
                    .attribute(key)
                    .and_then(|v| v.as_number())
                    .map_or(f64::NAN, |x| {
                        if ln_numbers {
                            x.signum() * x.abs().ln_1p()
                        } else {
                            x
                        }
                    }),
            }
        }));
        row
    };
    let train_x: Vec<Vec<f64>> = train.iter().map(|&i| raw(i)).collect();
    let (mut mean, mut sd) = (vec![0.0; d], vec![1.0; d]);
    for j in 1..d {
        if columns[j - 1].1.is_some() && !standardise_one_hot {
            continue;
        }
        let values: Vec<f64> = train_x
            .iter()
            .map(|r| r[j])
            .filter(|v| v.is_finite())
            .collect();
        let m = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let var =
            values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / values.len().max(1) as f64;
        mean[j] = m;
        sd[j] = if var > 1e-12 { var.sqrt() } else { 1.0 };
    }
    // One-hot columns are scaled but not centred, which keeps them sparse
    // and changes only the (unpenalised) intercept.
    let scaled = |mut row: Vec<f64>| -> Vec<f64> {
        for j in 1..d {
            let v = if row[j].is_finite() { row[j] } else { mean[j] };
            let centre = if columns[j - 1].1.is_some() {
                0.0
            } else {
                mean[j]
            };
            row[j] = (v - centre) / sd[j];
        }
        row
    };
    let x: Vec<Vec<f64>> = train_x.into_iter().map(scaled).collect();
    let y: Vec<bool> = train.iter().map(|&i| data.won[i]).collect();
    let beta = ridge_logistic(&x, &y, 1.0);
    test.iter()
        .map(|&i| scaled(raw(i)).iter().zip(&beta).map(|(a, b)| a * b).sum())
        .collect()
}

fn text_of(facts: &LeadFacts, key: &str) -> String {
    facts
        .attribute(key)
        .and_then(|v| v.as_text())
        .map_or_else(|| "(missing)".to_string(), str::to_string)
}

/// Newton's method on `Σ log-loss + l2/2 · Σ_{j≥1} β_j²` (column 0 the
/// intercept).
fn ridge_logistic(x: &[Vec<f64>], y: &[bool], l2: f64) -> Vec<f64> {
    let d = x.first().map_or(1, Vec::len);
    let mut beta = vec![0.0; d];
    // The non-zero entries of each row: one-hot rows are sparse.
    let sparse: Vec<Vec<(usize, f64)>> = x
        .iter()
        .map(|r| {
            r.iter()
                .copied()
                .enumerate()
                .filter(|(_, a)| *a != 0.0)
                .collect()
        })
        .collect();
    for _ in 0..30 {
        let mut g = vec![0.0; d];
        let mut h = vec![0.0; d * d];
        for (xi, &yi) in sparse.iter().zip(y) {
            let z: f64 = xi.iter().map(|(j, a)| a * beta[*j]).sum();
            let mu = 1.0 / (1.0 + (-z).exp());
            let r = mu - f64::from(u8::from(yi));
            let w = (mu * (1.0 - mu)).max(1e-10);
            for (n, &(j, a)) in xi.iter().enumerate() {
                g[j] += r * a;
                for &(k, b) in &xi[n..] {
                    h[j.min(k) * d + j.max(k)] += w * a * b;
                }
            }
        }
        for j in 1..d {
            g[j] += l2 * beta[j];
            h[j * d + j] += l2;
        }
        h[0] += 1e-9;
        for j in 0..d {
            for k in 0..j {
                h[j * d + k] = h[k * d + j];
            }
        }
        let step = solve(&mut h, &g, d);
        let moved = step.iter().fold(0.0f64, |m, s| m.max(s.abs()));
        for (b, s) in beta.iter_mut().zip(&step) {
            *b -= s;
        }
        if moved < 1e-8 {
            break;
        }
    }
    beta
}

/// Solves `a·x = b` for a symmetric positive definite `a` (Cholesky, in place).
fn solve(a: &mut [f64], b: &[f64], d: usize) -> Vec<f64> {
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        let diag = s.max(1e-12).sqrt();
        a[j * d + j] = diag;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / diag;
        }
    }
    let mut x = b.to_vec();
    for i in 0..d {
        for k in 0..i {
            x[i] -= a[i * d + k] * x[k];
        }
        x[i] /= a[i * d + i];
    }
    for i in (0..d).rev() {
        for k in i + 1..d {
            x[i] -= a[k * d + i] * x[k];
        }
        x[i] /= a[i * d + i];
    }
    x
}

/// SplitMix64-shuffled stratified folds, as in the `real_data` example.
fn folds(won: &[bool]) -> Vec<usize> {
    let mut rng = Rng(2024);
    let mut order: Vec<usize> = (0..won.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut fold = vec![0; won.len()];
    let (mut k_won, mut k_lost) = (0, 0);
    for i in order {
        let k = if won[i] { &mut k_won } else { &mut k_lost };
        fold[i] = *k % 5;
        *k += 1;
    }
    fold
}

#[derive(Clone, Copy)]
enum Model {
    V1(Prep),
    Reference {
        standardise_one_hot: bool,
        ln_numbers: bool,
    },
    Boosted,
}

fn scores(data: &Data, model: Model, train: &[usize], test: &[usize], timed: bool) -> Vec<f64> {
    match model {
        Model::V1(prep) => version_1(data, prep, train, test),
        Model::Reference {
            standardise_one_hot,
            ln_numbers,
        } => reference(data, standardise_one_hot, ln_numbers, train, test),
        Model::Boosted => boosted(data, train, test, timed),
    }
}

/// (time-split AUC, mean 5-fold AUC).
fn evaluate(data: &Data, model: Model) -> (f64, f64) {
    let n = data.won.len();
    let cut = n * 4 / 5;
    let (first, last): (Vec<usize>, Vec<usize>) = ((0..cut).collect(), (cut..n).collect());
    let labels = |idx: &[usize]| idx.iter().map(|&i| data.won[i]).collect::<Vec<_>>();
    let time = roc_auc(&scores(data, model, &first, &last, true), &labels(&last)).unwrap();
    let fold = folds(&data.won);
    let mut cv = 0.0;
    for k in 0..5 {
        let train: Vec<usize> = (0..n).filter(|&i| fold[i] != k).collect();
        let test: Vec<usize> = (0..n).filter(|&i| fold[i] == k).collect();
        cv += roc_auc(&scores(data, model, &train, &test, false), &labels(&test)).unwrap() / 5.0;
    }
    (time, cv)
}

fn main() {
    let start = Instant::now();
    let v1 = Prep::default();
    let rows: Vec<(&str, Model)> = vec![
        ("v1 as is (one-hot, ln, indicators)", Model::V1(v1)),
        (
            "v1, spellings normalised",
            Model::V1(Prep {
                normalise: true,
                ..v1
            }),
        ),
        (
            "v1, \"Select\" read as missing",
            Model::V1(Prep {
                placeholder_missing: true,
                ..v1
            }),
        ),
        (
            "v1, options < 25 rows pooled",
            Model::V1(Prep {
                pool_below: 25,
                ..v1
            }),
        ),
        (
            "v1, L2 chosen on recent fifth",
            Model::V1(Prep {
                tune_l2: true,
                ..v1
            }),
        ),
        (
            "v1 minus missing indicators",
            Model::V1(Prep {
                no_missing_indicator: true,
                ..v1
            }),
        ),
        (
            "v1, numbers raw (no ln)",
            Model::V1(Prep {
                raw_numbers: true,
                ..v1
            }),
        ),
        (
            "v1, raw numbers + normalised",
            Model::V1(Prep {
                raw_numbers: true,
                normalise: true,
                ..v1
            }),
        ),
        (
            "sklearn-like LR, one-hot 0/1",
            Model::Reference {
                standardise_one_hot: false,
                ln_numbers: false,
            },
        ),
        (
            "sklearn-like LR, all standardised",
            Model::Reference {
                standardise_one_hot: true,
                ln_numbers: false,
            },
        ),
        (
            "sklearn-like LR, numbers ln",
            Model::Reference {
                standardise_one_hot: false,
                ln_numbers: true,
            },
        ),
        ("current boosted predictor", Model::Boosted),
    ];
    let worlds = [
        ("time_on_site acts through its seconds", TimeEffect::Seconds),
        (
            "time_on_site acts through ln(1+seconds)",
            TimeEffect::LogSeconds,
        ),
    ];
    for (title, world) in worlds {
        let data = generate(world);
        let won = data.won.iter().filter(|w| **w).count();
        println!(
            "\nWorld: {title}. {N} leads, {:.1}% won, {} one-hot columns in v1",
            100.0 * won as f64 / N as f64,
            FeatureSpace::one_hot(&data.fields, &[]).len()
        );
        println!(
            "{:<36} {:>9} {:>8} {:>9} {:>8}",
            "", "time AUC", "Δ v1", "5-fold", "Δ v1"
        );
        let mut base = None;
        for (name, model) in &rows {
            let (time, cv) = evaluate(&data, *model);
            let (t0, c0) = *base.get_or_insert((time, cv));
            println!(
                "{name:<36} {time:>9.4} {:>+8.4} {cv:>9.4} {:>+8.4}",
                time - t0,
                cv - c0
            );
        }
    }
    eprintln!("\n{:.1} s", start.elapsed().as_secs_f64());
}
