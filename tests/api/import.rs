//! Importing leads from CSV as an admin does it: a dry run that reports
//! every bad row by line and column and writes nothing, the real run that
//! writes the valid rows with their owner, team, stage, outcome and activity
//! history, re-imports that update by external id and otherwise change
//! nothing, imported won and lost leads that teach the predictor, who may
//! import, companies kept apart, and the example file of the README.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use entity::{enums::JobStatus, job_run};
use leadrank::jobs::rescore::{self, Options, Outcome, Trigger};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, eventually, spawn_app};

/// The example file the README points to.
const EXAMPLE: &str = include_str!("../fixtures/import-example.csv");

/// The mixed file's refused rows: (line, column). Line 1 is the header and
/// Ben Okafor's quoted company spans lines 3 and 4, so the rows after it
/// start on line 5.
const MIXED_ERRORS: [(i64, &str); 4] = [(5, "email"), (6, "stage"), (7, "budget"), (8, "email")];

#[tokio::test]
async fn a_dry_run_reports_every_bad_row_by_line_and_column_without_writing() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    app.new_team(&t.token, "East").await;

    let report = import_report(&app, &t.token, &mixed_csv(&t.owner_email), true).await;

    assert_eq!(error_pairs(&report), MIXED_ERRORS, "{report}");
    assert!(message(&report, 5, "email").contains("email"), "{report}");
    assert!(
        message(&report, 6, "stage").contains("\"negotiation\""),
        "the unknown stage is named: {report}"
    );
    assert!(message(&report, 7, "budget").contains("1 to 5"), "{report}");
    assert_eq!(message(&report, 8, "email"), "has the same email as line 2");
    assert_eq!(
        counts(&report),
        (5, 0, 4, 0),
        "created, updated, skipped, unchanged: {report}"
    );
    assert!(report["jobRun"].is_null(), "{report}");
    assert!(report["importRun"].is_null(), "{report}");

    assert_eq!(
        lead_count(&app, &t.token).await,
        0,
        "a dry run writes no lead"
    );
    let runs = app
        .graphql(Some(&t.token), "{ jobRuns { id kind } }", json!({}))
        .await;
    assert_eq!(runs["data"]["jobRuns"], json!([]), "nor any run: {runs}");
}

