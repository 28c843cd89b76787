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
use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{Connection, GraphqlErrors, Id, StageRef, TestApp, eventually, spawn_app};

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

    assert_eq!(error_pairs(&report), MIXED_ERRORS, "{report:?}");
    assert!(message(&report, 5, "email").contains("email"), "{report:?}");
    assert!(
        message(&report, 6, "stage").contains("\"negotiation\""),
        "the unknown stage is named: {report:?}"
    );
    assert!(
        message(&report, 7, "budget").contains("1 to 5"),
        "{report:?}"
    );
    assert_eq!(message(&report, 8, "email"), "has the same email as line 2");
    assert_eq!(
        counts(&report),
        (5, 0, 4, 0),
        "created, updated, skipped, unchanged: {report:?}"
    );
    assert!(report.job_run.is_none(), "{report:?}");
    assert!(report.import_run.is_none(), "{report:?}");

    assert_eq!(
        lead_count(&app, &t.token).await,
        0,
        "a dry run writes no lead"
    );
    assert!(job_runs(&app, &t.token).await.is_empty(), "nor any run");
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
        "created, updated, skipped, unchanged: {report:?}"
    );
    assert_eq!(error_pairs(&report), MIXED_ERRORS, "{report:?}");
    let import_run = report
        .import_run
        .as_ref()
        .unwrap_or_else(|| panic!("the import is recorded: {report:?}"));
    assert_eq!(import_run.kind, "import", "{report:?}");
    assert_eq!(import_run.status, "SUCCEEDED", "{report:?}");
    // Won and lost leads came in: the predictor is retrained at once.
    let retraining = retraining(&report);
    assert_eq!(retraining.kind, "rescore", "{report:?}");
    let finished = app.finished_run(&t.token, &retraining.id).await;
    assert_eq!(finished.status, "SUCCEEDED", "{finished:?}");

    let leads = leads_by_external_id(&app, &t.token).await;
    assert_eq!(
        keys(&leads),
        ["ACME-001", "ACME-002", "ACME-007", "ACME-008", "ACME-009"]
    );

    let ana = &leads["ACME-001"];
    assert_eq!(ana.name, "Ana Lima");
    assert_eq!(ana.company.as_deref(), Some("Lima Foods, Ltd."), "{ana:?}");
    assert_eq!(ana.email.as_deref(), Some("ana@limafoods.test"));
    assert_eq!(ana.phone.as_deref(), Some("+551155550101"));
    assert_eq!(ana.owner_id(), Some(t.owner_id.as_str()), "{ana:?}");
    assert_eq!(ana.team_id(), Some(east.as_str()), "{ana:?}");
    assert_eq!(ana.stage.key, "proposal");
    assert_eq!(ana.status, "OPEN");
    assert_eq!(ana.attributes, json!({"budget": 4, "need": 5}));

    let ben = &leads["ACME-002"];
    assert_eq!(ben.company.as_deref(), Some("Okafor\nLogistics"), "{ben:?}");
    assert!(
        ben.owner.is_none(),
        "no owner_email: the shared pool: {ben:?}"
    );
    assert!(ben.team.is_none(), "{ben:?}");
    assert_eq!(ben.stage.key, "initial_contact");
    assert_eq!(ben.status, "OPEN");

    let wang = &leads["ACME-007"];
    assert_eq!(wang.name, "王伟");
    assert_eq!(
        wang.company.as_deref(),
        Some("北京星河科技有限公司"),
        "{wang:?}"
    );
    assert_eq!(wang.phone.as_deref(), Some("+8613800138000"));
    assert_eq!(wang.owner_id(), Some(t.owner_id.as_str()));
    assert_eq!(wang.team_id(), Some(east.as_str()));
    assert_eq!(wang.stage.key, "needs_discovery");
    assert_eq!(wang.attributes, json!({"budget": 5, "need": 4}));

    let grace = &leads["ACME-008"];
    assert_eq!(grace.status, "WON", "{grace:?}");
    assert_eq!(grace.stage.key, "won");
    assert_eq!(grace.stage.kind, "WON");
    assert_eq!(grace.owner_id(), Some(t.owner_id.as_str()));
    assert_eq!(grace.team_id(), Some(east.as_str()));

    let hugo = &leads["ACME-009"];
    assert_eq!(hugo.status, "LOST", "{hugo:?}");
    assert_eq!(hugo.stage.key, "lost");
    assert_eq!(hugo.stage.kind, "LOST");
    assert!(hugo.owner.is_none(), "{hugo:?}");

    assert_eq!(
        activity_times(ana, "website_visit").len(),
        3,
        "a count of 3 is three visits: {ana:?}"
    );
    assert_eq!(
        activity_times(grace, "meeting"),
        [
            instant("2026-10-01T00:00:00Z"),
            instant("2026-10-15T00:00:00Z")
        ],
        "{grace:?}"
    );
    assert_eq!(activity_count(&leads), 5, "{leads:?}");

    for (id, lead) in &leads {
        assert!((0.0..=100.0).contains(&lead.score), "{id}: {lead:?}");
        assert!(!lead.tier.is_empty(), "{id}: {lead:?}");
        assert_eq!(lead.score_breakdown.tier, lead.tier, "{id}: {lead:?}");
        assert!(
            (lead.score_breakdown.total - lead.score).abs() < 1e-9,
            "{id} was scored as it landed: {lead:?}"
        );
        assert_eq!(
            lead.score_history.last().map(|event| event.reason.as_str()),
            Some("imported"),
            "{id}: {lead:?}"
        );
        assert_eq!(lead.version, 1, "{id}: {lead:?}");
    }

    let again = import_report(&app, &t.token, &csv, false).await;
    assert_eq!(
        counts(&again),
        (0, 0, 9, 5),
        "created, updated, skipped, unchanged: {again:?}"
    );
    assert_eq!(error_pairs(&again), MIXED_ERRORS, "{again:?}");
    assert!(
        again.job_run.is_none(),
        "no new outcome to learn from: {again:?}"
    );
    let after = leads_by_external_id(&app, &t.token).await;
    for (id, lead) in &after {
        assert_eq!(lead.version, leads[id.as_str()].version, "{id}: {lead:?}");
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
    assert_eq!(counts(&first), (2, 0, 0, 0), "{first:?}");
    let before = leads_by_external_id(&app, &t.token).await;

    let changed_file = first_file.replace("Wong Design,", "Wong Design Studio,");
    let second = import_report(&app, &t.token, &changed_file, false).await;
    assert!(second.errors.is_empty(), "{second:?}");
    assert_eq!(
        counts(&second),
        (0, 1, 1, 1),
        "created, updated, skipped, unchanged: {second:?}"
    );
    assert!(second.job_run.is_none(), "{second:?}");

    assert_eq!(lead_count(&app, &t.token).await, 2, "no lead was added");
    let after = leads_by_external_id(&app, &t.token).await;
    let mia = &after["CRM-7"];
    assert_eq!(mia.id, before["CRM-7"].id, "the same lead: {mia:?}");
    assert_eq!(mia.company.as_deref(), Some("Wong Design Studio"));
    assert_eq!(mia.name, "Mia Wong");
    assert_eq!(mia.attributes, json!({"budget": 3}));
    assert_eq!(mia.version, before["CRM-7"].version + 1, "{mia:?}");
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
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(counts(&report), (26, 0, 0, 0), "{report:?}");
    let retrained = app.finished_run(&t.token, &retraining(&report).id).await;
    assert_eq!(retrained.status, "SUCCEEDED", "{retrained:?}");
    let leads = leads_by_external_id(&app, &t.token).await;
    for key in ["OPEN-STRONG", "OPEN-WEAK"] {
        assert!(
            leads[key].close_probability.is_some(),
            "the import's own run trained the predictor: {:?}",
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
    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Evaluation {
        closed_leads: i64,
        brier: Option<f64>,
        reliability: Vec<Bin>,
        close_probability: Option<Predictor>,
    }
    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Bin {
        #[serde(default)]
        lower: Option<f64>,
        #[serde(default)]
        upper: Option<f64>,
        leads: i64,
        mean_predicted: Option<f64>,
        won_rate: Option<f64>,
    }
    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Predictor {
        trained_at: String,
        training_leads: i64,
        training_won: i64,
        out_of_sample: bool,
        held_out_leads: i64,
        held_out_won: i64,
        auc: Option<f64>,
        brier: Option<f64>,
        log_loss: Option<f64>,
        reliability: Vec<Bin>,
    }
    let model: Id = app
        .root(Some(&t.token), "{ activeScoringModel { id } }", json!({}))
        .await;
    let evaluate = || async {
        app.root::<Evaluation>(
            Some(&t.token),
            "query($id: ID!) { modelEvaluation(modelId: $id) { closedLeads brier
                reliability { lower upper leads meanPredicted wonRate }
                closeProbability { trainedAt trainingLeads trainingWon outOfSample heldOutLeads
                    heldOutWon auc brier logLoss reliability { leads meanPredicted wonRate } } } }",
            json!({"id": model.id}),
        )
        .await
    };
    let before = evaluate().await;
    assert!(
        before.close_probability.is_none(),
        "no predictor before any closed lead: {before:?}"
    );

    let report = import_report(&app, &t.token, &history_csv(), false).await;
    app.finished_run(&t.token, &retraining(&report).id).await;
    let e = evaluate().await;
    // The scores read as probabilities: ten bins holding every closed lead.
    assert_eq!(e.reliability.len(), 10);
    let binned: i64 = e.reliability.iter().map(|b| b.leads).sum();
    assert_eq!(binned, e.closed_leads, "{e:?}");
    let brier = e.brier.unwrap_or_else(|| panic!("a Brier score: {e:?}"));
    assert!((0.0..=1.0).contains(&brier), "{e:?}");
    // The close-probability model: 24 closed leads, half won.
    let p = e
        .close_probability
        .as_ref()
        .unwrap_or_else(|| panic!("a predictor after the import: {e:?}"));
    assert_eq!((p.training_leads, p.training_won), (24, 12), "{p:?}");
    let brier = p.brier.unwrap_or_else(|| panic!("a Brier score: {p:?}"));
    assert!(
        (0.0..=0.25).contains(&brier),
        "better than a coin on this history: {p:?}"
    );
    let held_out: i64 = p.reliability.iter().map(|b| b.leads).sum();
    if p.out_of_sample {
        assert_eq!(held_out, p.held_out_leads, "{p:?}");
    } else {
        assert_eq!((held_out, p.held_out_leads), (0, 0), "{p:?}");
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
    assert!(report.errors.is_empty(), "{report:?}");
    app.finished_run(&t.token, &retraining(&report).id).await;
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
        "{report:?}"
    );
    assert!(
        message(&report, 1, "budgett").starts_with("unknown column"),
        "{report:?}"
    );
    assert!(
        message(&report, 1, "signal:nope").contains("\"nope\""),
        "{report:?}"
    );
    assert_eq!(
        counts(&report),
        (0, 0, 2, 0),
        "created, updated, skipped, unchanged: {report:?}"
    );
    assert!(report.import_run.is_none(), "{report:?}");
    assert!(report.job_run.is_none(), "{report:?}");
    assert_eq!(lead_count(&app, &t.token).await, 0);
    assert!(job_runs(&app, &t.token).await.is_empty());
}

