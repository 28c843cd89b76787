//! Model configuration: parsing, validation and the templates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use scoring::model::SCHEMA_VERSION;
use scoring::templates::{self, default_catalog};
use scoring::{Catalog, ConfigError, ModelConfig};
use serde_json::{Value, json};

fn general_json() -> Value {
    templates::general().to_json()
}

/// Parses and validates against the general catalog plus the medical fields.
fn check(value: &Value) -> Result<ModelConfig, Vec<ConfigError>> {
    ModelConfig::parse(value, &templates::catalog_for("medical"))
}

fn assert_error(value: &Value, path: &str, fragment: &str) {
    let errors = check(value).expect_err("configuration should be refused");
    assert!(
        errors
            .iter()
            .any(|e| e.path == path && e.message.contains(fragment)),
        "expected an error at {path} containing {fragment:?}, got {errors:#?}"
    );
}

/// Each row: a test name, a change to the general template's JSON, the path
/// and part of the message that must be reported.
macro_rules! refused {
    ($($name:ident: |$v:ident| $change:block => $path:expr, $fragment:expr;)*) => {$(
        #[test]
        fn $name() {
            let mut $v = general_json();
            $change
            assert_error(&$v, $path, $fragment);
        }
    )*};
}

refused! {
    weights_that_do_not_sum_to_100_are_refused_with_the_sum: |v| {
        v["dimensions"][0]["weight"] = json!(0.0);
    } => "dimensions", "weights must sum to 100, got 95";
    a_weight_above_100_is_refused_at_its_path: |v| {
        v["dimensions"][2]["weight"] = json!(150.0);
    } => "dimensions[2].weight", "between 0 and 100";
    a_negative_weight_is_refused: |v| {
        v["dimensions"][1]["weight"] = json!(-5.0);
    } => "dimensions[1].weight", "between 0 and 100";
    duplicate_dimension_keys_are_refused: |v| {
        v["dimensions"][1]["key"] = json!("industry_position");
    } => "dimensions[1].key", "duplicate";
    an_unknown_key_in_a_dimension_is_refused: |v| {
        v["dimensions"][0]["colour"] = json!("red");
    } => "dimensions[0].colour", "unknown key";
    an_unknown_key_in_params_is_refused_at_its_path: |v| {
        v["dimensions"][0]["params"]["invert"] = json!(true);
    } => "dimensions[0].params.invert", "unknown key";
    a_missing_params_field_is_named: |v| {
        v["dimensions"][2]["params"] = json!({});
    } => "dimensions[2].params", "horizonDays";
    a_wrongly_typed_param_is_refused_at_its_path: |v| {
        v["dimensions"][2]["params"]["horizonDays"] = json!("thirty");
    } => "dimensions[2].params.horizonDays", "invalid type";
    an_unknown_dimension_kind_is_refused: |v| {
        v["dimensions"][0]["kind"] = json!("ASTROLOGY");
    } => "dimensions[0].kind", "unknown variant";
    an_unknown_top_level_key_is_refused: |v| {
        v["cadence"] = json!(3);
    } => "cadence", "unknown key";
    a_rating_on_an_unknown_field_is_refused: |v| {
        v["dimensions"][0]["params"]["field"] = json!("shoe_size");
    } => "dimensions[0].params.field", "unknown lead field `shoe_size`";
    a_category_field_without_a_value_table_is_refused: |v| {
        v["dimensions"][0]["params"]["field"] = json!("source");
    } => "dimensions[0].params.values", "CATEGORY";
    a_value_table_with_an_unknown_option_is_refused: |v| {
        v["dimensions"][0]["params"] = json!({"field": "source", "values": {"telepathy": 1.0}});
    } => "dimensions[0].params.values.telepathy", "not an option";
    a_value_table_entry_above_one_is_refused: |v| {
        v["dimensions"][0]["params"] = json!({"field": "source", "values": {"referral": 2.0}});
    } => "dimensions[0].params.values.referral", "between 0 and 1";
    breakpoints_that_go_backwards_are_refused: |v| {
        v["dimensions"][0]["params"]["breakpoints"] = json!([[3.0, 0.0], [2.0, 1.0]]);
    } => "dimensions[0].params.breakpoints[1][0]", "strictly increasing";
    an_engagement_cap_of_zero_is_refused: |v| {
        v["dimensions"][1]["params"]["cap"] = json!(0.0);
    } => "dimensions[1].params.cap", "greater than 0";
    an_engagement_on_an_unknown_signal_is_refused: |v| {
        v["dimensions"][1]["params"]["signals"] = json!(["smoke_signal"]);
    } => "dimensions[1].params.signals[0]", "unknown signal `smoke_signal`";
    a_negative_recency_horizon_is_refused: |v| {
        v["dimensions"][2]["params"]["horizonDays"] = json!(-1.0);
    } => "dimensions[2].params.horizonDays", "greater than 0";
    a_predicted_fallback_above_one_is_refused: |v| {
        v["dimensions"][5]["params"] = json!({"fallback": 1.5});
    } => "dimensions[5].params.fallback", "between 0 and 1";
    tiers_out_of_order_are_refused: |v| {
        v["tiers"][1]["minScore"] = json!(90.0);
    } => "tiers[1].minScore", "top down";
    equal_thresholds_are_refused: |v| {
        v["tiers"][2]["minScore"] = json!(50.0);
    } => "tiers[2].minScore", "must be below";
    a_lowest_tier_above_zero_is_refused: |v| {
        v["tiers"][3]["minScore"] = json!(10.0);
    } => "tiers[3].minScore", "must start at 0";
    duplicate_tier_keys_are_refused: |v| {
        v["tiers"][1]["key"] = json!("A");
    } => "tiers[1].key", "duplicate tier key";
    a_zero_cadence_is_refused: |v| {
        v["tiers"][0]["followUpEveryDays"] = json!(0.0);
    } => "tiers[0].followUpEveryDays", "greater than 0";
    an_unknown_override_kind_is_refused: |v| {
        v["overrides"][0]["kind"] = json!("HUNCH");
    } => "overrides[0].kind", "unknown override kind `HUNCH`";
    an_override_naming_an_unknown_tier_is_refused: |v| {
        v["overrides"][2]["params"]["tier"] = json!("S");
    } => "overrides[2].params.tier", "unknown tier `S`";
    a_bant_threshold_above_the_criteria_count_is_refused: |v| {
        v["overrides"][2]["params"]["atLeast"] = json!(5);
    } => "overrides[2].params.atLeast", "between 1 and the number of criteria (4)";
    a_churn_window_too_long_to_keep_is_refused: |v| {
        v["overrides"][1]["params"]["windowDays"] = json!(400);
    } => "overrides[1].params.windowDays", "between 1 and 183";
    an_urgent_window_of_zero_is_refused: |v| {
        v["overrides"][4]["params"]["withinDays"] = json!(0.0);
    } => "overrides[4].params.withinDays", "greater than 0";
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let mut v = general_json();
    v["dimensions"][0]["weight"] = json!(-1.0);
    v["tiers"][3]["minScore"] = json!(5.0);
    v["overrides"][3]["params"]["atMostTier"] = json!("Z");
    let errors = check(&v).unwrap_err();
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert!(paths.contains(&"dimensions[0].weight"), "{paths:?}");
    assert!(paths.contains(&"dimensions"), "{paths:?}");
    assert!(paths.contains(&"tiers[3].minScore"), "{paths:?}");
    assert!(
        paths.contains(&"overrides[3].params.atMostTier"),
        "{paths:?}"
    );
}