#[tokio::test]
async fn importing_a_file_twice_writes_its_valid_rows_once_with_their_history() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let east = app.new_team(&t.token, "East").await;
    let csv = mixed_csv(&t.owner_email);

    let report = import_report(&app, &t.token, &csv, false).await;
    assert_eq!(
        counts(&report),
        (5, 0, 4, 0),
        "created, updated, skipped, unchanged: {report}"
    );
    assert_eq!(error_pairs(&report), MIXED_ERRORS, "{report}");
    assert_eq!(report["importRun"]["kind"], "import", "{report}");
    assert_eq!(report["importRun"]["status"], "SUCCEEDED", "{report}");
    // Won and lost leads came in: the predictor is retrained at once.
    let retraining = &report["jobRun"];
    assert_eq!(retraining["trigger"], "IMPORT", "{report}");
    assert_eq!(retraining["kind"], "rescore", "{report}");
    let finished = app.finished_run(&t.token, &retraining["id"]).await;
    assert_eq!(finished["status"], "SUCCEEDED", "{finished}");

    let leads = leads_by_external_id(&app, &t.token).await;
    assert_eq!(
        keys(&leads),
        ["ACME-001", "ACME-002", "ACME-007", "ACME-008", "ACME-009"]
    );

    let ana = &leads["ACME-001"];
    assert_eq!(ana["name"], "Ana Lima");
    assert_eq!(ana["company"], "Lima Foods, Ltd.", "{ana}");
    assert_eq!(ana["email"], "ana@limafoods.test");
    assert_eq!(ana["phone"], "+551155550101");
    assert_eq!(ana["owner"]["id"], t.owner_id.as_str(), "{ana}");
    assert_eq!(ana["team"]["id"], east.as_str(), "{ana}");
    assert_eq!(ana["stage"]["key"], "proposal");
    assert_eq!(ana["status"], "OPEN");
    assert_eq!(ana["attributes"], json!({"budget": 4, "need": 5}));

    let ben = &leads["ACME-002"];
    assert_eq!(ben["company"], "Okafor\nLogistics", "{ben}");
    assert!(
        ben["owner"].is_null(),
        "no owner_email: the shared pool: {ben}"
    );
    assert!(ben["team"].is_null(), "{ben}");
    assert_eq!(ben["stage"]["key"], "initial_contact");
    assert_eq!(ben["status"], "OPEN");

    let wang = &leads["ACME-007"];
    assert_eq!(wang["name"], "王伟");
    assert_eq!(wang["company"], "北京星河科技有限公司", "{wang}");
    assert_eq!(wang["phone"], "+8613800138000");
    assert_eq!(wang["owner"]["id"], t.owner_id.as_str());
    assert_eq!(wang["team"]["id"], east.as_str());
    assert_eq!(wang["stage"]["key"], "needs_discovery");
    assert_eq!(wang["attributes"], json!({"budget": 5, "need": 4}));

    let grace = &leads["ACME-008"];
    assert_eq!(grace["status"], "WON", "{grace}");
    assert_eq!(grace["stage"]["key"], "won");
    assert_eq!(grace["stage"]["kind"], "WON");
    assert_eq!(grace["owner"]["id"], t.owner_id.as_str());
    assert_eq!(grace["team"]["id"], east.as_str());

    let hugo = &leads["ACME-009"];
    assert_eq!(hugo["status"], "LOST", "{hugo}");
    assert_eq!(hugo["stage"]["key"], "lost");
    assert_eq!(hugo["stage"]["kind"], "LOST");
    assert!(hugo["owner"].is_null(), "{hugo}");

    assert_eq!(
        activity_times(ana, "website_visit").len(),
        3,
        "a count of 3 is three visits: {ana}"
    );
    assert_eq!(
        activity_times(grace, "meeting"),
        [
            instant("2026-10-01T00:00:00Z"),
            instant("2026-10-15T00:00:00Z")
        ],
        "{grace}"
    );
    assert_eq!(activity_count(&leads), 5, "{leads:?}");

    for (id, lead) in &leads {
        let score = lead["score"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=100.0).contains(&score), "{id}: {lead}");
        assert!(
            lead["tier"].as_str().is_some_and(|tier| !tier.is_empty()),
            "{id}: {lead}"
        );
        assert_eq!(lead["scoreBreakdown"]["tier"], lead["tier"], "{id}: {lead}");
        assert!(
            (lead["scoreBreakdown"]["total"].as_f64().unwrap_or(-1.0) - score).abs() < 1e-9,
            "{id} was scored as it landed: {lead}"
        );
        let history = lead["scoreHistory"]
            .as_array()
            .unwrap_or_else(|| panic!("{lead}"));
        assert_eq!(
            history.last().map(|event| event["reason"].clone()),
            Some(json!("imported")),
            "{id}: {lead}"
        );
        assert_eq!(lead["version"], 1, "{id}: {lead}");
    }

    let again = import_report(&app, &t.token, &csv, false).await;
    assert_eq!(
        counts(&again),
        (0, 0, 9, 5),
        "created, updated, skipped, unchanged: {again}"
    );
    assert_eq!(error_pairs(&again), MIXED_ERRORS, "{again}");
    assert!(
        again["jobRun"].is_null(),
        "no new outcome to learn from: {again}"
    );
    let after = leads_by_external_id(&app, &t.token).await;
    for (id, lead) in &after {
        assert_eq!(
            lead["version"],
            leads[id.as_str()]["version"],
            "{id}: {lead}"
        );
    }
    assert_eq!(activity_count(&after), 5, "no activity twice: {after:?}");
    assert_eq!(after, leads, "re-importing the file changed a lead");
}