#[tokio::test]
async fn only_admins_may_import() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let rep = app.user_with_role(&t, "REP").await;
    let manager = app.user_with_role(&t, "MANAGER").await;
    for (role, token) in [("REP", &rep), ("MANAGER", &manager)] {
        for dry_run in [false, true] {
            let refused = import_leads(&app, token, PEOPLE_CSV, dry_run)
                .await
                .expect_err(role);
            assert_eq!(
                refused.code(),
                "FORBIDDEN",
                "{role}, dry run {dry_run}: {refused}"
            );
        }
    }
    assert_eq!(lead_count(&app, &t.token).await, 0);

    let admin = app.user_with_role(&t, "ADMIN").await;
    let checked = import_report(&app, &admin, PEOPLE_CSV, true).await;
    assert_eq!(counts(&checked), (3, 0, 0, 0), "{checked:?}");
    let written = import_report(&app, &t.token, PEOPLE_CSV, false).await;
    assert_eq!(counts(&written), (3, 0, 0, 0), "{written:?}");
    assert_eq!(lead_count(&app, &t.token).await, 3);
}

#[tokio::test]
async fn each_company_imports_into_its_own_leads_because_external_ids_are_per_company() {
    let app = spawn_app().await;
    let a = app.sign_up_tenant("acme").await;
    let b = app.sign_up_tenant("globex").await;

    let first = import_report(&app, &a.token, PEOPLE_CSV, false).await;
    assert_eq!(counts(&first), (3, 0, 0, 0), "{first:?}");
    let a_before = leads_by_external_id(&app, &a.token).await;

    // The same external ids and emails are free in another company.
    let second = import_report(&app, &b.token, PEOPLE_CSV, false).await;
    assert!(second.errors.is_empty(), "{second:?}");
    assert_eq!(counts(&second), (3, 0, 0, 0), "{second:?}");
    let b_leads = leads_by_external_id(&app, &b.token).await;
    assert_eq!(keys(&b_leads), ["C-1", "C-2", "C-3"]);
    for (key, lead) in &b_leads {
        let theirs = &a_before[key.as_str()].id;
        assert_ne!(&lead.id, theirs, "{key}");
        let seen: Option<Id> = app
            .root(
                Some(&b.token),
                "query($id: ID!) { lead(id: $id) { id } }",
                json!({"id": theirs}),
            )
            .await;
        assert!(
            seen.is_none(),
            "{key}: the first company's lead is invisible"
        );
    }

    // The second company changes its own lead, not the first one's.
    let changed = PEOPLE_CSV.replace("Hoffmann GmbH", "Hoffmann AG");
    let update = import_report(&app, &b.token, &changed, false).await;
    assert_eq!(
        counts(&update),
        (0, 1, 2, 2),
        "created, updated, skipped, unchanged: {update:?}"
    );
    let b_after = leads_by_external_id(&app, &b.token).await;
    assert_eq!(b_after["C-1"].id, b_leads["C-1"].id);
    assert_eq!(b_after["C-1"].company.as_deref(), Some("Hoffmann AG"));
    assert_eq!(b_after["C-1"].version, 2);
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
    assert_eq!(
        error_pairs(&refused),
        [(2_i64, "owner_email")],
        "{refused:?}"
    );
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
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(
        counts(&report),
        (6, 0, 0, 0),
        "created, updated, skipped, unchanged: {report:?}"
    );
    let retrained = app.finished_run(&t.token, &retraining(&report).id).await;
    assert_eq!(retrained.status, "SUCCEEDED", "{retrained:?}");

    let leads = leads_by_external_id(&app, &t.token).await;
    assert_eq!(leads.len(), 6);
    let zhang = &leads["CRM-1002"];
    assert_eq!(zhang.name, "张伟");
    assert_eq!(zhang.company.as_deref(), Some("杭州云帆网络科技有限公司"));
    assert_eq!(zhang.owner_id(), Some(t.owner_id.as_str()), "{zhang:?}");
    assert_eq!(
        leads["CRM-1003"].company.as_deref(),
        Some("Moreau & Fils, SARL")
    );
    assert!(leads["CRM-1003"].owner.is_none());
    assert_eq!(leads["CRM-1004"].status, "WON");
    assert_eq!(leads["CRM-1005"].status, "LOST");
    let olivia = &leads["CRM-1001"];
    assert_eq!(
        activity_times(olivia, "website_visit").len(),
        6,
        "{olivia:?}"
    );
    assert_eq!(
        activity_times(olivia, "meeting"),
        [
            instant("2026-09-10T00:00:00Z"),
            instant("2026-10-02T00:00:00Z")
        ],
        "{olivia:?}"
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
    assert!(report.errors.is_empty(), "{report:?}");
    assert_eq!(counts(&report).0, 1000, "{report:?}");

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
        .create_lead(&t.token, json!({"name": "Later", "createdAt": later}))
        .await
        .expect_err("a lead from the future");
    assert_eq!(future.code(), "BAD_USER_INPUT", "{future}");
    assert_eq!(future.field(), "input.createdAt");
    let negative = app
        .create_lead(&t.token, json!({"name": "Owes us", "dealValue": -5}))
        .await
        .expect_err("a negative deal value");
    assert_eq!(negative.code(), "BAD_USER_INPUT", "{negative}");
    assert_eq!(negative.field(), "input.dealValue");

    let csv = format!(
        "name,created_at,deal_value\nLater,{},\nOwes us,,-5\n",
        &later[..10]
    );
    let report = import_report(&app, &t.token, &csv, false).await;
    assert_eq!(
        message(&report, 2, "created_at"),
        future.message(),
        "{report:?}"
    );
    assert_eq!(
        message(&report, 3, "deal_value"),
        negative.message(),
        "{report:?}"
    );
    assert_eq!(lead_count(&app, &t.token).await, 0, "nothing is written");
}

/// An import's report as [`REPORT`] asks for it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ImportReport {
    created: i64,
    updated: i64,
    skipped: i64,
    unchanged: i64,
    pub(crate) errors: Vec<ImportError>,
    job_run: Option<ReportRun>,
    import_run: Option<ReportRun>,
}

