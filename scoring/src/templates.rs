//! Ready-made models and the default catalog a new tenant starts with.
//!
//! | template | needs fields beyond [`default_catalog`] |
//! |---|---|
//! | [`general`] (SPEC §1 default weights) | none |
//! | [`saas`] | none |
//! | [`medical_devices`] | `purchase_cycle` (RATING), `hospital_type` (CATEGORY) |
//!
//! [`required_fields`] lists the extra field definitions per template so the server
//! can create them when a tenant picks a template.

use std::collections::BTreeMap;

use crate::model::{
    BantRule, Catalog, ChurnRiskRule, ColdRule, ComplaintsCause, Criterion, Dimension,
    DimensionParams, Direction, EngagementParams, FieldDef, FieldType, ModelConfig,
    OrderAmountsCause, OverrideParams, OverrideRule, PredictedParams, RatingParams, RecencyParams,
    SCHEMA_VERSION, SignalDef, StageBasis, StageParams, StaleRule, Tier, UrgentSignalRule,
};

/// Template names accepted by [`by_name`].
pub const TEMPLATE_NAMES: [&str; 3] = ["general", "saas", "medical"];

/// The template called `name` (`general`, `saas`, `medical`; `medical_devices`
/// is accepted too), or `None`.
pub fn by_name(name: &str) -> Option<ModelConfig> {
    match name {
        "general" | "default" => Some(general()),
        "saas" => Some(saas()),
        "medical" | "medical_devices" => Some(medical_devices()),
        _ => None,
    }
}

/// Field definitions a template needs beyond [`default_catalog`]'s fields; empty
/// for an unknown name.
pub fn required_fields(name: &str) -> Vec<FieldDef> {
    match name {
        "medical" | "medical_devices" => vec![
            field("purchase_cycle", FieldType::Rating, &[]),
            field("hospital_type", FieldType::Category, &HOSPITAL_TYPES),
        ],
        _ => Vec::new(),
    }
}

const HOSPITAL_TYPES: [&str; 5] = ["tertiary", "secondary", "primary", "private", "clinic"];

/// The fields and signal types a new tenant gets (SPEC §1 and §2.3, §2.5).
///
/// Fields: `budget`, `timeline`, `authority`, `need`, `industry_position`,
/// `decision_chain` (RATING 1–5; for `decision_chain` 5 means one person
/// decides), `source` and `company_size` (CATEGORY). Signals, in this order
/// (points, half-life days): `website_visit` (2, 7), `deep_page_view` (4, 7),
/// `trial_activity` (5, 7), `positive_feedback` (6, 14), `inbound_inquiry`
/// (8, 14), `detail_question` (8, 14), urgent `meeting_request` (15, 5),
/// urgent `urgent_quote_request` (20, 5), urgent `executive_invited` (20, 7),
/// urgent `group_chat_created` (15, 7), `purchase` (10, 30), outbound `call`
/// (1, 7), `email` (1, 7), `meeting` (3, 7), `no_show` (−8, 14), `complaint`
/// (−10, 30), `unsubscribed` (−20, 60).
pub fn default_catalog() -> Catalog {
    use Direction::{Inbound as IN, Outbound as OUT};
    let rating = |k: &str| field(k, FieldType::Rating, &[]);
    Catalog {
        fields: vec![
            rating("budget"),
            rating("timeline"),
            rating("authority"),
            rating("need"),
            rating("industry_position"),
            rating("decision_chain"),
            field(
                "source",
                FieldType::Category,
                &[
                    "website", "referral", "event", "outbound", "partner", "other",
                ],
            ),
            field(
                "company_size",
                FieldType::Category,
                &["1-10", "11-50", "51-200", "201-1000", "1000+"],
            ),
        ],
        // Stages belong to the tenant's pipelines, not to this catalog.
        stages: Vec::new(),
        signals: vec![
            signal("website_visit", 2.0, 7.0, false, IN),
            signal("deep_page_view", 4.0, 7.0, false, IN),
            signal("trial_activity", 5.0, 7.0, false, IN),
            signal("positive_feedback", 6.0, 14.0, false, IN),
            signal("inbound_inquiry", 8.0, 14.0, false, IN),
            signal("detail_question", 8.0, 14.0, false, IN),
            signal("meeting_request", 15.0, 5.0, true, IN),
            signal("urgent_quote_request", 20.0, 5.0, true, IN),
            signal("executive_invited", 20.0, 7.0, true, IN),
            signal("group_chat_created", 15.0, 7.0, true, IN),
            signal("purchase", 10.0, 30.0, false, IN),
            signal("call", 1.0, 7.0, false, OUT),
            signal("email", 1.0, 7.0, false, OUT),
            signal("meeting", 3.0, 7.0, false, OUT),
            signal("no_show", -8.0, 14.0, false, IN),
            signal("complaint", -10.0, 30.0, false, IN),
            signal("unsubscribed", -20.0, 60.0, false, IN),
        ],
    }
}