#[tokio::test]
async fn a_changed_row_updates_its_lead_by_external_id_instead_of_adding_another() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let first_file = "external_id,name,company,email,budget\n\
        CRM-7,Mia Wong,Wong Design,mia@wongdesign.test,3\n\
        CRM-8,Noah Kim,Kim Consulting,noah@kimconsulting.test,4\n";
    let first = import_report(&app, &t.token, first_file, false).await;
    assert_eq!(counts(&first), (2, 0, 0, 0), "{first}");
    let before = leads_by_external_id(&app, &t.token).await;

    let changed_file = first_file.replace("Wong Design,", "Wong Design Studio,");
    let second = import_report(&app, &t.token, &changed_file, false).await;
    assert_eq!(second["errors"], json!([]), "{second}");
    assert_eq!(
        counts(&second),
        (0, 1, 1, 1),
        "created, updated, skipped, unchanged: {second}"
    );
    assert!(second["jobRun"].is_null(), "{second}");

    assert_eq!(lead_count(&app, &t.token).await, 2, "no lead was added");
    let after = leads_by_external_id(&app, &t.token).await;
    let mia = &after["CRM-7"];
    assert_eq!(mia["id"], before["CRM-7"]["id"], "the same lead: {mia}");
    assert_eq!(mia["company"], "Wong Design Studio");
    assert_eq!(mia["name"], "Mia Wong");
    assert_eq!(mia["attributes"], json!({"budget": 3}));
    assert_eq!(
        mia["version"].as_i64(),
        before["CRM-7"]["version"].as_i64().map(|v| v + 1),
        "{mia}"
    );
    assert_eq!(
        after["CRM-8"], before["CRM-8"],
        "the unchanged row's lead is untouched"
    );
}

#[tokio::test]
async fn imported_closed_leads_teach_the_predictor_which_open_leads_will_close() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;

    // 12 of each outcome: above the 10 per outcome the predictor needs.
    let report = import_report(&app, &t.token, &history_csv(), false).await;
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(counts(&report), (26, 0, 0, 0), "{report}");
    assert_eq!(report["jobRun"]["trigger"], "IMPORT", "{report}");
    let retrained = app.finished_run(&t.token, &report["jobRun"]["id"]).await;
    assert_eq!(retrained["status"], "SUCCEEDED", "{retrained}");
    let leads = leads_by_external_id(&app, &t.token).await;
    for key in ["OPEN-STRONG", "OPEN-WEAK"] {
        assert!(
            leads[key]["closeProbability"].is_f64(),
            "the import's own run trained the predictor: {}",
            leads[key]
        );
    }

    let run = rescore_now(&app, &t.id).await;
    assert_eq!(run.status, JobStatus::Succeeded, "{run:?}");
    let leads = leads_by_external_id(&app, &t.token).await;
    let probability = |key: &str| close_probability(&leads, key);
    let (strong, weak) = (probability("OPEN-STRONG"), probability("OPEN-WEAK"));
    assert!(strong > weak, "strong {strong} vs weak {weak}");
}

#[tokio::test]
async fn a_models_evaluation_shows_how_calibrated_its_scores_are_beside_the_close_probability() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let query = "{ activeScoringModel { id } }";
    let model = app.graphql(Some(&t.token), query, json!({})).await;
    let model_id = model["data"]["activeScoringModel"]["id"].clone();
    let evaluate = || {
        app.graphql(
            Some(&t.token),
            "query($id: ID!) { modelEvaluation(modelId: $id) { closedLeads brier
                reliability { lower upper leads meanPredicted wonRate }
                closeProbability { trainedAt trainingLeads trainingWon outOfSample heldOutLeads
                    heldOutWon auc brier logLoss reliability { leads meanPredicted wonRate } } } }",
            json!({"id": model_id}),
        )
    };
    let before = evaluate().await;
    assert!(before["errors"].is_null(), "{before}");
    assert!(
        before["data"]["modelEvaluation"]["closeProbability"].is_null(),
        "no predictor before any closed lead: {before}"
    );

    let report = import_report(&app, &t.token, &history_csv(), false).await;
    app.finished_run(&t.token, &report["jobRun"]["id"]).await;
    let body = evaluate().await;
    assert!(body["errors"].is_null(), "{body}");
    let e = &body["data"]["modelEvaluation"];
    // The scores read as probabilities: ten bins holding every closed lead.
    let bins = e["reliability"].as_array().unwrap();
    assert_eq!(bins.len(), 10);
    let binned: i64 = bins.iter().map(|b| b["leads"].as_i64().unwrap()).sum();
    assert_eq!(binned, e["closedLeads"].as_i64().unwrap(), "{e}");
    let brier = e["brier"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&brier), "{e}");
    // The close-probability model: 24 closed leads, half won.
    let p = &e["closeProbability"];
    assert_eq!(
        (p["trainingLeads"].as_i64(), p["trainingWon"].as_i64()),
        (Some(24), Some(12)),
        "{p}"
    );
    let brier = p["brier"].as_f64().unwrap();
    assert!(
        (0.0..=0.25).contains(&brier),
        "better than a coin on this history: {p}"
    );
    let held_out: i64 = p["reliability"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["leads"].as_i64().unwrap())
        .sum();
    if p["outOfSample"] == true {
        assert_eq!(held_out, p["heldOutLeads"].as_i64().unwrap(), "{p}");
    } else {
        assert_eq!((held_out, p["heldOutLeads"].as_i64()), (0, Some(0)), "{p}");
    }
}