/// A refused row: its line, column (none for the whole row) and why.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportError {
    line: i64,
    field: Option<String>,
    message: String,
}

/// `jobRun { id kind trigger status }` and `importRun { id kind status }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportRun {
    id: String,
    kind: String,
    #[serde(default)]
    trigger: Option<String>,
    status: String,
}

/// The run an import queued to retrain the predictor on its outcomes.
fn retraining(report: &ImportReport) -> &ReportRun {
    let run = report
        .job_run
        .as_ref()
        .unwrap_or_else(|| panic!("the import queues a run: {report:?}"));
    assert_eq!(run.trigger.as_deref(), Some("IMPORT"), "{report:?}");
    run
}

/// Runs `importLeads`: its report, or why it was refused.
async fn import_leads(
    app: &TestApp,
    token: &str,
    csv: &str,
    dry_run: bool,
) -> Result<ImportReport, GraphqlErrors> {
    app.query_root(
        Some(token),
        &format!(
            "mutation($input: ImportLeadsInput!) {{ importLeads(input: $input) {{ {REPORT} }} }}"
        ),
        json!({"input": {"csv": csv, "dryRun": dry_run}}),
    )
    .await
}

/// Runs an import that must be accepted, and returns its report.
pub(crate) async fn import_report(
    app: &TestApp,
    token: &str,
    csv: &str,
    dry_run: bool,
) -> ImportReport {
    import_leads(app, token, csv, dry_run)
        .await
        .unwrap_or_else(|e| panic!("importLeads failed: {e}"))
}

