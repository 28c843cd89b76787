//! The close-probability predictor on data drawn from a known logistic model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use scoring::evaluate::{brier_score, roc_auc};
use scoring::predictor::{FeatureSpace, Predictor, TrainOptions};
use scoring::{AttributeValue, FieldDef, FieldType, LeadFacts, SignalDef};

const SOURCES: [&str; 4] = ["website", "referral", "event", "outbound"];

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
}

fn field(key: &str, field_type: FieldType, options: &[&str]) -> FieldDef {
    FieldDef {
        key: key.into(),
        field_type,
        options: options.iter().map(|s| s.to_string()).collect(),
    }
}

fn space() -> FeatureSpace {
    FeatureSpace::new(
        &[
            field("budget", FieldType::Rating, &[]),
            field("authority", FieldType::Rating, &[]),
            field("source", FieldType::Category, &SOURCES),
            field("deal_size", FieldType::Number, &[]),
            field("employees", FieldType::Number, &[]),
            field("noise", FieldType::Number, &[]),
            field("is_partner", FieldType::Boolean, &[]),
        ],
        &["inbound_inquiry".to_string(), "website_visit".to_string()],
    )
}

fn signal(key: &str) -> SignalDef {
    SignalDef {
        key: key.into(),
        points: 1.0,
        half_life_days: 7.0,
        urgent: false,
        direction: scoring::Direction::Inbound,
        retired: false,
    }
}

/// The ground truth's source effects; `referral_effect` lets a team differ.
struct Truth {
    intercept: f64,
    referral_effect: f64,
}

/// A lead and its true close probability. Budget is missing for 10% of leads
/// (the truth then treats it as average); noise and employees carry no signal.
fn draw(rng: &mut Rng, truth: &Truth) -> (LeadFacts, f64) {
    let mut f = LeadFacts::default();
    let budget = 1 + rng.below(5);
    let authority = 1 + rng.below(5);
    let source = rng.below(4) as usize;
    let log_deal = 9.0 + 1.5 * rng.normal();
    let inquiries = rng.below(6);
    let visits = rng.below(20);
    let partner = rng.below(3) == 0;
    let budget_known = rng.below(10) != 0;
    if budget_known {
        f.attributes
            .insert("budget".into(), AttributeValue::Number(budget as f64));
    }
    f.attributes
        .insert("authority".into(), AttributeValue::Number(authority as f64));
    f.attributes.insert(
        "source".into(),
        AttributeValue::Text(SOURCES[source].into()),
    );
    f.attributes.insert(
        "deal_size".into(),
        AttributeValue::Number(log_deal.exp_m1()),
    );
    f.attributes.insert(
        "employees".into(),
        AttributeValue::Number((50.0 * rng.unit()).round()),
    );
    f.attributes
        .insert("noise".into(), AttributeValue::Number(rng.normal()));
    f.attributes
        .insert("is_partner".into(), AttributeValue::Bool(partner));
    let now = 1_700_000_000;
    for _ in 0..inquiries {
        f.activity.record(&signal("inbound_inquiry"), now, None);
    }
    for _ in 0..visits {
        f.activity.record(&signal("website_visit"), now, None);
    }
    let source_effect = [0.0, truth.referral_effect, 0.3, -0.6][source];
    let z = truth.intercept
        + if budget_known {
            0.6 * (budget as f64 - 3.0)
        } else {
            0.0
        }
        + 0.4 * (authority as f64 - 3.0)
        + source_effect
        + 0.35 * (log_deal - 9.0)
        + 0.5 * (inquiries as f64).ln_1p()
        + 0.1 * (visits as f64).ln_1p()
        + if partner { 0.4 } else { 0.0 };
    (f, 1.0 / (1.0 + (-z).exp()))
}

struct Data {
    rows: Vec<f64>,
    labels: Vec<bool>,
    truth: Vec<f64>,
    facts: Vec<LeadFacts>,
}

fn data(seed: u64, n: usize, truth: &Truth) -> Data {
    let mut rng = Rng(seed);
    let space = space();
    let mut d = Data {
        rows: Vec::new(),
        labels: Vec::new(),
        truth: Vec::new(),
        facts: Vec::new(),
    };
    for _ in 0..n {
        let (f, p) = draw(&mut rng, truth);
        space.encode_into(&f, &mut d.rows);
        d.labels.push(rng.unit() < p);
        d.truth.push(p);
        d.facts.push(f);
    }
    d
}

const TENANT: Truth = Truth {
    intercept: -1.2,
    referral_effect: 1.0,
};

