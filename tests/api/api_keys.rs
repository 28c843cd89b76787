//! API keys: created by OWNER and ADMIN, used by machines, narrowed to
//! their scopes, revocable, and confined to their tenant.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::helpers::{Connection, GraphqlErrors, Id, TestApp, spawn_app};

/// A key as `createApiKey` and `apiKeys` show it; only what was asked is
/// there.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ApiKey {
    id: Option<String>,
    name: Option<String>,
    scopes: Option<Vec<String>>,
    created_at: Option<String>,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

/// `createApiKey`'s payload: the secret, shown this once, and the key.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Created {
    secret: String,
    api_key: ApiKey,
}

impl TestApp {
    /// Creates an API key: the secret and the key, or why it was refused.
    async fn create_api_key(
        &self,
        token: &str,
        name: &str,
        scopes: &[&str],
    ) -> Result<Created, GraphqlErrors> {
        self.query_root(
            Some(token),
            "mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id name scopes createdAt lastUsedAt revokedAt } } }",
            json!({"input": {"name": name, "scopes": scopes}}),
        )
        .await
    }
}

/// The leads a key may list, by id.
async fn lead_ids(app: &TestApp, token: &str) -> Result<Vec<String>, GraphqlErrors> {
    let leads: Connection<Id> = app
        .query_root(
            Some(token),
            "{ leads { edges { node { id } } } }",
            json!({}),
        )
        .await?;
    Ok(leads.nodes().map(|n| n.id.clone()).collect())
}

/// The payload of the RECORD mutation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recorded {
    lead: RecordedLead,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedLead {
    id: String,
    score: f64,
    activities: Vec<Activity>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Activity {
    signal_key: String,
    api_key: Option<ApiKey>,
}

const RECORD: &str = "mutation($input: RecordActivityInput!) { recordActivity(input: $input) { lead { id score activities { signalKey apiKey { name } } } } }";

#[tokio::test]
async fn an_api_keys_secret_is_shown_only_once_never_in_the_audit_log() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;

    let created = app
        .create_api_key(&acme.token, "website", &["INGEST"])
        .await
        .expect("the owner creates a key");
    let secret = created.secret.as_str();
    assert!(secret.starts_with("lrk_"), "{secret}");
    let key = &created.api_key;
    assert_eq!(key.name.as_deref(), Some("website"));
    assert_eq!(key.scopes.as_deref(), Some(&["INGEST".to_owned()][..]));
    assert!(key.created_at.is_some());
    assert_eq!(key.last_used_at, None);
    assert_eq!(key.revoked_at, None);

    // Listed as JSON: the secret must be nowhere in it.
    let listed: Value = app
        .root(
            Some(&acme.token),
            "{ apiKeys { id name scopes lastUsedAt revokedAt } }",
            json!({}),
        )
        .await;
    assert_eq!(listed[0]["id"].as_str(), key.id.as_deref());
    assert!(!listed.to_string().contains(secret));

    let audit = app.audit_entries(&acme.token).await;
    let entry = audit
        .iter()
        .find(|e| e.action == "api_key.created")
        .expect("the creation is audited");
    assert_eq!(entry.after["name"], "website");
    let written = serde_json::to_string(entry).unwrap();
    assert!(!written.contains(&secret[4..20]), "{written}");
    assert_eq!(entry.actor_id(), Some(acme.owner_id.as_str()));
}

#[tokio::test]
async fn only_an_admin_creates_api_keys_each_with_a_scope() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let rep = app.user_with_role(&acme, "REP").await;

    let refused = app
        .create_api_key(&rep, "mine", &["READ"])
        .await
        .expect_err("a rep creates no keys");
    assert_eq!(refused.code(), "FORBIDDEN");

    let refused = app
        .create_api_key(&acme.token, "none", &[])
        .await
        .expect_err("a key needs a scope");
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert_eq!(refused.field(), "input.scopes");

    let listed: Vec<Id> = app
        .root(Some(&acme.token), "{ apiKeys { id } }", json!({}))
        .await;
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn an_ingest_key_records_signals_attributed_to_its_name() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let lead = app
        .new_lead(
            &acme.token,
            json!({"name": "Li Wei", "company": "Hangzhou Optics"}),
        )
        .await;
    let key = app.new_api_key(&acme.token, "website", &["INGEST"]).await;

    let recorded: Recorded = app
        .root(
            Some(&key.secret),
            RECORD,
            json!({"input": {"leadId": lead.id, "signalKey": "website_visit"}}),
        )
        .await;
    assert_eq!(recorded.lead.id, lead.id);
    assert!(recorded.lead.score >= lead.score);
    let activity = &recorded.lead.activities[0];
    assert_eq!(activity.signal_key, "website_visit");
    let author = activity.api_key.as_ref().and_then(|k| k.name.as_deref());
    assert_eq!(author, Some("website"));

    let listed: Vec<ApiKey> = app
        .root(Some(&acme.token), "{ apiKeys { lastUsedAt } }", json!({}))
        .await;
    assert!(listed[0].last_used_at.is_some(), "{listed:?}");
}

