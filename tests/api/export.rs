//! Leads out as CSV behind a short-lived signed link: the import's columns,
//! so the file re-imports cleanly; only what the caller may see; Excel's
//! byte-order mark on request; and a link that is forged, expired or left
//! behind by a deactivated person opens nothing.

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    helpers::{GraphqlErrors, TestApp, parse_answer, spawn_app},
    helpers::{strong, weak},
    import::{counts, import_report},
};

/// What `exportLeads` answers: a signed link and when it stops working.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExportLink {
    url: String,
    expires_at: String,
}

impl TestApp {
    /// Asks for an export link: the link, or why it was refused.
    async fn try_export_link(
        &self,
        token: &str,
        filter: Value,
        bom: bool,
    ) -> Result<ExportLink, GraphqlErrors> {
        self.query_root(
            Some(token),
            "mutation($filter: LeadFilter, $bom: Boolean!) { exportLeads(filter: $filter, excelBom: $bom) { url expiresAt } }",
            json!({"filter": filter, "bom": bom}),
        )
        .await
    }

    /// An export link, which must be given.
    async fn export_link(&self, token: &str, filter: Value, bom: bool) -> ExportLink {
        self.try_export_link(token, filter, bom)
            .await
            .unwrap_or_else(|e| panic!("exportLeads failed: {e}"))
    }

    /// Asks for an export and downloads it: (status, content type, body).
    async fn download(
        &self,
        token: &str,
        filter: Value,
        bom: bool,
    ) -> (StatusCode, String, Vec<u8>) {
        let link = self.export_link(token, filter, bom).await;
        self.fetch(&link.url).await
    }

    async fn fetch(&self, url: &str) -> (StatusCode, String, Vec<u8>) {
        let response = self
            .client
            .get(format!("{}{url}", self.address))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, kind, response.bytes().await.unwrap().to_vec())
    }
}

/// The rows of a CSV as maps from column to cell.
fn rows(csv: &[u8]) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::str::from_utf8(csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|line| {
            header
                .iter()
                .map(|h| (*h).to_owned())
                .zip(line.split(',').map(str::to_owned))
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn an_export_re_imports_with_nothing_changed() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let token = t.token.as_str();
    let team = app.new_team(token, "North").await;
    let (rep, _) = app.member(&t, "ann@acme.test", "REP", &[&team]).await;
    app.new_lead(
        token,
        json!({"name": "王小明", "company": "上海贸易", "email": "wang@example.cn", "attributes": strong(),
               "dealValue": 1200.5, "ownerId": rep, "teamId": team, "externalId": "crm-1",
               "expectedCloseAt": "2027-01-15T00:00:00Z"}),
    )
    .await;
    let won = app
        .new_lead(
            token,
            json!({"name": "Won Ltd", "attributes": weak(), "externalId": "crm-2"}),
        )
        .await;
    let closed = app
        .lead_mutation(
            token,
            "closeLead",
            "CloseLeadInput",
            json!({"id": won.id, "outcome": "WON", "reason": "signed"}),
        )
        .await
        .unwrap_or_else(|e| panic!("closeLead failed: {e}"));
    assert_eq!(closed.status, "WON", "{closed:?}");

    let (status, kind, csv) = app.download(token, json!(null), true).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert!(
        csv.starts_with(b"\xEF\xBB\xBF"),
        "Excel's byte-order mark first"
    );
    let csv = &csv[3..];
    let header = std::str::from_utf8(csv)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        header.starts_with("external_id,name,company,email,phone,industry,source,deal_value,created_at,owner_email,team,stage,status,closed_at,close_reason,expected_close_at,"),
        "{header}"
    );
    assert!(
        header.contains(",budget,"),
        "a column per lead field: {header}"
    );
    let rows = rows(csv);
    assert_eq!(rows.len(), 2);
    let wang = rows.iter().find(|r| r["external_id"] == "crm-1").unwrap();
    assert_eq!(
        (
            wang["name"].as_str(),
            wang["company"].as_str(),
            wang["owner_email"].as_str(),
            wang["team"].as_str()
        ),
        ("王小明", "上海贸易", "ann@acme.test", "North")
    );
    assert_eq!(
        (
            wang["deal_value"].as_str(),
            wang["status"].as_str(),
            wang["budget"].as_str()
        ),
        ("1200.5", "open", "5")
    );
    assert_eq!(wang["expected_close_at"], "2027-01-15T00:00:00Z");
    let signed = rows.iter().find(|r| r["external_id"] == "crm-2").unwrap();
    assert_eq!(
        (
            signed["status"].as_str(),
            signed["stage"].as_str(),
            signed["close_reason"].as_str()
        ),
        ("won", "won", "signed")
    );
    assert!(!signed["closed_at"].is_empty());

    // Back in, as it came out: every row found by its external id, none
    // changed, none refused.
    let report = import_report(&app, token, std::str::from_utf8(csv).unwrap(), false).await;
    assert_eq!(counts(&report), (0, 0, 2, 2), "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
}

#[tokio::test]
async fn an_export_holds_only_the_leads_the_caller_may_see_that_match_the_filter() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    let token = t.token.as_str();
    let north = app.new_team(token, "North").await;
    let south = app.new_team(token, "South").await;
    let (ann, _) = app.member(&t, "ann@acme.test", "REP", &[&north]).await;
    let (bob, _) = app.member(&t, "bob@acme.test", "REP", &[&south]).await;
    let (_, max) = app.member(&t, "max@acme.test", "MANAGER", &[&north]).await;
    for (name, owner, attributes) in [
        ("Ann A", &ann, strong()),
        ("Ann B", &ann, weak()),
        ("Bob A", &bob, strong()),
    ] {
        app.new_lead(
            token,
            json!({"name": name, "ownerId": owner, "attributes": attributes}),
        )
        .await;
    }
    let names = |csv: &[u8]| {
        let mut names: Vec<String> = rows(csv).into_iter().map(|r| r["name"].clone()).collect();
        names.sort();
        names
    };

    let (_, _, all) = app.download(token, json!(null), false).await;
    assert!(!all.starts_with(b"\xEF\xBB\xBF"), "no mark unless asked");
    assert_eq!(names(&all), ["Ann A", "Ann B", "Bob A"]);
    let (_, _, strong_ones) = app.download(token, json!({"tiers": ["B"]}), false).await;
    assert_eq!(names(&strong_ones), ["Ann A", "Bob A"]);
    let (_, _, managed) = app.download(&max, json!(null), false).await;
    assert_eq!(names(&managed), ["Ann A", "Ann B"], "Max manages North");

    let ann_token = app
        .try_login(&t.slug, "ann@acme.test", crate::helpers::PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("Ann signs in: {e}"))
        .access_token;
    let refused = app
        .try_export_link(&ann_token, json!(null), false)
        .await
        .expect_err("a rep takes no bulk export");
    assert_eq!(refused.code(), "FORBIDDEN", "a rep takes no bulk export");

    let other = app.sign_up_tenant("globex").await;
    let (_, _, theirs) = app.download(&other.token, json!(null), false).await;
    assert!(
        names(&theirs).is_empty(),
        "another company's export is its own"
    );
}