fn train(d: &Data) -> Predictor {
    Predictor::train_rows(
        space(),
        &d.rows,
        &d.labels,
        TrainOptions::default(),
        1_700_000_000,
    )
    .unwrap()
}

fn predictions(p: &Predictor, d: &Data) -> Vec<f64> {
    let k = space().len();
    d.rows.chunks(k).map(|r| p.predict_row(r)).collect()
}

/// An independent fit: Nesterov-accelerated gradient descent on the mean
/// penalised log-loss, with its own standardisation and mean imputation.
fn gradient_descent_auc(train: &Data, test: &Data, l2: f64) -> (f64, f64) {
    let k = space().len();
    let n = train.labels.len();
    let mut mean = vec![0.0f64; k];
    let mut cnt = vec![0.0f64; k];
    for r in train.rows.chunks(k) {
        for j in 0..k {
            if r[j].is_finite() {
                mean[j] += r[j];
                cnt[j] += 1.0;
            }
        }
    }
    for j in 0..k {
        mean[j] /= cnt[j].max(1.0);
    }
    let mut sd = vec![0.0; k];
    for r in train.rows.chunks(k) {
        for j in 0..k {
            if r[j].is_finite() {
                sd[j] += (r[j] - mean[j]).powi(2);
            }
        }
    }
    for j in 0..k {
        sd[j] = (sd[j] / cnt[j].max(1.0)).sqrt();
        if sd[j] < 1e-12 {
            sd[j] = 1.0;
        }
    }
    let z = |r: &[f64], j: usize| {
        if r[j].is_finite() {
            (r[j] - mean[j]) / sd[j]
        } else {
            0.0
        }
    };
    let x: Vec<Vec<f64>> = train
        .rows
        .chunks(k)
        .map(|r| (0..k).map(|j| z(r, j)).collect())
        .collect();
    let mut w = vec![0.0; k + 1];
    let mut v = w.clone();
    let lr = 0.5;
    for it in 0..1500 {
        let mom = it as f64 / (it as f64 + 3.0);
        let look: Vec<f64> = w.iter().zip(&v).map(|(a, b)| a + mom * b).collect();
        let mut g = vec![0.0; k + 1];
        for (xi, &yi) in x.iter().zip(&train.labels) {
            let s = look[0] + xi.iter().zip(&look[1..]).map(|(a, b)| a * b).sum::<f64>();
            let r = 1.0 / (1.0 + (-s).exp()) - f64::from(u8::from(yi));
            g[0] += r;
            for j in 0..k {
                g[j + 1] += r * xi[j];
            }
        }
        for j in 0..=k {
            g[j] /= n as f64;
            if j > 0 {
                g[j] += l2 / n as f64 * look[j];
            }
        }
        for j in 0..=k {
            v[j] = mom * v[j] - lr * g[j];
            w[j] += v[j];
        }
    }
    let scores: Vec<f64> = test
        .rows
        .chunks(k)
        .map(|r| {
            let s = w[0] + (0..k).map(|j| w[j + 1] * z(r, j)).sum::<f64>();
            1.0 / (1.0 + (-s).exp())
        })
        .collect();
    (
        roc_auc(&scores, &test.labels).unwrap(),
        brier_score(&scores, &test.labels).unwrap(),
    )
}

#[test]
fn the_predictor_ranks_held_out_leads_almost_as_well_as_the_true_model() {
    let train_set = data(1, 20_000, &TENANT);
    let test_set = data(2, 20_000, &TENANT);
    let model = train(&train_set);
    let learned = predictions(&model, &test_set);
    let auc = roc_auc(&learned, &test_set.labels).unwrap();
    let true_auc = roc_auc(&test_set.truth, &test_set.labels).unwrap();
    let brier = brier_score(&learned, &test_set.labels).unwrap();
    let true_brier = brier_score(&test_set.truth, &test_set.labels).unwrap();
    eprintln!(
        "held-out AUC {auc:.4} (true model {true_auc:.4}); Brier {brier:.4} (true model {true_brier:.4})"
    );
    assert!(auc >= true_auc - 0.005, "AUC {auc} vs true {true_auc}");
    assert!(
        brier <= true_brier + 0.003,
        "Brier {brier} vs true {true_brier}"
    );
    assert!(model.metadata.converged);
    assert_eq!(model.metadata.rows, 20_000);
    assert_eq!(model.metadata.won + model.metadata.lost, 20_000);
}