#[tokio::test]
async fn each_team_with_enough_history_gets_a_predictor_of_its_own() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    app.new_team(&t.token, "East").await;
    app.new_team(&t.token, "West").await;
    // East wins the big budgets; West, selling something else, loses them.
    let mut csv = String::from("external_id,name,company,team,status,closed_at,budget\n");
    for i in 1..=12 {
        let closed = (Utc::now() - Duration::days(20 + i)).format("%Y-%m-%d");
        for (team, big, small) in [("East", "won", "lost"), ("West", "lost", "won")] {
            csv.push_str(&format!(
                "{team}-B{i},{team} big {i},{team} Big {i},{team},{big},{closed},5\n"
            ));
            csv.push_str(&format!(
                "{team}-S{i},{team} small {i},{team} Small {i},{team},{small},{closed},1\n"
            ));
        }
    }
    csv.push_str("EAST-OPEN,East prospect,East Prospect Co,East,open,,5\n");
    csv.push_str("WEST-OPEN,West prospect,West Prospect Co,West,open,,5\n");
    let report = import_report(&app, &t.token, &csv, false).await;
    assert_eq!(report["errors"], json!([]), "{report}");
    app.finished_run(&t.token, &report["jobRun"]["id"]).await;
    let run = rescore_now(&app, &t.id).await;
    assert_eq!(run.status, JobStatus::Succeeded, "{run:?}");

    let leads = leads_by_external_id(&app, &t.token).await;
    let probability = |key: &str| close_probability(&leads, key);
    // The same budget, the same everything but the team: the tenant-wide
    // history cancels out, each team's does not.
    let (east, west) = (probability("EAST-OPEN"), probability("WEST-OPEN"));
    assert!(east > west + 0.2, "East {east} vs West {west}");
    let predictors = entity::predictor_model::Entity::find()
        .filter(entity::predictor_model::Column::TenantId.eq(t.id.parse::<uuid::Uuid>().unwrap()))
        .filter(entity::predictor_model::Column::Active.eq(true))
        .all(&app.system_db)
        .await
        .unwrap();
    assert_eq!(
        predictors.len(),
        3,
        "the tenant's and one per team: {predictors:?}"
    );
    assert_eq!(predictors.iter().filter(|p| p.team_id.is_none()).count(), 1);
}

#[tokio::test]
async fn an_unknown_column_or_signal_is_reported_on_the_header_line_without_writing() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let csv = "name,company,budgett,email,signal:nope\n\
        Ana Lima,Lima Foods,4,ana@limafoods.test,2\n\
        Ben Okafor,Okafor Logistics,3,ben@okafor.test,1\n";

    let report = import_report(&app, &t.token, csv, false).await;

    assert_eq!(
        error_pairs(&report),
        [(1_i64, "budgett"), (1, "signal:nope")],
        "{report}"
    );
    assert!(
        message(&report, 1, "budgett").starts_with("unknown column"),
        "{report}"
    );
    assert!(
        message(&report, 1, "signal:nope").contains("\"nope\""),
        "{report}"
    );
    assert_eq!(
        counts(&report),
        (0, 0, 2, 0),
        "created, updated, skipped, unchanged: {report}"
    );
    assert!(report["importRun"].is_null(), "{report}");
    assert!(report["jobRun"].is_null(), "{report}");
    assert_eq!(lead_count(&app, &t.token).await, 0);
    let runs = app
        .graphql(Some(&t.token), "{ jobRuns { id kind } }", json!({}))
        .await;
    assert_eq!(runs["data"]["jobRuns"], json!([]), "{runs}");
}