/// (created, updated, skipped, unchanged) of a report.
pub(crate) fn counts(report: &ImportReport) -> (i64, i64, i64, i64) {
    (
        report.created,
        report.updated,
        report.skipped,
        report.unchanged,
    )
}

/// The (line, column) of each of a report's errors, in order.
fn error_pairs(report: &ImportReport) -> Vec<(i64, &str)> {
    report
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_deref().unwrap_or_default()))
        .collect()
}

/// The message of the error on `line` in `field`.
fn message<'a>(report: &'a ImportReport, line: i64, field: &str) -> &'a str {
    report
        .errors
        .iter()
        .find(|e| e.line == line && e.field.as_deref() == Some(field))
        .map(|e| e.message.as_str())
        .unwrap_or_else(|| panic!("no error on line {line} in {field}: {report:?}"))
}

async fn lead_count(app: &TestApp, token: &str) -> i64 {
    let leads: Connection<Value> = app
        .root(Some(token), "{ leads { totalCount } }", json!({}))
        .await;
    leads.total_count.expect("totalCount was asked")
}

/// `jobRuns { id kind }`.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListedRun {
    id: String,
    kind: String,
}

/// The tenant's job runs.
async fn job_runs(app: &TestApp, token: &str) -> Vec<ListedRun> {
    app.root(Some(token), "{ jobRuns { id kind } }", json!({}))
        .await
}