#[test]
fn the_predictor_matches_a_logistic_regression_fitted_by_gradient_descent() {
    let train_set = data(3, 5_000, &TENANT);
    let test_set = data(4, 10_000, &TENANT);
    let model = train(&train_set);
    let learned = predictions(&model, &test_set);
    let auc = roc_auc(&learned, &test_set.labels).unwrap();
    let (gd_auc, gd_brier) = gradient_descent_auc(&train_set, &test_set, 1.0);
    let brier = brier_score(&learned, &test_set.labels).unwrap();
    eprintln!(
        "held-out AUC {auc:.4} vs gradient-descent LR {gd_auc:.4}; Brier {brier:.4} vs {gd_brier:.4}"
    );
    assert!(
        auc >= gd_auc - 0.005,
        "AUC {auc} vs independent LR {gd_auc}"
    );
    assert!(brier <= gd_brier + 0.003, "Brier {brier} vs {gd_brier}");
}

#[test]
fn the_predictor_is_calibrated_by_decile() {
    let train_set = data(5, 20_000, &TENANT);
    let test_set = data(6, 20_000, &TENANT);
    let model = train(&train_set);
    let mut pairs: Vec<(f64, bool)> = predictions(&model, &test_set)
        .into_iter()
        .zip(test_set.labels.iter().copied())
        .collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    for decile in pairs.chunks(2_000) {
        let predicted = decile.iter().map(|p| p.0).sum::<f64>() / decile.len() as f64;
        let observed = decile.iter().filter(|p| p.1).count() as f64 / decile.len() as f64;
        assert!(
            (predicted - observed).abs() < 0.04,
            "predicted {predicted}, observed {observed}"
        );
    }
}

#[test]
fn with_no_closed_leads_the_predictor_answers_the_prior() {
    let model = Predictor::train_rows(space(), &[], &[], TrainOptions::default(), 0).unwrap();
    let lead = data(7, 1, &TENANT);
    assert!((model.predict(&lead.facts[0]) - 0.2).abs() < 1e-9);
    assert_eq!(model.metadata.rows, 0);
    assert_eq!(model.metadata.auc, None);
    let prior = Predictor::prior_only(space(), 0.3, 0);
    assert!((prior.predict(&lead.facts[0]) - 0.3).abs() < 1e-12);
}

#[test]
fn one_class_or_one_lead_gives_finite_sane_probabilities() {
    let d = data(8, 50, &TENANT);
    let k = space().len();
    for (n, label) in [
        (1usize, true),
        (1, false),
        (5, true),
        (50, true),
        (50, false),
    ] {
        let labels = vec![label; n];
        let model = Predictor::train_rows(
            space(),
            &d.rows[..n * k],
            &labels,
            TrainOptions::default(),
            0,
        )
        .unwrap();
        for f in &d.facts {
            let p = model.predict(f);
            assert!(
                p.is_finite() && p > 0.0 && p < 1.0,
                "n={n} label={label}: {p}"
            );
            if label {
                assert!(p > 0.2 - 0.15, "{p}");
            } else {
                assert!(p < 0.2 + 0.15, "{p}");
            }
        }
        assert!(model.metadata.brier.is_some_and(f64::is_finite));
        assert_eq!(model.metadata.auc, None, "one class has no AUC");
        assert!(
            model
                .coefficients
                .iter()
                .chain([&model.intercept])
                .all(|b| b.is_finite())
        );
    }
}

#[test]
fn the_prior_gives_way_as_closed_leads_accumulate() {
    // Every lead alike and 60% won: the average prediction moves from the
    // 20% prior towards 60%.
    let k = space().len();
    let row = data(9, 1, &TENANT).rows;
    let mean_prediction = |n: usize| {
        let rows: Vec<f64> = (0..n).flat_map(|_| row.iter().copied()).collect();
        let labels: Vec<bool> = (0..n).map(|i| i % 5 < 3).collect();
        let model =
            Predictor::train_rows(space(), &rows, &labels, TrainOptions::default(), 0).unwrap();
        model.predict_row(&row[..k])
    };
    let (p0, p10, p1000) = (
        mean_prediction(0),
        mean_prediction(10),
        mean_prediction(1000),
    );
    assert!((p0 - 0.2).abs() < 1e-9);
    assert!(p10 > p0 && p10 < 0.6 - 0.1, "{p10}");
    assert!((p1000 - 0.6).abs() < 0.01, "{p1000}");
}

