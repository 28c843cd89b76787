//! Starting the server for a test and talking to it as a frontend would.

use leadrank::{config::Settings, startup::Application};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use tempfile::TempDir;

/// A running server with its own database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// The JWT secret the server signs with, to forge tokens in tests.
    pub jwt_secret: String,
    /// Statements the server has run, to check queries stay constant.
    pub queries: leadrank::db::QueryCounter,
    /// The server's pool, for running jobs at a chosen time. On PostgreSQL
    /// it sees no tenant's rows unless told which tenant it works for, as
    /// the server's own code does.
    pub db: DatabaseConnection,
    /// A connection that sees every tenant's rows (a system connection to
    /// PostgreSQL's row-level security), for setting up and checking what
    /// no request can.
    pub system_db: DatabaseConnection,
    /// Its database, for a second server on the same data.
    pub database_url: String,
    _dir: TempDir,
    postgres: Option<(String, String)>,
}

/// One test's database: a temp SQLite file, or a fresh PostgreSQL
/// database when `TEST_DATABASE_URL` is set.
async fn fresh_database(dir: &TempDir) -> (String, Option<(String, String)>) {
    match std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        None => (
            format!("sqlite://{}/leadrank.db", dir.path().display()),
            None,
        ),
        Some(admin_url) => {
            let name = format!("lr_test_{}", uuid::Uuid::now_v7().simple());
            let admin = Database::connect(&admin_url)
                .await
                .expect("TEST_DATABASE_URL is reachable");
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("the test role may create databases");
            admin.close().await.ok();
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(base, _)| base);
            (format!("{base}/{name}"), Some((admin_url.clone(), name)))
        }
    }
}

/// Starts the server with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the server with some settings overridden, as environment
/// variables would.
/// A server whose background workers never touch the database, so that
/// `queries` counts only what the test's own requests run.
pub async fn spawn_quiet_app() -> TestApp {
    spawn_app_with(&[
        ("LEADRANK_WEBHOOK_WORKER", "false"),
        ("LEADRANK_LIVE_UPDATES", "false"),
        ("LEADRANK_SCHEDULER", "false"),
    ])
    .await
}

pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (database_url, postgres) = fresh_database(&dir).await;
    let jwt_secret = format!("test-secret-{}", uuid::Uuid::now_v7().simple());
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), database_url.clone()),
        ("LEADRANK_BIND".into(), "127.0.0.1:0".into()),
        ("LEADRANK_JWT_SECRET".into(), jwt_secret.clone()),
        ("LEADRANK_DB_MAX_CONNECTIONS".into(), "4".into()),
        // Tests run the job themselves, at the time they choose.
        ("LEADRANK_SCHEDULER".into(), "false".into()),
        // Tests play a developer's machine (introspection on); the tests
        // of production defaults say so.
        ("LEADRANK_ENV".into(), "development".into()),
        // Tests send hundreds of requests a second as one user; the tests
        // of the rate limits set their own.
        ("LEADRANK_USER_REQUESTS_PER_MINUTE".into(), "0".into()),
        ("LEADRANK_TENANT_REQUESTS_PER_MINUTE".into(), "0".into()),
        // Tests sign up many companies from one address; the test of the
        // sign-up throttle sets its own limit.
        ("LEADRANK_SIGNUPS_PER_CLIENT".into(), "0".into()),
    ];
    vars.extend(
        overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let settings = Settings::from_lookup(|name| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("valid test settings");
    let app = Application::build(settings)
        .await
        .expect("the server starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let queries = app.queries();
    let db = app.db().clone();
    let database_url = settings_url(&vars);
    let system_db = system_connection(&db, &database_url).await;
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: {
            leadrank::tls::install_provider();
            reqwest::Client::new()
        },
        jwt_secret,
        queries,
        db,
        system_db,
        database_url,
        _dir: dir,
        postgres,
    }
}

/// A connection to `url` for which PostgreSQL's row-level security lets
/// every tenant's rows through; on SQLite, the server's pool.
async fn system_connection(db: &DatabaseConnection, url: &str) -> DatabaseConnection {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return db.clone();
    }
    let mut options = sea_orm::ConnectOptions::new(url.to_owned());
    options
        .max_connections(2)
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(|opts| opts.options([("leadrank.system", "on")]));
    Database::connect(options)
        .await
        .expect("the test database accepts a system connection")
}

/// The database the server was given: the fresh one, or an override.
fn settings_url(vars: &[(String, String)]) -> String {
    vars.iter()
        .rev()
        .find(|(k, _)| k == "DATABASE_URL")
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop the test database from a thread of its own: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let admin = Database::connect(&admin_url).await.ok()?;
                admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
    }
}

/// A signed-up tenant's owner session.
pub struct Tenant {
    pub id: String,
    pub slug: String,
    pub owner_id: String,
    pub owner_email: String,
    pub token: String,
    pub refresh_token: String,
}

pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// Posts a GraphQL request and returns the whole response body.
    pub async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the server answers");
        assert!(response.status().is_success(), "HTTP {}", response.status());
        response.json().await.expect("a JSON body")
    }

    /// Signs up a tenant named after `slug`, in `locale`.
    pub async fn sign_up_tenant_in(&self, slug: &str, locale: &str) -> Tenant {
        let email = format!("owner@{slug}.test");
        let body = self
            .graphql(
                None,
                "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken refreshToken user { id } tenant { id slug } } }",
                json!({"input": {"tenantName": format!("{slug} Inc."), "tenantSlug": slug, "email": email,
                    "password": PASSWORD, "displayName": "Owner", "locale": locale, "timeZone": "Asia/Shanghai"}}),
            )
            .await;
        let payload = &body["data"]["signUp"];
        assert!(payload.is_object(), "sign-up failed: {body}");
        Tenant {
            id: payload["tenant"]["id"].as_str().unwrap().to_owned(),
            slug: slug.to_owned(),
            owner_id: payload["user"]["id"].as_str().unwrap().to_owned(),
            owner_email: email,
            token: payload["accessToken"].as_str().unwrap().to_owned(),
            refresh_token: payload["refreshToken"].as_str().unwrap().to_owned(),
        }
    }

    /// Signs up a tenant in English.
    pub async fn sign_up_tenant(&self, slug: &str) -> Tenant {
        self.sign_up_tenant_in(slug, "en").await
    }

    /// Logs in and returns the whole response.
    pub async fn login(&self, slug: &str, email: &str, password: &str) -> Value {
        self.graphql(
            None,
            "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken user { email role } } }",
            json!({"input": {"tenantSlug": slug, "email": email, "password": password}}),
        )
        .await
    }

    /// Creates a user as `tenant`'s owner and returns the whole response.
    pub async fn create_user(
        &self,
        token: &str,
        email: &str,
        role: &str,
        team_ids: &[&str],
    ) -> Value {
        self.graphql(
            Some(token),
            "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id email role teams { id name } } } }",
            json!({"input": {"email": email, "password": PASSWORD, "displayName": email, "role": role, "teamIds": team_ids}}),
        )
        .await
    }

    /// Creates a team and returns the whole response.
    pub async fn create_team(&self, token: &str, name: &str, member_ids: &[&str]) -> Value {
        self.graphql(
            Some(token),
            "mutation($input: CreateTeamInput!) { createTeam(input: $input) { team { id name members { id email } } } }",
            json!({"input": {"name": name, "memberIds": member_ids}}),
        )
        .await
    }

    /// Creates an empty team and returns its id.
    pub async fn new_team(&self, token: &str, name: &str) -> String {
        let body = self.create_team(token, name, &[]).await;
        body["data"]["createTeam"]["team"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("createTeam failed: {body}"))
            .to_owned()
    }

    /// Waits (up to 20 seconds) for the job run `id` to succeed or fail,
    /// and returns it as `jobRuns` lists it.
    pub async fn finished_run(&self, token: &str, id: &Value) -> Value {
        for _ in 0..400 {
            let body = self
                .graphql(
                    Some(token),
                    "{ jobRuns(first: 50) { id kind trigger status error leadsScanned } }",
                    json!({}),
                )
                .await;
            let run = body["data"]["jobRuns"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["id"] == *id)
                .unwrap_or_else(|| panic!("run {id} is not listed: {body}"))
                .clone();
            if run["status"] == "SUCCEEDED" || run["status"] == "FAILED" {
                return run;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the run {id} did not finish within 20 seconds");
    }

    /// The tenant's 200 newest audit entries, newest first.
    pub async fn audit_entries(&self, token: &str) -> Vec<Value> {
        let body = self
            .graphql(
                Some(token),
                "{ auditLog(first: 200) { edges { node { action entity entityId before after actor { id } } } } }",
                json!({}),
            )
            .await;
        body["data"]["auditLog"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("auditLog failed: {body}"))
            .iter()
            .map(|e| e["node"].clone())
            .collect()
    }

    /// Signs in as a newly created user of `tenant` with `role`.
    pub async fn user_with_role(&self, tenant: &Tenant, role: &str) -> String {
        let email = format!("{}@{}.test", role.to_lowercase(), tenant.slug);
        let created = self.create_user(&tenant.token, &email, role, &[]).await;
        assert!(created["data"]["createUser"].is_object(), "{created}");
        let login = self.login(&tenant.slug, &email, PASSWORD).await;
        login["data"]["login"]["accessToken"]
            .as_str()
            .expect("the new user signs in")
            .to_owned()
    }
}

/// The first error's `extensions.code`.
pub fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {body}"))
}

/// The first error's `extensions.field`.
pub fn error_field(body: &Value) -> &str {
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a field, got {body}"))
}

/// The first error's message.
pub fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {body}"))
}