#[tokio::test]
async fn only_admins_may_import() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let rep = app.user_with_role(&t, "REP").await;
    let manager = app.user_with_role(&t, "MANAGER").await;
    for (role, token) in [("REP", &rep), ("MANAGER", &manager)] {
        for dry_run in [false, true] {
            let body = import_leads(&app, token, PEOPLE_CSV, dry_run).await;
            assert_eq!(
                error_code(&body),
                "FORBIDDEN",
                "{role}, dry run {dry_run}: {body}"
            );
        }
    }
    assert_eq!(lead_count(&app, &t.token).await, 0);

    let admin = app.user_with_role(&t, "ADMIN").await;
    let checked = import_report(&app, &admin, PEOPLE_CSV, true).await;
    assert_eq!(counts(&checked), (3, 0, 0, 0), "{checked}");
    let written = import_report(&app, &t.token, PEOPLE_CSV, false).await;
    assert_eq!(counts(&written), (3, 0, 0, 0), "{written}");
    assert_eq!(lead_count(&app, &t.token).await, 3);
}

#[tokio::test]
async fn each_company_imports_into_its_own_leads_because_external_ids_are_per_company() {
    let app = spawn_app().await;
    let a = app.sign_up_tenant("acme").await;
    let b = app.sign_up_tenant("globex").await;

    let first = import_report(&app, &a.token, PEOPLE_CSV, false).await;
    assert_eq!(counts(&first), (3, 0, 0, 0), "{first}");
    let a_before = leads_by_external_id(&app, &a.token).await;

    // The same external ids and emails are free in another company.
    let second = import_report(&app, &b.token, PEOPLE_CSV, false).await;
    assert_eq!(second["errors"], json!([]), "{second}");
    assert_eq!(counts(&second), (3, 0, 0, 0), "{second}");
    let b_leads = leads_by_external_id(&app, &b.token).await;
    assert_eq!(keys(&b_leads), ["C-1", "C-2", "C-3"]);
    for (key, lead) in &b_leads {
        assert_ne!(lead["id"], a_before[key.as_str()]["id"], "{key}");
        let theirs = a_before[key.as_str()]["id"].as_str().unwrap_or_default();
        assert!(
            app.lead_by_id_json(&b.token, theirs).await.is_null(),
            "{key}: the first company's lead is invisible"
        );
    }

    // The second company changes its own lead, not the first one's.
    let changed = PEOPLE_CSV.replace("Hoffmann GmbH", "Hoffmann AG");
    let update = import_report(&app, &b.token, &changed, false).await;
    assert_eq!(
        counts(&update),
        (0, 1, 2, 2),
        "created, updated, skipped, unchanged: {update}"
    );
    let b_after = leads_by_external_id(&app, &b.token).await;
    assert_eq!(b_after["C-1"]["id"], b_leads["C-1"]["id"]);
    assert_eq!(b_after["C-1"]["company"], "Hoffmann AG");
    assert_eq!(b_after["C-1"]["version"], 2);
    assert_eq!(
        leads_by_external_id(&app, &a.token).await,
        a_before,
        "the first company's leads are as they were"
    );

    // Nor may it hand a lead to the first company's people.
    let foreign_owner = format!(
        "external_id,name,owner_email\nC-9,Someone Else,{}\n",
        a.owner_email
    );
    let refused = import_report(&app, &b.token, &foreign_owner, true).await;
    assert_eq!(error_pairs(&refused), [(2_i64, "owner_email")], "{refused}");
    assert_eq!(lead_count(&app, &a.token).await, 3);
    assert_eq!(lead_count(&app, &b.token).await, 3);
}