#[test]
fn a_team_with_few_leads_stays_near_the_tenant_and_one_with_many_learns_its_own() {
    let tenant_data = data(10, 20_000, &TENANT);
    let tenant = train(&tenant_data);
    // This team's referrals convert far worse than the tenant's.
    let team_truth = Truth {
        intercept: -1.2,
        referral_effect: -1.5,
    };
    let few = data(11, 20, &team_truth);
    let many = data(12, 8_000, &team_truth);
    let test = data(13, 10_000, &team_truth);
    let options = TrainOptions::default();
    let small = tenant
        .train_team(&few.rows, &few.labels, options, 0)
        .unwrap();
    let large = tenant
        .train_team(&many.rows, &many.labels, options, 0)
        .unwrap();
    let alone = Predictor::train_rows(space(), &few.rows, &few.labels, options, 0).unwrap();
    // Root-mean-square difference of the log-odds over the test leads.
    let distance = |a: &Predictor, b: &Predictor| -> f64 {
        let logit = |p: f64| (p / (1.0 - p)).ln();
        let (pa, pb) = (predictions(a, &test), predictions(b, &test));
        (pa.iter()
            .zip(&pb)
            .map(|(x, y)| (logit(*x) - logit(*y)).powi(2))
            .sum::<f64>()
            / pa.len() as f64)
            .sqrt()
    };
    assert!(distance(&small, &tenant) < 0.5 * distance(&alone, &tenant));
    assert!(small.metadata.shrunk_to_parent);
    let auc = |p: &Predictor| roc_auc(&predictions(p, &test), &test.labels).unwrap();
    eprintln!(
        "team test AUC: tenant {:.4}, team (8000 leads) {:.4}",
        auc(&tenant),
        auc(&large)
    );
    assert!(auc(&large) > auc(&tenant) + 0.01);
}

#[test]
fn the_explanation_names_the_features_that_pushed_most() {
    let d = data(14, 10_000, &TENANT);
    let model = train(&d);
    let mut lead = d.facts[0].clone();
    lead.attributes
        .insert("source".into(), AttributeValue::Text("referral".into()));
    lead.attributes
        .insert("budget".into(), AttributeValue::Number(5.0));
    lead.attributes
        .insert("authority".into(), AttributeValue::Number(1.0));
    let (up, down) = model.explain(&lead, 3);
    let names = |v: &[scoring::predictor::FeatureEffect]| {
        v.iter().map(|e| e.feature.clone()).collect::<Vec<_>>()
    };
    assert!(
        names(&up)
            .iter()
            .any(|n| n == "budget" || n == "source=referral"),
        "{up:?}"
    );
    assert!(names(&down).contains(&"authority".to_string()), "{down:?}");
    assert!(up.windows(2).all(|w| w[0].log_odds >= w[1].log_odds));
}

#[test]
fn a_predictor_round_trips_through_json_with_its_features_and_metadata() {
    let d = data(15, 500, &TENANT);
    let model = Predictor::train_rows(
        space(),
        &d.rows,
        &d.labels,
        TrainOptions::default(),
        1_700_000_123,
    )
    .unwrap();
    let v = serde_json::to_value(&model).unwrap();
    assert_eq!(v["metadata"]["trainedAt"], 1_700_000_123);
    assert_eq!(v["metadata"]["rows"], 500);
    assert_eq!(
        v["space"]["features"][0],
        serde_json::json!({"kind": "RATING", "field": "budget"})
    );
    let back: Predictor = serde_json::from_value(v).unwrap();
    assert_eq!(back, model);
    assert_eq!(back.predict(&d.facts[3]), model.predict(&d.facts[3]));
}

#[test]
fn training_refuses_rows_of_the_wrong_length_and_bad_options() {
    let err = Predictor::train_rows(space(), &[1.0, 2.0], &[true], TrainOptions::default(), 0)
        .unwrap_err();
    assert!(
        err.to_string().contains("training rows hold 2 values"),
        "{err}"
    );
    let bad = TrainOptions {
        prior: 1.0,
        ..TrainOptions::default()
    };
    assert!(Predictor::train_rows(space(), &[], &[], bad, 0).is_err());
}

/// Laplace-smoothed naive Bayes over binned features, as Odoo's CRM scores
/// leads: the floor the predictor must clear.
fn naive_bayes_auc(train: &Data, test: &Data) -> f64 {
    let k = space().len();
    // Quartile bins from the training data; a missing value is its own bin.
    let mut edges = vec![[0.0f64; 3]; k];
    for (j, e) in edges.iter_mut().enumerate() {
        let mut col: Vec<f64> = train
            .rows
            .chunks(k)
            .map(|r| r[j])
            .filter(|x| x.is_finite())
            .collect();
        col.sort_by(f64::total_cmp);
        if !col.is_empty() {
            for (q, edge) in e.iter_mut().enumerate() {
                *edge = col[(col.len() - 1) * (q + 1) / 4];
            }
        }
    }
    let bin = |j: usize, x: f64| -> usize {
        if !x.is_finite() {
            4
        } else {
            edges[j].iter().filter(|e| x > **e).count()
        }
    };
    let mut counts = vec![[[0.0f64; 5]; 2]; k];
    let mut class = [0.0f64; 2];
    for (r, &y) in train.rows.chunks(k).zip(&train.labels) {
        let c = usize::from(y);
        class[c] += 1.0;
        for j in 0..k {
            counts[j][c][bin(j, r[j])] += 1.0;
        }
    }
    let scores: Vec<f64> = test
        .rows
        .chunks(k)
        .map(|r| {
            let mut s = ((class[1] + 1.0) / (class[0] + 1.0)).ln();
            for j in 0..k {
                let b = bin(j, r[j]);
                s += ((counts[j][1][b] + 1.0) / (class[1] + 5.0)).ln()
                    - ((counts[j][0][b] + 1.0) / (class[0] + 5.0)).ln();
            }
            s
        })
        .collect();
    roc_auc(&scores, &test.labels).unwrap()
}