#[test]
fn structural_errors_in_several_list_items_are_all_reported() {
    let mut v = general_json();
    v["dimensions"][0]["params"]["oops"] = json!(1);
    v["dimensions"][3]["kind"] = json!("NOPE");
    v["tiers"][1]["minScore"] = json!("high");
    let errors = ModelConfig::from_json(&v).unwrap_err();
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn non_finite_numbers_built_in_code_are_refused() {
    let mut config = templates::general();
    config.dimensions[0].weight = f64::NAN;
    config.tiers[1].min_score = f64::INFINITY;
    let errors = config.validate(&default_catalog()).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.path == "dimensions[0].weight" && e.message.contains("finite"))
    );
    assert!(
        errors
            .iter()
            .any(|e| e.path == "tiers[1].minScore" && e.message.contains("finite"))
    );
}

#[test]
fn a_retired_signal_cannot_be_named_by_a_new_model() {
    let mut catalog = default_catalog();
    catalog.signals[0].retired = true;
    let mut v = general_json();
    v["dimensions"][1]["params"]["signals"] = json!(["website_visit"]);
    let errors = ModelConfig::parse(&v, &catalog).unwrap_err();
    assert_eq!(errors[0].path, "dimensions[1].params.signals[0]");
    assert!(errors[0].message.contains("retired"));
}