/// [`default_catalog`] plus the fields of [`required_fields`]`(name)`.
pub fn catalog_for(name: &str) -> Catalog {
    let mut catalog = default_catalog();
    catalog.fields.extend(required_fields(name));
    catalog
}

/// The general default (SPEC §1): industry position 5, activity 20, recent
/// interactions 15, budget 20, decision-chain complexity 10, historical close
/// probability 20 and stage progress 10 (see [`stage_progress_dim`]); tiers A ≥ 80 (every 2 days), B ≥ 50 (5), C ≥ 25 (14),
/// D ≥ 0 (30); and the default overrides (see [`default_overrides`]).
pub fn general() -> ModelConfig {
    ModelConfig {
        schema_version: SCHEMA_VERSION,
        dimensions: vec![
            rating_dim("industry_position", "Industry position", 5.0),
            engagement_dim("activity", "Activity", 20.0, None),
            Dimension {
                key: "recent_interactions".into(),
                label: "Recent interactions".into(),
                weight: 15.0,
                params: DimensionParams::Recency(RecencyParams { horizon_days: 30.0 }),
            },
            rating_dim("budget", "Budget", 20.0),
            rating_dim("decision_chain", "Decision-chain complexity", 10.0),
            predicted_dim("close_probability", "Historical close probability", 20.0),
            stage_progress_dim(10.0),
        ],
        tiers: default_tiers(),
        overrides: default_overrides(),
    }
}

/// SaaS weighting (SPEC §1): trial activity 30 (ENGAGEMENT over
/// `trial_activity`, `positive_feedback`, `deep_page_view`), decision makers 15
/// (`authority`), budget 20, historical close probability 15, industry
/// position 10, stage progress 10. Default tiers and overrides.
pub fn saas() -> ModelConfig {
    ModelConfig {
        schema_version: SCHEMA_VERSION,
        dimensions: vec![
            engagement_dim(
                "trial_activity",
                "Trial activity",
                30.0,
                Some(vec![
                    "trial_activity".into(),
                    "positive_feedback".into(),
                    "deep_page_view".into(),
                ]),
            ),
            rating_dim_on("decision_makers", "Decision makers", "authority", 15.0),
            rating_dim("budget", "Budget", 20.0),
            predicted_dim("close_probability", "Historical close probability", 15.0),
            rating_dim("industry_position", "Industry position", 10.0),
            stage_progress_dim(10.0),
        ],
        tiers: default_tiers(),
        overrides: default_overrides(),
    }
}