#[test]
fn the_predictor_beats_the_naive_bayes_floor() {
    let train_set = data(16, 10_000, &TENANT);
    let test_set = data(17, 10_000, &TENANT);
    let auc = roc_auc(
        &predictions(&train(&train_set), &test_set),
        &test_set.labels,
    )
    .unwrap();
    let nb = naive_bayes_auc(&train_set, &test_set);
    eprintln!("held-out AUC {auc:.4} vs Laplace naive Bayes {nb:.4}");
    assert!(auc > nb, "{auc} vs {nb}");
}

/// Twenty fields of two hundred options each would give 4,000 columns and a
/// training cubic in them; the kept columns are capped, the rare options
/// pooled, every non-category column kept, and the same data keeps the
/// same columns.
#[test]
fn many_rare_options_are_pooled_and_the_columns_capped() {
    let options: Vec<String> = (0..200).map(|i| format!("o{i}")).collect();
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let mut fields = vec![field("budget", FieldType::Rating, &[])];
    let keys: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    fields.extend(keys.iter().map(|k| field(k, FieldType::Category, &options)));
    // The boosted model's space has one column per field...
    assert_eq!(
        FeatureSpace::new(&fields, &["website_visit".to_string()]).len(),
        1 + 20 + 1
    );
    // ...and the one-hot layout of a linear model one per option.
    let space = FeatureSpace::one_hot(&fields, &["website_visit".to_string()]);
    assert_eq!(space.len(), 2 + 20 * 200 + 1);

    // Most rows take one of a few common options; a handful take rare ones.
    let mut rng = Rng(7);
    let n = 2_000;
    let mut rows = Vec::new();
    for i in 0..n {
        let mut f = LeadFacts::default();
        f.attributes
            .insert("budget".into(), AttributeValue::Number(3.0));
        for key in &keys {
            let option = if i % 100 == 0 {
                100 + rng.below(100)
            } else {
                rng.below(5)
            };
            f.attributes
                .insert(key.clone(), AttributeValue::Text(format!("o{option}")));
        }
        space.encode_into(&f, &mut rows);
    }

    let kept = space.kept_columns(&rows, n, 60, 5);
    assert_eq!(kept.len(), 60);
    assert_eq!(kept, space.kept_columns(&rows, n, 60, 5));
    let small = space.select(&kept);
    let names: Vec<String> = small.features.iter().map(|f| f.name()).collect();
    for kept_always in ["budget", "budget (missing)", "signal:website_visit"] {
        assert!(names.iter().any(|n| n == kept_always), "{names:?}");
    }
    let rare = |name: &String| {
        name.split_once("=o")
            .and_then(|(_, option)| option.parse::<u32>().ok())
            .is_some_and(|option| option >= 100)
    };
    assert!(!names.iter().any(rare), "no rare option is kept: {names:?}");
    let projected = space.project(&rows, &kept);
    assert_eq!(projected.len(), n * 60);

    let predictor = Predictor::train_rows(
        small,
        &projected,
        &vec![true; n / 2]
            .into_iter()
            .chain(vec![false; n / 2])
            .collect::<Vec<_>>(),
        TrainOptions::default(),
        0,
    )
    .expect("trains");
    assert!(predictor.predict(&LeadFacts::default()).is_finite());
}