#[tokio::test]
async fn a_forged_expired_or_orphaned_export_link_opens_nothing() {
    let app = spawn_app().await;
    let t = app.sign_up_tenant("acme").await;
    app.new_lead(&t.token, json!({"name": "Secret", "attributes": strong()}))
        .await;
    let (max_id, max) = app.member(&t, "max@acme.test", "MANAGER", &[]).await;

    let (status, _, body) = app.fetch("/v1/exports/not-a-link").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The download answers GraphQL-shaped errors, read the same way.
    let body: Value = serde_json::from_slice(&body).unwrap();
    let refused = parse_answer::<Value>("GET /v1/exports/not-a-link", body)
        .expect_err("a forged link opens nothing");
    assert_eq!(refused.code(), "UNAUTHENTICATED");

    // An access token is not a link.
    let (status, _, _) = app.fetch(&format!("/v1/exports/{}", t.token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Signing out of the session, or losing the role, ends the link.
    let (kim_id, kim) = app.member(&t, "kim@acme.test", "MANAGER", &[]).await;
    let signed_out = app.export_link(&kim, json!(null), false).await.url;
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SignedOut {
        __typename: String,
    }
    let out: SignedOut = app
        .root(
            Some(&kim),
            "mutation { signOut(input: {everywhere: true}) { __typename } }",
            json!({}),
        )
        .await;
    assert!(!out.__typename.is_empty(), "{out:?}");
    let (status, _, _) = app.fetch(&signed_out).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "signed out");
    let kim = app
        .try_login(&t.slug, "kim@acme.test", crate::helpers::PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("Kim signs in again: {e}"))
        .access_token;
    let demoted = app.export_link(&kim, json!(null), false).await.url;
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Changed {
        user: Role,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Role {
        role: String,
    }
    let changed: Changed = app
        .root(
            Some(&t.token),
            "mutation($id: ID!) { updateUserRole(input: {userId: $id, role: REP}) { user { role } } }",
            json!({"id": kim_id}),
        )
        .await;
    assert_eq!(changed.user.role, "REP", "{changed:?}");
    let (status, _, _) = app.fetch(&demoted).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no longer a manager");

    let link = app.export_link(&max, json!(null), false).await;
    let url = link.url;
    let expires: chrono::DateTime<chrono::Utc> = link.expires_at.parse().unwrap();
    let minutes = (expires - chrono::Utc::now()).num_minutes();
    assert!(
        (9..=10).contains(&minutes),
        "short-lived: {minutes} minutes"
    );
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Deactivated {
        user: Active,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Active {
        active: bool,
    }
    let deactivated: Deactivated = app
        .root(
            Some(&t.token),
            "mutation($id: ID!) { deactivateUser(input: {userId: $id}) { user { active } } }",
            json!({"id": max_id}),
        )
        .await;
    assert!(!deactivated.user.active, "{deactivated:?}");
    let (status, _, body) = app.fetch(&url).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!String::from_utf8_lossy(&body).contains("Secret"));
}
