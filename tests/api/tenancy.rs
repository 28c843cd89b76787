//! A second tenant tries to read and write the first one's data and finds
//! nothing, exactly as if it never existed.

use entity::{lead, lead_facts, team, user};
use leadrank::tenancy::{TenantScope, Walled};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, Statement, TransactionTrait,
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Connection, Id, Name, spawn_app};

/// `{ email }` of a user.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Email {
    email: String,
}

#[tokio::test]
async fn a_second_tenant_sees_none_of_the_first_tenants_users_teams_or_configuration() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    app.try_create_user(&acme.token, "rep@acme.test", "REP", &[])
        .await
        .expect("acme creates a rep");
    app.new_team(&acme.token, "Acme Enterprise").await;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Seen {
        users: Vec<Email>,
        teams: Vec<Name>,
        tenant: Slug,
        pipelines: Vec<Id>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Slug {
        slug: String,
    }
    let seen: Seen = app
        .data(
            Some(&globex.token),
            "{ users { email } teams { name } tenant { slug } pipelines { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        seen.users,
        [Email {
            email: "owner@globex.test".into()
        }]
    );
    assert!(seen.teams.is_empty());
    assert_eq!(seen.tenant.slug, "globex");
    let acme_pipelines: Vec<Id> = app
        .root(Some(&acme.token), "{ pipelines { id } }", json!({}))
        .await;
    assert_eq!(seen.pipelines.len(), 1);
    assert!(
        seen.pipelines.iter().all(|p| !acme_pipelines.contains(p)),
        "globex sees its own pipeline only"
    );
}

#[tokio::test]
async fn a_second_tenant_cannot_add_the_first_tenants_users_to_its_team() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;

    let stolen = app
        .try_create_team(&globex.token, "Poachers", &[&acme.owner_id])
        .await
        .expect_err("another tenant's user cannot join");
    let never_existed = app
        .try_create_team(
            &globex.token,
            "Poachers",
            &[&uuid::Uuid::now_v7().to_string()],
        )
        .await
        .expect_err("a user that never existed cannot join");
    assert_eq!(stolen.code(), "NOT_FOUND");
    assert_eq!(never_existed.code(), "NOT_FOUND");
    // Nothing was created by the refused attempts.
    let teams: Vec<Name> = app
        .root(Some(&globex.token), "{ teams { name } }", json!({}))
        .await;
    assert!(teams.is_empty(), "{teams:?}");
}

#[tokio::test]
async fn a_second_tenant_cannot_put_a_user_into_the_first_tenants_team() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let team_id = app.new_team(&acme.token, "Acme Enterprise").await;

    let refused = app
        .try_create_user(&globex.token, "mole@globex.test", "REP", &[&team_id])
        .await
        .expect_err("another tenant's team cannot be joined");
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert_eq!(refused.field(), "input.teamIds[0]");
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Members {
        members: Vec<Email>,
    }
    let teams: Vec<Members> = app
        .root(
            Some(&acme.token),
            "{ teams { members { email } } }",
            json!({}),
        )
        .await;
    assert!(teams[0].members.is_empty());
    let globex_users: Vec<Email> = app
        .root(Some(&globex.token), "{ users { email } }", json!({}))
        .await;
    assert_eq!(globex_users.len(), 1);
}

#[tokio::test]
async fn another_tenants_team_id_behaves_like_an_id_that_never_existed() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    let acme_team = app.new_team(&acme.token, "Acme Enterprise").await;
    let random = uuid::Uuid::now_v7().to_string();

    for query in [
        "query($t: ID) { activeScoringModel(teamId: $t) { id } }",
        "query($t: ID) { scoringModels(teamId: $t) { id } }",
    ] {
        let foreign = app
            .refused(Some(&globex.token), query, json!({"t": acme_team}))
            .await;
        let missing = app
            .refused(Some(&globex.token), query, json!({"t": random}))
            .await;
        assert_eq!(foreign.code(), "NOT_FOUND");
        assert_eq!(missing.code(), "NOT_FOUND");
        assert_eq!(
            foreign.message().replace(&acme_team, "ID"),
            missing.message().replace(&random, "ID")
        );
    }
    // Acme itself can read its team's model (the tenant default applies).
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Version {
        version: i64,
    }
    let own: Version = app
        .root(
            Some(&acme.token),
            "query($t: ID) { activeScoringModel(teamId: $t) { version } }",
            json!({"t": acme_team}),
        )
        .await;
    assert_eq!(own.version, 1);
}