#[tokio::test]
async fn the_example_file_of_the_readme_imports_without_a_single_error() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    assert_eq!(
        t.owner_email, "owner@acme.test",
        "the example file assigns leads to this owner"
    );

    let report = import_report(&app, &t.token, EXAMPLE, false).await;
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(
        counts(&report),
        (6, 0, 0, 0),
        "created, updated, skipped, unchanged: {report}"
    );
    assert_eq!(report["jobRun"]["trigger"], "IMPORT", "{report}");
    let retrained = app.finished_run(&t.token, &report["jobRun"]["id"]).await;
    assert_eq!(retrained["status"], "SUCCEEDED", "{retrained}");

    let leads = leads_by_external_id(&app, &t.token).await;
    assert_eq!(leads.len(), 6);
    let zhang = &leads["CRM-1002"];
    assert_eq!(zhang["name"], "张伟");
    assert_eq!(zhang["company"], "杭州云帆网络科技有限公司");
    assert_eq!(zhang["owner"]["id"], t.owner_id.as_str(), "{zhang}");
    assert_eq!(leads["CRM-1003"]["company"], "Moreau & Fils, SARL");
    assert!(leads["CRM-1003"]["owner"].is_null());
    assert_eq!(leads["CRM-1004"]["status"], "WON");
    assert_eq!(leads["CRM-1005"]["status"], "LOST");
    let olivia = &leads["CRM-1001"];
    assert_eq!(activity_times(olivia, "website_visit").len(), 6, "{olivia}");
    assert_eq!(
        activity_times(olivia, "meeting"),
        [
            instant("2026-09-10T00:00:00Z"),
            instant("2026-10-02T00:00:00Z")
        ],
        "{olivia}"
    );
}

/// Three people any company may import.
const PEOPLE_CSV: &str = "external_id,name,company,email,budget\n\
    C-1,Lena Hoffmann,Hoffmann GmbH,lena@hoffmann.test,4\n\
    C-2,李娜,上海明远贸易有限公司,lina@mingyuan.test,3\n\
    C-3,Omar Haddad,Haddad Trading,omar@haddad.test,2\n";

/// A file with a byte order mark, good rows and bad ones; see
/// [`MIXED_ERRORS`]. Valid: ACME-001 (3 website visits), ACME-002 (a quoted
/// company over two lines), ACME-007 (Chinese), ACME-008 (won, 2 meetings)
/// and ACME-009 (lost).
fn mixed_csv(owner: &str) -> String {
    format!(
        "\u{feff}external_id,name,company,email,phone,owner_email,team,stage,status,closed_at,budget,need,source,signal:website_visit,signal:meeting\n\
         ACME-001,Ana Lima,\"Lima Foods, Ltd.\",ana@limafoods.test,+55 11 5555-0101,{owner},East,proposal,open,,4,5,web form,3,\n\
         ACME-002,Ben Okafor,\"Okafor\nLogistics\",ben@okafor-logistics.test,,,,initial_contact,,,3,3,referral,,\n\
         ACME-003,Carla Ruiz,Ruiz Partners,carla(at)ruizpartners.test,,,,lead,,,2,2,,,\n\
         ACME-004,Dev Patel,Patel Analytics,dev@patelanalytics.test,,,,negotiation,,,3,4,,,\n\
         ACME-005,Eve Martin,Martin Studio,eve@martinstudio.test,,,,lead,,,7,3,,,\n\
         ACME-006,Ana L.,Lima Foods Export,ANA@LimaFoods.test,,,,lead,,,3,3,,,\n\
         ACME-007,王伟,北京星河科技有限公司,wangwei@xinghe.test,+86 138 0013 8000,{owner},East,needs_discovery,open,,5,4,展会,,\n\
         ACME-008,Grace Chen,Chen Robotics,grace@chenrobotics.test,,{owner},East,,won,2026-10-20,5,5,referral,,2026-10-01;2026-10-15\n\
         ACME-009,Hugo Brandt,Brandt Metals,hugo@brandtmetals.test,,,,,lost,2026-09-12,1,2,cold call,,\n"
    )
}

/// 12 won leads rated high, 12 lost ones rated low, closed over the last
/// weeks, and two open leads: one strong, one weak.
#[tokio::test]
async fn a_bulk_import_leaves_postgresql_planning_with_the_rows_it_wrote() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let mut csv = String::from("external_id,name,company,budget\n");
    for i in 1..=1000 {
        csv.push_str(&format!("BULK-{i},Lead {i},Account {i},{}\n", 1 + i % 5));
    }

    let report = import_report(&app, &t.token, &csv, false).await;
    assert_eq!(report["errors"], json!([]), "{report}");
    assert_eq!(counts(&report).0, 1000, "{report}");

    // The re-score after an import reads what it wrote at once; with the
    // statistics of an empty tenant PostgreSQL chose a plan that took
    // minutes. SQLite keeps no statistics unless asked.
    if app.db.get_database_backend() == sea_orm::DbBackend::Postgres {
        use sea_orm::ConnectionTrait;
        let rows = app
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT relname::text AS name FROM pg_stat_user_tables \
                 WHERE relname IN ('leads', 'lead_scores') AND last_analyze IS NOT NULL \
                 ORDER BY relname",
            ))
            .await
            .expect("read pg_stat_user_tables");
        let analyzed: Vec<String> = rows
            .iter()
            .map(|row| row.try_get::<String>("", "name").expect("a table name"))
            .collect();
        let names: Vec<&str> = analyzed.iter().map(String::as_str).collect();
        assert_eq!(names, ["lead_scores", "leads"], "{analyzed:?}");
    }
}