/// Medical devices weighting (SPEC §1): purchase cycle 25 (`purchase_cycle`
/// RATING, 5 = buying now), budget 25, hospital type 20 (`hospital_type`
/// CATEGORY: tertiary 1, secondary 0.7, private 0.6, primary 0.4, clinic 0.25),
/// history 10 (PREDICTED), decision chain 10, stage progress 10. Needs the fields of
/// [`required_fields`]`("medical")`. Default tiers and overrides.
pub fn medical_devices() -> ModelConfig {
    let values: BTreeMap<String, f64> = [
        ("tertiary", 1.0),
        ("secondary", 0.7),
        ("private", 0.6),
        ("primary", 0.4),
        ("clinic", 0.25),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    ModelConfig {
        schema_version: SCHEMA_VERSION,
        dimensions: vec![
            rating_dim("purchase_cycle", "Purchase cycle", 25.0),
            rating_dim("budget", "Budget", 25.0),
            Dimension {
                key: "hospital_type".into(),
                label: "Hospital type".into(),
                weight: 20.0,
                params: DimensionParams::Rating(RatingParams {
                    field: "hospital_type".into(),
                    values: Some(values),
                    ..RatingParams::default()
                }),
            },
            predicted_dim("history", "Purchase history / close probability", 10.0),
            rating_dim("decision_chain", "Decision chain", 10.0),
            stage_progress_dim(10.0),
        ],
        tiers: default_tiers(),
        overrides: default_overrides(),
    }
}

/// A (value × intent) four-tier ladder: A ≥ 80 every 2 days, B ≥ 50 every 5,
/// C ≥ 25 every 14, D ≥ 0 every 30.
pub fn default_tiers() -> Vec<Tier> {
    let tier = |key: &str, label: &str, min: f64, every: f64, first: Option<f64>| Tier {
        key: key.into(),
        label: label.into(),
        min_score: min,
        follow_up_every_days: every,
        first_response_hours: first,
    };
    // The first response to a hot new lead is where deals are won or lost:
    // within the hour for A, the day for B.
    vec![
        tier("A", "Key", 80.0, 2.0, Some(1.0)),
        tier("B", "Potential", 50.0, 5.0, Some(24.0)),
        tier("C", "Nurture", 25.0, 14.0, None),
        tier("D", "Long shot", 0.0, 30.0, None),
    ]
}

/// The criteria of the demand radar's BANT: budget, authority, need and timeline
/// each rated at least 4.
pub fn bant_criteria() -> Vec<Criterion> {
    ["budget", "authority", "need", "timeline"]
        .into_iter()
        .map(|f| Criterion {
            field: f.into(),
            at_least: Some(4.0),
            one_of: None,
        })
        .collect()
}

/// The default override rules, in the order they apply (a later rule wins):
/// STALE (flag only, by the stage's rotting days); CHURN_RISK (inbound in the
/// last 30 days below half of the 30 before; 2 or more complaints in the last
/// 30 days, more than the 30 before; order amounts in the last 90 days below
/// half of the 90 before); BANT ≥ 3 ⇒ at least B; no inbound
/// for 14 days ⇒ COLD, at most C, follow up every 21 days; an urgent signal
/// within 7 days ⇒ URGENT and the top tier.
pub fn default_overrides() -> Vec<OverrideRule> {
    vec![
        OverrideRule {
            params: OverrideParams::Stale(StaleRule::default()),
        },
        OverrideRule {
            params: OverrideParams::ChurnRisk(ChurnRiskRule {
                window_days: 30,
                below_fraction: 0.5,
                min_previous: 2,
                at_most_tier: None,
                interactions: true,
                complaints: Some(ComplaintsCause {
                    window_days: 30,
                    at_least: 2,
                }),
                order_amounts: Some(OrderAmountsCause {
                    window_days: 90,
                    below_fraction: 0.5,
                    min_previous: 0.01,
                }),
            }),
        },
        OverrideRule {
            params: OverrideParams::Bant(BantRule {
                criteria: bant_criteria(),
                at_least: 3,
                tier: "B".into(),
            }),
        },
        OverrideRule {
            params: OverrideParams::Cold(ColdRule {
                no_inbound_days: 14.0,
                at_most_tier: Some("C".into()),
                follow_up_every_days: Some(21.0),
            }),
        },
        OverrideRule {
            params: OverrideParams::UrgentSignal(UrgentSignalRule {
                within_days: 7.0,
                tier: None,
                signals: None,
            }),
        },
    ]
}

fn field(key: &str, field_type: FieldType, options: &[&str]) -> FieldDef {
    FieldDef {
        key: key.into(),
        field_type,
        options: options.iter().map(|o| o.to_string()).collect(),
    }
}

fn signal(
    key: &str,
    points: f64,
    half_life_days: f64,
    urgent: bool,
    direction: Direction,
) -> SignalDef {
    SignalDef {
        key: key.into(),
        points,
        half_life_days,
        urgent,
        direction,
        retired: false,
    }
}

fn rating_dim(key: &str, label: &str, weight: f64) -> Dimension {
    rating_dim_on(key, label, key, weight)
}

fn rating_dim_on(key: &str, label: &str, field: &str, weight: f64) -> Dimension {
    Dimension {
        key: key.into(),
        label: label.into(),
        weight,
        params: DimensionParams::Rating(RatingParams {
            field: field.into(),
            ..RatingParams::default()
        }),
    }
}

fn engagement_dim(key: &str, label: &str, weight: f64, signals: Option<Vec<String>>) -> Dimension {
    Dimension {
        key: key.into(),
        label: label.into(),
        weight,
        params: DimensionParams::Engagement(EngagementParams {
            cap: 40.0,
            signals,
            include_outbound: false,
        }),
    }
}

/// Stage urgency (SPEC §1, "later stages are more urgent"): a STAGE
/// dimension on the stage's position in its pipeline, 0 in the first stage
/// and 1 in the last, so a lead in contract negotiation outranks an equal one
/// still gathering information. Its weight comes out of the historical close
/// probability, whose fallback before any training is the stage's win
/// probability: the stage counted already, but not as urgency.
pub fn stage_progress_dim(weight: f64) -> Dimension {
    Dimension {
        key: "stage_progress".into(),
        label: "Stage progress".into(),
        weight,
        params: DimensionParams::Stage(StageParams {
            basis: StageBasis::Position,
        }),
    }
}

fn predicted_dim(key: &str, label: &str, weight: f64) -> Dimension {
    Dimension {
        key: key.into(),
        label: label.into(),
        weight,
        params: DimensionParams::Predicted(PredictedParams { fallback: None }),
    }
}