#[test]
fn spelling_variants_of_an_option_are_one_level() {
    let space = FeatureSpace::new(
        &[field(
            "source",
            FieldType::Category,
            &["Google", "google", " GOOGLE ", "Olark  Chat", "olark_chat"],
        )],
        &[],
    );
    let levels = match &space.features[0] {
        scoring::predictor::Feature::Level { levels, .. } => levels.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(levels, vec!["google".to_string(), "olark chat".to_string()]);
    let code = |text: &str| {
        let mut f = LeadFacts::default();
        f.attributes
            .insert("source".into(), AttributeValue::Text(text.into()));
        space.encode(&f)[0]
    };
    assert_eq!(code("Google"), code("google "));
    assert_eq!(code("Olark Chat"), code("olark_chat"));
    assert_ne!(code("Google"), code("Olark Chat"));
    assert_eq!(code("never seen"), 2.0, "an unknown option is its own code");
    assert!(space.encode(&LeadFacts::default())[0].is_nan());
}

/// A version 1 predictor (stored before the boosted model) still loads and
/// predicts what it predicted.
#[test]
fn a_stored_version_1_predictor_still_loads_and_predicts() {
    let fields = [
        field("budget", FieldType::Rating, &[]),
        field("source", FieldType::Category, &SOURCES),
    ];
    let space = FeatureSpace::one_hot(&fields, &[]);
    let v1 = serde_json::json!({
        "version": 1,
        "space": serde_json::to_value(&space).unwrap(),
        "means": [3.0, 0.1, 0.25, 0.25, 0.25, 0.25],
        "scales": [1.2, 0.3, 0.43, 0.43, 0.43, 0.43],
        "coefficients": [0.8, -0.1, 0.0, 0.5, 0.0, -0.4],
        "intercept": -1.0,
        "metadata": {
            "rows": 100, "won": 30, "lost": 70, "trainedAt": 1,
            "iterations": 6, "converged": true, "brier": 0.2, "auc": 0.7,
            "options": {"l2": 1.0, "prior": 0.2, "priorStrength": 10.0,
                        "teamStrength": 50.0, "maxIterations": 50},
            "shrunkToParent": false
        }
    });
    let model: Predictor = serde_json::from_value(v1).unwrap();
    let mut lead = LeadFacts::default();
    lead.attributes
        .insert("budget".into(), AttributeValue::Number(4.2));
    lead.attributes
        .insert("source".into(), AttributeValue::Text("referral".into()));
    // By hand: -1 + 0.8·(4.2−3)/1.2 + 0.5·(1−0.25)/0.43 + (−0.1)·(0−0.1)/0.3
    // − 0.4·(0−0.25)/0.43, through the logistic function.
    let z: f64 = -1.0 + 0.8 + 0.5 * 0.75 / 0.43 + 0.1 * 0.1 / 0.3 + 0.4 * 0.25 / 0.43;
    let expected = 1.0 / (1.0 + (-z).exp());
    assert!((model.predict(&lead) - expected).abs() < 1e-9);
    let (up, _) = model.explain(&lead, 2);
    let names: Vec<&str> = up.iter().map(|e| e.feature.as_str()).collect();
    assert_eq!(names, ["source=referral", "budget"]);
}

#[test]
fn the_held_out_recent_leads_give_out_of_sample_figures_and_a_reliability_table() {
    let d = data(20, 5_000, &TENANT);
    let closed_at: Vec<i64> = (0..5_000).collect();
    let model = Predictor::train_rows_at(
        space(),
        &d.rows,
        &d.labels,
        &closed_at,
        TrainOptions::default(),
        0,
    )
    .unwrap();
    let v = model
        .metadata
        .validation
        .clone()
        .expect("enough leads to hold out");
    assert_eq!(v.rows, 1_000);
    assert_eq!(v.reliability.len(), 10);
    assert_eq!(v.reliability.iter().map(|b| b.leads).sum::<usize>(), 1_000);
    assert_eq!(model.metadata.auc, v.auc);
    assert!(v.auc.unwrap() > 0.7, "{v:?}");
    for bin in v.reliability.iter().filter(|b| b.leads >= 100) {
        assert!((bin.mean_predicted - bin.won_rate).abs() < 0.1, "{bin:?}");
    }
    // A closed time per label is required.
    assert!(
        Predictor::train_rows_at(
            space(),
            &d.rows,
            &d.labels,
            &[0],
            TrainOptions::default(),
            0
        )
        .is_err()
    );
}

/// When the won rate drifts upwards, the probabilities follow the recent
/// leads, not the average of the history.
#[test]
fn the_probabilities_follow_a_drifting_won_rate() {
    let old = data(21, 6_000, &TENANT);
    let recent = data(
        22,
        4_000,
        &Truth {
            intercept: 0.3,
            referral_effect: 1.0,
        },
    );
    let rows: Vec<f64> = old.rows.iter().chain(&recent.rows).copied().collect();
    let labels: Vec<bool> = old.labels.iter().chain(&recent.labels).copied().collect();
    let closed_at: Vec<i64> = (0..10_000).collect();
    let model = Predictor::train_rows_at(
        space(),
        &rows,
        &labels,
        &closed_at,
        TrainOptions::default(),
        0,
    )
    .unwrap();
    let future = data(
        23,
        5_000,
        &Truth {
            intercept: 0.3,
            referral_effect: 1.0,
        },
    );
    let mean = predictions(&model, &future).iter().sum::<f64>() / 5_000.0;
    let observed = future.labels.iter().filter(|w| **w).count() as f64 / 5_000.0;
    let history = labels.iter().filter(|w| **w).count() as f64 / 10_000.0;
    eprintln!("mean prediction {mean:.3}, future won rate {observed:.3}, history {history:.3}");
    assert!((mean - observed).abs() < (history - observed).abs() / 2.0);
}

/// The real leads in `../shared/data` (beside the checkout), when present:
/// their feature space, facts and outcomes, in time order.
fn bank_leads() -> Option<(FeatureSpace, Vec<LeadFacts>, Vec<bool>)> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/bank_leads.csv");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("skipped: {} is not there", path.display());
        return None;
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let records: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let mut fields = Vec::new();
    for (j, name) in header.iter().enumerate() {
        if name.starts_with("cat_") {
            let mut options: Vec<&str> = records
                .iter()
                .map(|r| r[j])
                .filter(|v| !v.is_empty())
                .collect();
            options.sort_unstable();
            options.dedup();
            fields.push((j, field(name, FieldType::Category, &options)));
        } else if name.starts_with("num_") || name.starts_with("count_") {
            fields.push((j, field(name, FieldType::Number, &[])));
        }
    }
    let defs: Vec<FieldDef> = fields.iter().map(|(_, f)| f.clone()).collect();
    let space = FeatureSpace::new(&defs, &[]);
    let facts: Vec<LeadFacts> = records
        .iter()
        .map(|r| {
            let mut f = LeadFacts::default();
            for (j, def) in &fields {
                let v = r[*j];
                if v.is_empty() {
                    continue;
                }
                let value = if def.field_type == FieldType::Category {
                    AttributeValue::Text(v.into())
                } else {
                    AttributeValue::Number(v.parse().unwrap())
                };
                f.attributes.insert(def.key.clone(), value);
            }
            f
        })
        .collect();
    let won: Vec<bool> = records.iter().map(|r| r[1] == "won").collect();
    Some((space, facts, won))
}