fn history_csv() -> String {
    let mut csv =
        String::from("external_id,name,company,status,closed_at,budget,authority,need,timeline\n");
    for i in 1..=12 {
        let closed = (Utc::now() - Duration::days(20 + i)).format("%Y-%m-%d");
        csv.push_str(&format!(
            "WON-{i},Winner {i},Won Account {i},won,{closed},5,5,5,5\n"
        ));
        csv.push_str(&format!(
            "LOST-{i},Loser {i},Lost Account {i},lost,{closed},1,1,1,1\n"
        ));
    }
    csv.push_str("OPEN-STRONG,Strong Prospect,Strong Prospect Co,open,,5,5,5,5\n");
    csv.push_str("OPEN-WEAK,Weak Prospect,Weak Prospect Co,open,,1,1,1,1\n");
    csv
}

const REPORT: &str = "created updated skipped unchanged errors { line field message }
    jobRun { id kind trigger status } importRun { id kind status }";

const LEAD: &str = "id externalId name company email phone status version score tier
    closeProbability attributes owner { id } team { id } stage { key kind }
    scoreBreakdown { total tier } activities { signalKey occurredAt } scoreHistory { reason newTier }";

#[tokio::test]
async fn a_lead_from_the_future_or_worth_less_than_nothing_is_refused_by_every_way_in() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let later = (Utc::now() + Duration::days(2)).to_rfc3339();

    let future = app
        .create_lead_json(&t.token, json!({"name": "Later", "createdAt": later}))
        .await;
    assert_eq!(error_code(&future), "BAD_USER_INPUT", "{future}");
    assert_eq!(
        future["errors"][0]["extensions"]["field"],
        "input.createdAt"
    );
    let negative = app
        .create_lead_json(&t.token, json!({"name": "Owes us", "dealValue": -5}))
        .await;
    assert_eq!(error_code(&negative), "BAD_USER_INPUT", "{negative}");
    assert_eq!(
        negative["errors"][0]["extensions"]["field"],
        "input.dealValue"
    );

    let csv = format!(
        "name,created_at,deal_value\nLater,{},\nOwes us,,-5\n",
        &later[..10]
    );
    let report = import_report(&app, &t.token, &csv, false).await;
    assert_eq!(
        message(&report, 2, "created_at"),
        future["errors"][0]["message"],
        "{report}"
    );
    assert_eq!(
        message(&report, 3, "deal_value"),
        negative["errors"][0]["message"],
        "{report}"
    );
    assert_eq!(lead_count(&app, &t.token).await, 0, "nothing is written");
}

/// Runs `importLeads` and returns the whole response.
async fn import_leads(app: &TestApp, token: &str, csv: &str, dry_run: bool) -> Value {
    app.graphql(
        Some(token),
        &format!(
            "mutation($input: ImportLeadsInput!) {{ importLeads(input: $input) {{ {REPORT} }} }}"
        ),
        json!({"input": {"csv": csv, "dryRun": dry_run}}),
    )
    .await
}

/// Runs an import that must be accepted, and returns its report.
pub(crate) async fn import_report(app: &TestApp, token: &str, csv: &str, dry_run: bool) -> Value {
    let body = import_leads(app, token, csv, dry_run).await;
    assert!(body["errors"].is_null(), "importLeads failed: {body}");
    body["data"]["importLeads"].clone()
}

/// (created, updated, skipped, unchanged) of a report.
pub(crate) fn counts(report: &Value) -> (i64, i64, i64, i64) {
    let n = |key: &str| {
        report[key]
            .as_i64()
            .unwrap_or_else(|| panic!("no {key}: {report}"))
    };
    (n("created"), n("updated"), n("skipped"), n("unchanged"))
}