#[test]
fn errors_display_their_path_and_message() {
    let e = ConfigError::new("dimensions[2].weight", "must be between 0 and 100, got 150");
    assert_eq!(
        e.to_string(),
        "dimensions[2].weight: must be between 0 and 100, got 150"
    );
}

#[test]
fn the_json_has_exactly_the_contract_shape() {
    let v = general_json();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["dimensions", "overrides", "schemaVersion", "tiers"]);
    assert_eq!(
        v["dimensions"][0],
        json!({"key": "industry_position", "label": "Industry position", "kind": "RATING",
               "weight": 5.0, "params": {"field": "industry_position"}})
    );
    assert_eq!(
        v["tiers"][0],
        json!({"key": "A", "label": "Key", "minScore": 80.0, "followUpEveryDays": 2.0,
               "firstResponseHours": 1.0})
    );
    assert_eq!(
        v["overrides"][4],
        json!({"kind": "URGENT_SIGNAL", "params": {"withinDays": 7.0}})
    );
}

#[test]
fn a_configuration_round_trips_through_json_and_serde() {
    for config in [
        templates::general(),
        templates::saas(),
        templates::medical_devices(),
    ] {
        let text = serde_json::to_string(&config).unwrap();
        let back: ModelConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, config);
        assert_eq!(ModelConfig::from_json(&config.to_json()).unwrap(), config);
    }
}

#[test]
fn serde_refuses_unknown_keys_inside_params_too() {
    let mut v = general_json();
    v["dimensions"][0]["params"]["extra"] = json!(1);
    let err = serde_json::from_value::<ModelConfig>(v).unwrap_err();
    assert!(err.to_string().contains("extra"), "{err}");
}

#[test]
fn the_server_can_assemble_a_model_from_the_contract_inputs() {
    let dims = json!([
        {"key": "radar", "label": "Budget", "kind": "RATING", "weight": 60.0, "params": {"field": "budget"}},
        {"key": "stage", "label": "Stage", "kind": "STAGE", "weight": 40.0, "params": null}
    ]);
    let tiers = json!([
        {"key": "HOT", "label": "Hot", "minScore": 60.0, "followUpEveryDays": 1.0},
        {"key": "WARM", "label": "Warm", "minScore": 0.0, "followUpEveryDays": 7.0}
    ]);
    let config = ModelConfig::parse(
        &json!({"dimensions": dims, "tiers": tiers, "overrides": []}),
        &default_catalog(),
    )
    .unwrap();
    assert_eq!(config.schema_version, SCHEMA_VERSION);
    assert_eq!(config.tier_rank("WARM"), Some(1));
}