/// Trained on four fifths of the real leads, the predictor ranks the other
/// fifth about as well as scikit-learn's best model does in 5-fold
/// cross-validation (0.774), and never answers NaN.
#[test]
fn on_real_bank_leads_the_predictor_ranks_the_next_leads() {
    let Some((space, facts, won)) = bank_leads() else {
        return;
    };
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    let (mut probe, mut probe_won) = (Vec::new(), Vec::new());
    for (i, (f, w)) in facts.iter().zip(&won).enumerate() {
        if i % 5 == 0 {
            probe.push(f);
            probe_won.push(*w);
        } else {
            space.encode_into(f, &mut rows);
            labels.push(*w);
        }
    }
    let model = Predictor::train_rows(space, &rows, &labels, TrainOptions::default(), 0).unwrap();
    let probs: Vec<f64> = probe.iter().map(|f| model.predict(f)).collect();
    assert!(probs.iter().all(|p| p.is_finite() && *p > 0.0 && *p < 1.0));
    let auc = roc_auc(&probs, &probe_won).unwrap();
    eprintln!("bank leads, every fifth held out: AUC {auc:.4}");
    assert!(auc > 0.765, "{auc}");
}

/// Trained on the oldest four fifths of the real leads (won rate 6%), the
/// predictor ranks the newest fifth (31%) at least as well as naive Bayes,
/// the best of scikit-learn's models there (0.722), and its probabilities
/// beat the logistic regression's Brier score there (0.228).
#[test]
fn on_real_bank_leads_trained_on_the_past_the_predictor_ranks_the_drifted_future() {
    let Some((space, facts, won)) = bank_leads() else {
        return;
    };
    let cut = facts.len() * 4 / 5;
    let mut rows = Vec::new();
    for f in &facts[..cut] {
        space.encode_into(f, &mut rows);
    }
    let closed_at: Vec<i64> = (0..cut as i64).collect();
    let model = Predictor::train_rows_at(
        space,
        &rows,
        &won[..cut],
        &closed_at,
        TrainOptions::default(),
        0,
    )
    .unwrap();
    let probs: Vec<f64> = facts[cut..].iter().map(|f| model.predict(f)).collect();
    let auc = roc_auc(&probs, &won[cut..]).unwrap();
    let brier = brier_score(&probs, &won[cut..]).unwrap();
    eprintln!("bank leads, newest fifth: AUC {auc:.4}, Brier {brier:.4}");
    assert!(auc >= 0.722, "{auc}");
    assert!(brier < 0.228, "{brier}");
}