/// A lead as [`LEAD`] asks for it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImportedLead {
    id: String,
    external_id: Option<String>,
    name: String,
    company: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    status: String,
    version: i64,
    score: f64,
    tier: String,
    close_probability: Option<f64>,
    attributes: Value,
    owner: Option<Id>,
    team: Option<Id>,
    stage: StageRef,
    score_breakdown: Scored,
    activities: Vec<Activity>,
    score_history: Vec<ScoreEvent>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scored {
    total: f64,
    tier: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Activity {
    signal_key: String,
    occurred_at: String,
}

#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ScoreEvent {
    reason: String,
    new_tier: String,
}

impl ImportedLead {
    fn owner_id(&self) -> Option<&str> {
        self.owner.as_ref().map(|o| o.id.as_str())
    }

    fn team_id(&self) -> Option<&str> {
        self.team.as_ref().map(|t| t.id.as_str())
    }
}

/// The lead's `closeProbability`; fails the test when it has none.
fn close_probability(leads: &BTreeMap<String, ImportedLead>, key: &str) -> f64 {
    leads[key]
        .close_probability
        .unwrap_or_else(|| panic!("{key} has no close probability: {:?}", leads[key]))
}

/// Every lead the caller sees (at most 50), by external id.
async fn leads_by_external_id(app: &TestApp, token: &str) -> BTreeMap<String, ImportedLead> {
    let leads: Connection<ImportedLead> = app
        .root(
            Some(token),
            &format!("{{ leads(first: 50) {{ totalCount edges {{ node {{ {LEAD} }} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        leads.total_count,
        Some(leads.edges.len() as i64),
        "{leads:?}"
    );
    leads
        .edges
        .into_iter()
        .map(|e| (e.node.external_id.clone().unwrap_or_default(), e.node))
        .collect()
}

fn keys(leads: &BTreeMap<String, ImportedLead>) -> Vec<&str> {
    leads.keys().map(String::as_str).collect()
}

/// When `lead`'s activities of `signal` happened, oldest first.
fn activity_times(lead: &ImportedLead, signal: &str) -> Vec<DateTime<Utc>> {
    let mut times: Vec<DateTime<Utc>> = lead
        .activities
        .iter()
        .filter(|a| a.signal_key == signal)
        .map(|a| instant(&a.occurred_at))
        .collect();
    times.sort();
    times
}

fn activity_count(leads: &BTreeMap<String, ImportedLead>) -> usize {
    leads.values().map(|l| l.activities.len()).sum()
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