#[test]
fn the_general_template_has_the_spec_weights_with_stage_urgency_and_validates_against_the_default_catalog()
 {
    let config = templates::general();
    config.validate(&default_catalog()).unwrap();
    let weights: Vec<(&str, f64)> = config
        .dimensions
        .iter()
        .map(|d| (d.key.as_str(), d.weight))
        .collect();
    assert_eq!(
        weights,
        [
            ("industry_position", 5.0),
            ("activity", 20.0),
            ("recent_interactions", 15.0),
            ("budget", 20.0),
            ("decision_chain", 10.0),
            ("close_probability", 20.0),
            ("stage_progress", 10.0)
        ]
    );
    let tiers: Vec<(&str, f64, f64)> = config
        .tiers
        .iter()
        .map(|t| (t.key.as_str(), t.min_score, t.follow_up_every_days))
        .collect();
    assert_eq!(
        tiers,
        [
            ("A", 80.0, 2.0),
            ("B", 50.0, 5.0),
            ("C", 25.0, 14.0),
            ("D", 0.0, 30.0)
        ]
    );
}

#[test]
fn the_saas_template_has_the_spec_weights_and_needs_no_extra_fields() {
    let config = templates::saas();
    config.validate(&default_catalog()).unwrap();
    assert!(templates::required_fields("saas").is_empty());
    let weights: Vec<f64> = config.dimensions.iter().map(|d| d.weight).collect();
    assert_eq!(weights, [30.0, 15.0, 20.0, 15.0, 10.0, 10.0]);
}

#[test]
fn the_medical_template_validates_only_with_its_extra_fields() {
    let config = templates::medical_devices();
    let errors = config.validate(&default_catalog()).unwrap_err();
    assert!(errors.iter().any(|e| e.message.contains("purchase_cycle")));
    assert!(errors.iter().any(|e| e.message.contains("hospital_type")));
    config.validate(&templates::catalog_for("medical")).unwrap();
    let weights: Vec<f64> = config.dimensions.iter().map(|d| d.weight).collect();
    assert_eq!(weights, [25.0, 25.0, 20.0, 10.0, 10.0, 10.0]);
}

#[test]
fn templates_are_found_by_name() {
    for name in templates::TEMPLATE_NAMES {
        let config = templates::by_name(name).unwrap();
        config.validate(&templates::catalog_for(name)).unwrap();
    }
    assert!(templates::by_name("astrology").is_none());
}

#[test]
fn the_default_catalog_has_the_servers_fields_and_signals() {
    let catalog: Catalog = default_catalog();
    let fields: Vec<&str> = catalog.fields.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        fields,
        [
            "budget",
            "timeline",
            "authority",
            "need",
            "industry_position",
            "decision_chain",
            "source",
            "company_size"
        ]
    );
    assert_eq!(catalog.signals.len(), 17);
    let urgent: Vec<&str> = catalog
        .signals
        .iter()
        .filter(|s| s.urgent)
        .map(|s| s.key.as_str())
        .collect();
    assert_eq!(
        urgent,
        [
            "meeting_request",
            "urgent_quote_request",
            "executive_invited",
            "group_chat_created"
        ]
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<i64>().prop_map(Value::from),
        "[a-zA-Z_]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("RATING"),
            Just("BANT"),
            Just("ENGAGEMENT"),
            Just("COLD"),
            Just("URGENT_SIGNAL"),
            Just("budget"),
            Just("A"),
            Just("field"),
            Just("weight"),
            Just("params")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("dimensions".to_string()),
                    Just("tiers".to_string()),
                    Just("overrides".to_string()),
                    Just("key".to_string()),
                    Just("kind".to_string()),
                    Just("params".to_string()),
                    Just("weight".to_string()),
                    Just("minScore".to_string()),
                    "[a-z]{1,8}".prop_map(String::from)
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn validation_never_panics_on_arbitrary_json(v in arb_json()) {
        let _ = check(&v);
    }

    #[test]
    fn validation_never_panics_on_mutated_templates(
        dim in 0usize..6, value in arb_json(), slot in 0usize..5
    ) {
        let mut v = general_json();
        let key = ["weight", "params", "kind", "key", "label"][slot];
        v["dimensions"][dim][key] = value.clone();
        v["overrides"][dim % 5]["params"] = value;
        let _ = check(&v);
    }
}