/// A version 2 predictor stored before the naive Bayes tables existed has
/// no `tables` key: it loads and scores as it did.
#[test]
fn a_stored_predictor_without_tables_still_loads_and_predicts() {
    let d = data(5, 2_000, &TENANT);
    let model = train(&d);
    let mut v = serde_json::to_value(&model).unwrap();
    let object = v.as_object_mut().unwrap();
    object.remove("tables");
    let stored: Predictor = serde_json::from_value(v).unwrap();
    assert!(stored.tables.is_empty());
    for f in d.facts.iter().take(50) {
        let p = stored.predict(f);
        assert!(p.is_finite() && p > 0.0 && p < 1.0, "{p}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    /// Any small set of closed leads, any mix of outcomes and missing
    /// values: finite probabilities strictly between 0 and 1.
    #[test]
    fn small_data_gives_finite_probabilities(
        n in 0usize..80,
        seed in 0u64..1_000,
        won_share in 0.0f64..1.0,
    ) {
        let mut rng = Rng(seed);
        let d = data(seed, n, &TENANT);
        let labels: Vec<bool> = (0..n).map(|_| rng.unit() < won_share).collect();
        let closed_at: Vec<i64> = (0..n as i64).collect();
        let model = Predictor::train_rows_at(space(), &d.rows, &labels, &closed_at, TrainOptions::default(), 0).unwrap();
        let probe = data(seed + 1, 20, &TENANT);
        for f in probe.facts.iter().chain([&LeadFacts::default()]) {
            let p = model.predict(f);
            proptest::prop_assert!(p.is_finite() && p > 0.0 && p < 1.0, "{}", p);
        }
    }
}

/// Issue 20 item 2: version 1 takes a number as `ln(1 + x)`, which bends a
/// heavy-tailed number whose effect is linear in its value (time spent on
/// the website) and so weighs it wrongly against the other fields; the
/// `categorical_ablation` example measures the rest. The predictor bins at
/// quantiles, so it ranks as the truth does.
#[test]
fn a_number_acting_through_its_raw_value_is_ranked_as_the_truth_ranks_it() {
    let mut rng = Rng(77);
    let fields = [
        field("time_on_site", FieldType::Number, &[]),
        field("source", FieldType::Category, &SOURCES),
    ];
    let (mut facts, mut won, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..6_000 {
        // A quarter never visited; the rest lognormal seconds.
        let seconds = if rng.below(4) == 0 {
            0.0
        } else {
            (6.0 + 0.9 * rng.normal()).exp().round()
        };
        // Ranking by one monotone number is blind to its scale: the
        // source makes the scale matter.
        let source = rng.below(4) as usize;
        let z = -1.6 + 2.2 * seconds.min(2_000.0) / 1_000.0 + [-1.2, 0.0, 0.8, 1.6][source];
        let mut f = LeadFacts::default();
        f.attributes.insert(
            "source".into(),
            AttributeValue::Text(SOURCES[source].into()),
        );
        f.attributes
            .insert("time_on_site".into(), AttributeValue::Number(seconds));
        facts.push(f);
        won.push(rng.unit() < 1.0 / (1.0 + (-z).exp()));
        truth.push(z);
    }
    let auc_of = |space: FeatureSpace, options: TrainOptions| {
        let mut rows = Vec::new();
        for f in &facts[..4_000] {
            space.encode_into(f, &mut rows);
        }
        let model = Predictor::train_rows(space, &rows, &won[..4_000], options, 0).unwrap();
        let p: Vec<f64> = facts[4_000..].iter().map(|f| model.predict(f)).collect();
        roc_auc(&p, &won[4_000..]).unwrap()
    };
    let current = auc_of(FeatureSpace::new(&fields, &[]), TrainOptions::default());
    let version_1 = auc_of(
        FeatureSpace::one_hot(&fields, &[]),
        TrainOptions {
            family: scoring::predictor::Family::Linear,
            ..TrainOptions::default()
        },
    );
    let best = roc_auc(&truth[4_000..], &won[4_000..]).unwrap();
    eprintln!("held-out AUC {current:.4}, version 1 {version_1:.4}, truth {best:.4}");
    assert!(
        current > best - 0.01,
        "current {current:.4}, truth {best:.4}"
    );
    assert!(
        current > version_1 + 0.015,
        "current {current:.4}, version 1 {version_1:.4}"
    );
}
