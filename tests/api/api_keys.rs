//! API keys: created by OWNER and ADMIN, used by machines, narrowed to
//! their scopes, revocable, and confined to their tenant.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code, spawn_app};

/// A key's secret and id.
pub(crate) struct Key {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    /// Creates an API key and returns the whole response.
    pub(crate) async fn create_api_key(&self, token: &str, name: &str, scopes: &[&str]) -> Value {
        self.graphql(
            Some(token),
            "mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id name scopes createdAt lastUsedAt revokedAt } } }",
            json!({"input": {"name": name, "scopes": scopes}}),
        )
        .await
    }

    /// Creates an API key that must succeed.
    pub(crate) async fn new_api_key(&self, token: &str, name: &str, scopes: &[&str]) -> Key {
        let body = self.create_api_key(token, name, scopes).await;
        let payload = &body["data"]["createApiKey"];
        assert!(payload.is_object(), "createApiKey failed: {body}");
        Key {
            id: payload["apiKey"]["id"].as_str().unwrap().to_owned(),
            secret: payload["secret"].as_str().unwrap().to_owned(),
        }
    }
}

const RECORD: &str = "mutation($input: RecordActivityInput!) { recordActivity(input: $input) { lead { id score activities { signalKey apiKey { name } } } } }";

#[tokio::test]
async fn an_api_keys_secret_is_shown_only_once_never_in_the_audit_log() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let body = app
        .create_api_key(&acme.token, "website", &["INGEST"])
        .await;
    let created = &body["data"]["createApiKey"];
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("lrk_"), "{secret}");
    assert_eq!(created["apiKey"]["name"], "website");
    assert_eq!(created["apiKey"]["scopes"], json!(["INGEST"]));
    assert!(created["apiKey"]["lastUsedAt"].is_null());

    let listed = app
        .graphql(
            Some(&acme.token),
            "{ apiKeys { id name scopes lastUsedAt revokedAt } }",
            json!({}),
        )
        .await;
    assert_eq!(listed["data"]["apiKeys"][0]["id"], created["apiKey"]["id"]);
    assert!(!listed.to_string().contains(secret));

    let audit = app.audit_entries(&acme.token).await;
    let entry = audit
        .iter()
        .find(|e| e["action"] == "api_key.created")
        .expect("the creation is audited");
    assert_eq!(entry["after"]["name"], "website");
    assert!(!entry.to_string().contains(&secret[4..20]), "{entry}");
    assert_eq!(entry["actor"]["id"], acme.owner_id.as_str());
}

#[tokio::test]
async fn only_an_admin_creates_api_keys_each_with_a_scope() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let rep = app.user_with_role(&acme, "REP").await;

    let body = app.create_api_key(&rep, "mine", &["READ"]).await;
    assert_eq!(error_code(&body), "FORBIDDEN");

    let body = app.create_api_key(&acme.token, "none", &[]).await;
    assert_eq!(error_code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["extensions"]["field"], "input.scopes");

    let listed = app
        .graphql(Some(&acme.token), "{ apiKeys { id } }", json!({}))
        .await;
    assert_eq!(listed["data"]["apiKeys"], json!([]));
}