/// The (line, column) of each of a report's errors, in order.
fn error_pairs(report: &Value) -> Vec<(i64, &str)> {
    report["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors list: {report}"))
        .iter()
        .map(|e| {
            (
                e["line"].as_i64().unwrap_or_default(),
                e["field"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}

/// The message of the error on `line` in `field`.
fn message<'a>(report: &'a Value, line: i64, field: &str) -> &'a str {
    report["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["line"] == line && e["field"] == field)
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error on line {line} in {field}: {report}"))
}

async fn lead_count(app: &TestApp, token: &str) -> i64 {
    let body = app
        .graphql(Some(token), "{ leads { totalCount } }", json!({}))
        .await;
    body["data"]["leads"]["totalCount"]
        .as_i64()
        .unwrap_or_else(|| panic!("{body}"))
}

/// Every lead the caller sees (at most 50), by external id.
/// The lead's `closeProbability`; fails the test when it has none.
fn close_probability(leads: &BTreeMap<String, Value>, key: &str) -> f64 {
    leads[key]["closeProbability"]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} has no close probability: {}", leads[key]))
}

async fn leads_by_external_id(app: &TestApp, token: &str) -> BTreeMap<String, Value> {
    let body = app
        .graphql(
            Some(token),
            &format!("{{ leads(first: 50) {{ totalCount edges {{ node {{ {LEAD} }} }} }} }}"),
            json!({}),
        )
        .await;
    let edges = body["data"]["leads"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(
        body["data"]["leads"]["totalCount"].as_u64(),
        Some(edges.len() as u64),
        "{body}"
    );
    edges
        .iter()
        .map(|e| {
            (
                e["node"]["externalId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                e["node"].clone(),
            )
        })
        .collect()
}

fn keys(leads: &BTreeMap<String, Value>) -> Vec<&str> {
    leads.keys().map(String::as_str).collect()
}

/// When `lead`'s activities of `signal` happened, oldest first.
fn activity_times(lead: &Value, signal: &str) -> Vec<DateTime<Utc>> {
    let mut times: Vec<DateTime<Utc>> = lead["activities"]
        .as_array()
        .unwrap_or_else(|| panic!("no activities: {lead}"))
        .iter()
        .filter(|a| a["signalKey"] == signal)
        .map(|a| instant(a["occurredAt"].as_str().unwrap_or_default()))
        .collect();
    times.sort();
    times
}

fn activity_count(leads: &BTreeMap<String, Value>) -> usize {
    leads
        .values()
        .map(|l| l["activities"].as_array().map_or(0, Vec::len))
        .sum()
}

fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// Runs the re-scoring job now, waiting (up to 20 seconds) while a run
/// already under way, such as the one an import queued, holds the lease.
/// That run has no handle to await: its row says when it is done, and
/// only then is the lease tried again.
pub(crate) async fn rescore_now(app: &TestApp, tenant: &str) -> job_run::Model {
    let tenant: uuid::Uuid = tenant.parse().expect("a tenant id");
    let options = Options {
        holder: "import-tests".into(),
        ..Options::default()
    };
    let db = &app.db;
    eventually(
        "the tenant's re-scoring lease is free for a run",
        std::time::Duration::from_secs(20),
        || async {
            let outcome = rescore::run(db, tenant, Trigger::Manual, None, Utc::now(), &options)
                .await
                .expect("the run is recorded");
            match outcome {
                Outcome::Finished(run) => Some(*run),
                Outcome::Busy => {
                    wait_until_no_run_is_under_way(db, tenant).await;
                    None
                }
            }
        },
    )
    .await
}

/// Returns once the tenant's latest re-scoring run is neither queued nor
/// running; reads only, so the run it waits for is never slowed.
async fn wait_until_no_run_is_under_way(db: &sea_orm::DatabaseConnection, tenant: uuid::Uuid) {
    loop {
        let latest = rescore::latest_run(db, tenant)
            .await
            .expect("the runs are read");
        let under_way =
            latest.is_some_and(|run| matches!(run.status, JobStatus::Queued | JobStatus::Running));
        if !under_way {
            return;
        }
        tokio::task::yield_now().await;
    }
}