#[tokio::test]
async fn a_key_is_refused_what_its_scopes_do_not_allow() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let lead = app.new_lead(&acme.token, json!({"name": "Li Wei"})).await;
    let ingest = app.new_api_key(&acme.token, "website", &["INGEST"]).await;
    let read = app.new_api_key(&acme.token, "dashboard", &["READ"]).await;

    // INGEST does not read.
    let refused = lead_ids(&app, &ingest.secret)
        .await
        .expect_err("an INGEST key reads nothing");
    assert_eq!(refused.code(), "FORBIDDEN");
    assert!(refused.has_no_data(), "{refused}");

    // READ reads leads and the queue, but changes nothing.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Read {
        leads: Connection<Id>,
        follow_up_queue: Vec<Value>,
    }
    let read_all: Read = app
        .data(
            Some(&read.secret),
            "{ leads { edges { node { id } } } followUpQueue { lead { id } } }",
            json!({}),
        )
        .await;
    let ids: Vec<&str> = read_all.leads.nodes().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, [lead.id.as_str()]);
    assert!(read_all.follow_up_queue.len() <= 1);
    let refused = app
        .refused(
            Some(&read.secret),
            RECORD,
            json!({"input": {"leadId": lead.id, "signalKey": "website_visit"}}),
        )
        .await;
    assert_eq!(refused.code(), "FORBIDDEN");

    // No key manages keys, users or configuration, whatever its scopes,
    // not even hidden in a fragment.
    for key in [&ingest, &read] {
        for query in [
            "mutation { ...k } fragment k on Mutation { createApiKey(input: {name: \"x\", scopes: [READ]}) { secret } }",
            "{ apiKeys { id } }",
            "{ auditLog { edges { node { id } } } }",
        ] {
            let refused = app.refused(Some(&key.secret), query, json!({})).await;
            assert_eq!(refused.code(), "FORBIDDEN", "{query}: {refused}");
        }
    }
    // Nothing was recorded by the refused mutation.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Activities {
        activities: Vec<Id>,
    }
    let read_back: Activities = app
        .root(
            Some(&acme.token),
            "query($id: ID!) { lead(id: $id) { activities { id } } }",
            json!({"id": lead.id}),
        )
        .await;
    assert!(read_back.activities.is_empty());
}

#[tokio::test]
async fn a_revoked_api_key_is_refused_at_once_with_the_revocation_audited() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let key = app.new_api_key(&acme.token, "dashboard", &["READ"]).await;
    lead_ids(&app, &key.secret)
        .await
        .expect("the key works before it is revoked");

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Revoked {
        api_key: ApiKey,
    }
    let revoked: Revoked = app
        .root(
            Some(&acme.token),
            "mutation($input: RevokeApiKeyInput!) { revokeApiKey(input: $input) { apiKey { id revokedAt } } }",
            json!({"input": {"id": key.id}}),
        )
        .await;
    assert_eq!(revoked.api_key.id.as_deref(), Some(key.id.as_str()));
    assert!(revoked.api_key.revoked_at.is_some(), "{revoked:?}");

    let refused = lead_ids(&app, &key.secret)
        .await
        .expect_err("a revoked key is refused at once");
    assert_eq!(refused.code(), "UNAUTHENTICATED");
    let audit = app.audit_entries(&acme.token).await;
    let entry = audit
        .iter()
        .find(|e| e.action == "api_key.revoked")
        .expect("the revocation is audited");
    assert!(entry.before["revokedAt"].is_null(), "{entry:?}");
    assert!(entry.after["revokedAt"].is_string(), "{entry:?}");
}

#[tokio::test]
async fn a_key_never_reaches_another_tenant() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let theirs = app.new_lead(&globex.token, json!({"name": "Hidden"})).await;
    let key = app
        .new_api_key(&acme.token, "website", &["INGEST", "READ"])
        .await;

    let read: Option<Id> = app
        .root(
            Some(&key.secret),
            "query($id: ID!) { lead(id: $id) { id } }",
            json!({"id": theirs.id}),
        )
        .await;
    assert_eq!(read, None, "another tenant's lead reads as null");
    let refused = app
        .refused(
            Some(&key.secret),
            RECORD,
            json!({"input": {"leadId": theirs.id, "signalKey": "website_visit"}}),
        )
        .await;
    assert_eq!(refused.code(), "NOT_FOUND");

    // The key's secret with the other tenant's id in front is refused.
    let forged = key
        .secret
        .replacen(&acme.id.replace('-', ""), &globex.id.replace('-', ""), 1);
    assert_ne!(forged, key.secret);
    let refused = lead_ids(&app, &forged)
        .await
        .expect_err("a forged key is refused");
    assert_eq!(refused.code(), "UNAUTHENTICATED");

    // The other tenant cannot revoke it either.
    let refused = app
        .refused(
            Some(&globex.token),
            "mutation($input: RevokeApiKeyInput!) { revokeApiKey(input: $input) { apiKey { id } } }",
            json!({"input": {"id": key.id}}),
        )
        .await;
    assert_eq!(refused.code(), "NOT_FOUND");
}