#[tokio::test]
async fn a_refresh_token_cannot_be_replayed_against_another_tenant() {
    let app = spawn_app().await;
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    // Graft acme's session id and secret onto globex's tenant id.
    let (_, acme_rest) = acme.refresh_token.split_once('.').unwrap();
    let forged = format!("{}.{acme_rest}", globex.id);
    let refused = app
        .refused(
            None,
            "mutation($input: RefreshInput!) { refreshSession(input: $input) { accessToken } }",
            json!({"input": {"refreshToken": forged}}),
        )
        .await;
    assert_eq!(refused.code(), "UNAUTHENTICATED");
}

/// On PostgreSQL row-level security stands behind the tenant filter: a
/// statement on the server's own pool that forgets the filter sees no
/// company's rows, one that works for a tenant sees that tenant's alone,
/// and no write can put a row into another tenant.
#[tokio::test]
async fn on_postgresql_a_query_that_forgets_the_tenant_sees_no_companys_rows() {
    let app = spawn_app().await;
    if app.db.get_database_backend() != DbBackend::Postgres {
        eprintln!("skipped: SQLite has no row-level security");
        return;
    }
    let acme = app.sign_up_tenant("acme").await;
    let globex = app.sign_up_tenant("globex").await;
    app.new_lead(&acme.token, json!({"name": "Acme's lead"}))
        .await;
    app.new_lead(&globex.token, json!({"name": "Globex's lead"}))
        .await;
    let (acme_id, globex_id): (Uuid, Uuid) = (acme.id.parse().unwrap(), globex.id.parse().unwrap());
    assert_eq!(lead::Entity::find().count(&app.system_db).await.unwrap(), 2);

    // No tenant said: nothing, through the ORM or in plain SQL.
    assert_eq!(lead::Entity::find().count(&app.db).await.unwrap(), 0);
    assert_eq!(user::Entity::find().count(&app.db).await.unwrap(), 0);
    let counted = app
        .db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM leads",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(counted, 0);

    // Working for Acme, a query without the filter sees Acme's lead alone.
    let walled = Walled::new(&app.db, acme_id);
    let names: Vec<String> = lead::Entity::find()
        .all(&walled)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["Acme's lead"]);

    // Nor can a transaction working for Acme change or add Globex's rows.
    let txn = app.db.begin().await.unwrap();
    TenantScope::enter(&txn, acme_id).await.unwrap();
    let renamed = lead_facts::Entity::update_many()
        .col_expr(lead_facts::Column::Name, "Stolen".into())
        .filter(lead_facts::Column::TenantId.eq(globex_id))
        .exec(&txn)
        .await
        .unwrap();
    assert_eq!(renamed.rows_affected, 0);
    let now = chrono::Utc::now();
    let planted = team::ActiveModel {
        tenant_id: Set(globex_id),
        id: Set(entity::TeamId::new()),
        name: Set("Planted".into()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .unwrap_err();
    assert!(
        planted.to_string().contains("row-level security"),
        "{planted}"
    );
    txn.rollback().await.unwrap();
    let globex_leads: Connection<Name> = app
        .root(
            Some(&globex.token),
            "{ leads { edges { node { name } } } }",
            json!({}),
        )
        .await;
    let names: Vec<&str> = globex_leads.nodes().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["Globex's lead"]);
    let teams: Vec<Value> = app
        .root(Some(&globex.token), "{ teams { name } }", json!({}))
        .await;
    assert!(teams.is_empty(), "{teams:?}");
}

/// Every table that holds tenants' rows has the wall, also against the
/// role that owns the tables (the one the server connects as).
#[tokio::test]
async fn on_postgresql_every_table_of_tenant_rows_has_row_level_security() {
    let app = spawn_app().await;
    if app.db.get_database_backend() != DbBackend::Postgres {
        eprintln!("skipped: SQLite has no row-level security");
        return;
    }
    let rows = app
        .system_db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.relname::text AS name, c.relrowsecurity AND c.relforcerowsecurity AS walled \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r' AND EXISTS ( \
               SELECT 1 FROM pg_attribute a \
               WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)",
        ))
        .await
        .unwrap();
    let tables: Vec<(String, bool)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get("", "name").unwrap(),
                r.try_get("", "walled").unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "leads",
        "lead_scores",
        "activities",
        "users",
        "webhook_deliveries",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let open: Vec<&str> = tables
        .iter()
        .filter(|(_, walled)| !walled)
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(open.is_empty(), "tables without the wall: {open:?}");
}