#[tokio::test]
async fn an_ingest_key_records_signals_attributed_to_its_name() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead_json(
            &acme.token,
            json!({"name": "Li Wei", "company": "Hangzhou Optics"}),
        )
        .await;
    let key = app.new_api_key(&acme.token, "website", &["INGEST"]).await;

    let body = app
        .graphql(
            Some(&key.secret),
            RECORD,
            json!({"input": {"leadId": lead["id"], "signalKey": "website_visit"}}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let activities = &body["data"]["recordActivity"]["lead"]["activities"];
    assert_eq!(activities[0]["apiKey"]["name"], "website");

    let listed = app
        .graphql(Some(&acme.token), "{ apiKeys { lastUsedAt } }", json!({}))
        .await;
    assert!(
        listed["data"]["apiKeys"][0]["lastUsedAt"].is_string(),
        "{listed}"
    );
}

#[tokio::test]
async fn a_key_is_refused_what_its_scopes_do_not_allow() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead_json(&acme.token, json!({"name": "Li Wei"}))
        .await;
    let ingest = app.new_api_key(&acme.token, "website", &["INGEST"]).await;
    let read = app.new_api_key(&acme.token, "dashboard", &["READ"]).await;

    // INGEST does not read.
    let body = app
        .graphql(
            Some(&ingest.secret),
            "{ leads { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    assert!(body["data"].is_null(), "{body}");

    // READ reads leads and the queue, but changes nothing.
    let body = app
        .graphql(
            Some(&read.secret),
            "{ leads { edges { node { id } } } followUpQueue { lead { id } } }",
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["leads"]["edges"][0]["node"]["id"], lead["id"]);
    let body = app
        .graphql(
            Some(&read.secret),
            RECORD,
            json!({"input": {"leadId": lead["id"], "signalKey": "website_visit"}}),
        )
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN");

    // No key manages keys, users or configuration, whatever its scopes,
    // not even hidden in a fragment.
    for key in [&ingest, &read] {
        let body = app
            .graphql(
                Some(&key.secret),
                "mutation { ...k } fragment k on Mutation { createApiKey(input: {name: \"x\", scopes: [READ]}) { secret } }",
                json!({}),
            )
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
        let body = app
            .graphql(Some(&key.secret), "{ apiKeys { id } }", json!({}))
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN");
        let body = app
            .graphql(
                Some(&key.secret),
                "{ auditLog { edges { node { id } } } }",
                json!({}),
            )
            .await;
        assert_eq!(error_code(&body), "FORBIDDEN");
    }
    // Nothing was recorded by the refused mutation.
    let body = app
        .graphql(
            Some(&acme.token),
            "query($id: ID!) { lead(id: $id) { activities { id } } }",
            json!({"id": lead["id"]}),
        )
        .await;
    assert_eq!(body["data"]["lead"]["activities"], json!([]));
}

#[tokio::test]
async fn a_revoked_api_key_is_refused_at_once_with_the_revocation_audited() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let key = app.new_api_key(&acme.token, "dashboard", &["READ"]).await;
    let works = app
        .graphql(
            Some(&key.secret),
            "{ leads { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert!(works["errors"].is_null(), "{works}");

    let body = app
        .graphql(
            Some(&acme.token),
            "mutation($input: RevokeApiKeyInput!) { revokeApiKey(input: $input) { apiKey { id revokedAt } } }",
            json!({"input": {"id": key.id}}),
        )
        .await;
    assert!(
        body["data"]["revokeApiKey"]["apiKey"]["revokedAt"].is_string(),
        "{body}"
    );

    let body = app
        .graphql(
            Some(&key.secret),
            "{ leads { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");
    let audit = app.audit_entries(&acme.token).await;
    let entry = audit
        .iter()
        .find(|e| e["action"] == "api_key.revoked")
        .expect("the revocation is audited");
    assert!(entry["before"]["revokedAt"].is_null());
    assert!(entry["after"]["revokedAt"].is_string());
}

#[tokio::test]
async fn a_key_never_reaches_another_tenant() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let theirs = app
        .new_lead_json(&globex.token, json!({"name": "Hidden"}))
        .await;
    let key = app
        .new_api_key(&acme.token, "website", &["INGEST", "READ"])
        .await;

    let body = app
        .graphql(
            Some(&key.secret),
            "query($id: ID!) { lead(id: $id) { id } }",
            json!({"id": theirs["id"]}),
        )
        .await;
    assert!(body["data"]["lead"].is_null(), "{body}");
    let body = app
        .graphql(
            Some(&key.secret),
            RECORD,
            json!({"input": {"leadId": theirs["id"], "signalKey": "website_visit"}}),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");

    // The key's secret with the other tenant's id in front is refused.
    let forged = key
        .secret
        .replacen(&acme.id.replace('-', ""), &globex.id.replace('-', ""), 1);
    assert_ne!(forged, key.secret);
    let body = app
        .graphql(
            Some(&forged),
            "{ leads { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), "UNAUTHENTICATED");

    // The other tenant cannot revoke it either.
    let body = app
        .graphql(
            Some(&globex.token),
            "mutation($input: RevokeApiKeyInput!) { revokeApiKey(input: $input) { apiKey { id } } }",
            json!({"input": {"id": key.id}}),
        )
        .await;
    assert_eq!(error_code(&body), "NOT_FOUND");
}
