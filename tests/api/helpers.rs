//! Starting the server for a test and talking to it as a frontend would.

use leadrank::{config::Settings, startup::Application};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
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

/// Starts the server with some settings overridden, as environment
/// variables would.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    // The process's one subscriber goes in before any server runs, so no
    // callsite's interest is ever worked out without it (see `observed`).
    observed();
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

/// A user as [`TestApp::try_create_user`] asks for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: String,
    pub email: String,
    pub role: String,
    pub teams: Vec<TeamName>,
}

/// `{ id name }` of a team.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamName {
    pub id: String,
    pub name: String,
}

/// A team as [`TestApp::try_create_team`] asks for it.
// The shape of the query helpers ask with: every field it returns is
// named, though not every test reads every one.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub members: Vec<Member>,
}

/// `{ id email }` of a team's member.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: String,
    pub email: String,
}

/// What `login` gives: `accessToken refreshToken user { email role }`.
// The shape of the query helpers ask with: every field it returns is
// named, though not every test reads every one.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub user: SessionUser,
}

/// The signed-in user of a [`Session`].
// The shape of the query helpers ask with: every field it returns is
// named, though not every test reads every one.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionUser {
    pub email: String,
    pub role: String,
}

/// One entry of a GraphQL answer's `errors`.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphqlError {
    pub message: String,
    #[serde(default)]
    pub extensions: ErrorExtensions,
}

/// What the client reads from an error besides its message. Not
/// `deny_unknown_fields`: some errors carry more (`max`, `retryAfter`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorExtensions {
    pub code: Option<String>,
    pub field: Option<String>,
    pub existing_id: Option<String>,
    /// Seconds to wait, on RATE_LIMITED.
    pub retry_after: Option<u64>,
}

/// The errors of a GraphQL answer that had some, with the whole body to
/// print when a test fails.
#[derive(Debug, Clone)]
pub struct GraphqlErrors {
    pub errors: Vec<GraphqlError>,
    pub body: Value,
}

impl GraphqlErrors {
    fn first(&self) -> &GraphqlError {
        self.errors
            .first()
            .unwrap_or_else(|| panic!("expected an error, got {}", self.body))
    }

    /// The first error's `extensions.code`.
    pub fn code(&self) -> &str {
        self.first()
            .extensions
            .code
            .as_deref()
            .unwrap_or_else(|| panic!("expected an error code, got {}", self.body))
    }

    /// The first error's `extensions.field`.
    pub fn field(&self) -> &str {
        self.first()
            .extensions
            .field
            .as_deref()
            .unwrap_or_else(|| panic!("expected an error field, got {}", self.body))
    }

    /// The first error's message.
    pub fn message(&self) -> &str {
        &self.first().message
    }

    /// Whether the answer carried no data beside its errors (`data` absent
    /// or null): nothing of a refused request was run or shown.
    pub fn has_no_data(&self) -> bool {
        self.body.get("data").is_none_or(Value::is_null)
    }
}

impl std::fmt::Display for GraphqlErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.body)
    }
}

/// Reads a GraphQL answer: its errors when it has any, otherwise its
/// `data` as `T`. Response structs use `deny_unknown_fields`, so a field
/// the struct spells differently from the query fails here instead of
/// reading as null.
pub fn parse_answer<T: DeserializeOwned>(query: &str, body: Value) -> Result<T, GraphqlErrors> {
    if body
        .get("errors")
        .and_then(Value::as_array)
        .is_some_and(|e| !e.is_empty())
    {
        let errors = serde_json::from_value(body["errors"].clone())
            .unwrap_or_else(|e| panic!("unreadable errors ({e}): {body}"));
        return Err(GraphqlErrors { errors, body });
    }
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    Ok(serde_json::from_value(data).unwrap_or_else(|e| {
        panic!(
            "the answer does not have the shape the test expects: {e}\n  query: {query}\n  answer: {body}"
        )
    }))
}

/// The user the user helpers create, as they ask for it.
const CREATE_USER: &str = "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id email role teams { id name } } } }";

/// The team the team helpers create, as they ask for it.
const CREATE_TEAM: &str = "mutation($input: CreateTeamInput!) { createTeam(input: $input) { team { id name members { id email } } } }";

impl TestApp {
    /// Sends a request and reads its answer: `Ok(data)` as `T`, or the
    /// errors when there are any.
    pub async fn query<T: DeserializeOwned>(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Result<T, GraphqlErrors> {
        parse_answer(query, self.graphql(token, query, variables).await)
    }

    /// Sends a request that must succeed and returns its `data` as `T`;
    /// fails the test with the errors printed otherwise.
    pub async fn data<T: DeserializeOwned>(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> T {
        self.query(token, query, variables)
            .await
            .unwrap_or_else(|e| panic!("the request failed: {e}\n  query: {query}"))
    }

    /// Sends a request that must be refused and returns its errors; fails
    /// the test when it succeeds.
    pub async fn refused(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> GraphqlErrors {
        match self.query::<Value>(token, query, variables).await {
            Ok(data) => panic!("expected the request to be refused, got {data}\n  query: {query}"),
            Err(errors) => errors,
        }
    }

    /// Sends a request whose answer has one root field, such as
    /// `{ leads { … } }`, and returns that field's value as `T`, or the
    /// errors when there are any.
    pub async fn query_root<T: DeserializeOwned>(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> Result<T, GraphqlErrors> {
        let data: std::collections::BTreeMap<String, T> =
            self.query(token, query, variables).await?;
        let mut values = data.into_values();
        match (values.next(), values.next()) {
            (Some(value), None) => Ok(value),
            _ => panic!("expected one root field in the answer to {query}"),
        }
    }

    /// Sends a request that must succeed and whose answer has one root
    /// field, and returns that field's value as `T`.
    pub async fn root<T: DeserializeOwned>(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> T {
        self.query_root(token, query, variables)
            .await
            .unwrap_or_else(|e| panic!("the request failed: {e}\n  query: {query}"))
    }

    /// Posts a GraphQL request and returns the whole response body.
    pub async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.graphql_with_request_id(token, query, variables)
            .await
            .1
    }

    /// Signs up a tenant named after `slug`, in `locale`.
    pub async fn sign_up_tenant_in(&self, slug: &str, locale: &str) -> Tenant {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct SignedUp {
            access_token: String,
            refresh_token: String,
            user: Id,
            tenant: SignedUpTenant,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct SignedUpTenant {
            id: String,
            slug: String,
        }
        let email = format!("owner@{slug}.test");
        let signed_up: SignedUp = self
            .root(
                None,
                "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken refreshToken user { id } tenant { id slug } } }",
                json!({"input": {"tenantName": format!("{slug} Inc."), "tenantSlug": slug, "email": email,
                    "password": PASSWORD, "displayName": "Owner", "locale": locale, "timeZone": "Asia/Shanghai"}}),
            )
            .await;
        assert_eq!(signed_up.tenant.slug, slug);
        Tenant {
            id: signed_up.tenant.id,
            slug: slug.to_owned(),
            owner_id: signed_up.user.id,
            owner_email: email,
            token: signed_up.access_token,
            refresh_token: signed_up.refresh_token,
        }
    }

    /// Signs up a tenant in English.
    pub async fn sign_up_tenant(&self, slug: &str) -> Tenant {
        self.sign_up_tenant_in(slug, "en").await
    }

    /// Logs in: the session, or why it was refused.
    pub async fn try_login(
        &self,
        slug: &str,
        email: &str,
        password: &str,
    ) -> Result<Session, GraphqlErrors> {
        self.query_root(
            None,
            "mutation($input: LoginInput!) { login(input: $input) { accessToken refreshToken user { email role } } }",
            json!({"input": {"tenantSlug": slug, "email": email, "password": password}}),
        )
        .await
    }

    /// Creates a user as `token`'s holder: the user, or why it was refused.
    pub async fn try_create_user(
        &self,
        token: &str,
        email: &str,
        role: &str,
        team_ids: &[&str],
    ) -> Result<User, GraphqlErrors> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Created {
            user: User,
        }
        let created: Created = self
            .query_root(
                Some(token),
                CREATE_USER,
                json!({"input": {"email": email, "password": PASSWORD, "displayName": email, "role": role, "teamIds": team_ids}}),
            )
            .await?;
        Ok(created.user)
    }

    /// Creates a team as `token`'s holder: the team, or why it was refused.
    pub async fn try_create_team(
        &self,
        token: &str,
        name: &str,
        member_ids: &[&str],
    ) -> Result<Team, GraphqlErrors> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Created {
            team: Team,
        }
        let created: Created = self
            .query_root(
                Some(token),
                CREATE_TEAM,
                json!({"input": {"name": name, "memberIds": member_ids}}),
            )
            .await?;
        Ok(created.team)
    }

    /// Creates an empty team and returns its id.
    pub async fn new_team(&self, token: &str, name: &str) -> String {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Created {
            team: CreatedTeam,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct CreatedTeam {
            id: String,
        }
        let created: Created = self
            .root(
                Some(token),
                "mutation($input: CreateTeamInput!) { createTeam(input: $input) { team { id } } }",
                json!({"input": {"name": name, "memberIds": []}}),
            )
            .await;
        created.team.id
    }

    /// Waits (up to 20 seconds) for the job run `id` to succeed or fail,
    /// and returns it as `jobRuns` lists it. The run goes on in the
    /// server's background with no handle to await, so this asks
    /// `jobRuns` until it says so.
    pub async fn finished_run(&self, token: &str, id: &str) -> JobRun {
        eventually(
            &format!("the run {id} finishes"),
            std::time::Duration::from_secs(20),
            || async move {
                let runs: Vec<JobRun> = self
                    .root(
                        Some(token),
                        "{ jobRuns(first: 50) { id kind trigger status error leadsScanned } }",
                        json!({}),
                    )
                    .await;
                let run = runs
                    .into_iter()
                    .find(|r| r.id == id)
                    .unwrap_or_else(|| panic!("run {id} is not listed"));
                matches!(run.status.as_str(), "SUCCEEDED" | "FAILED").then_some(run)
            },
        )
        .await
    }

    /// The tenant's 200 newest audit entries, newest first.
    pub async fn audit_entries(&self, token: &str) -> Vec<AuditEntry> {
        let log: Connection<AuditEntry> = self
            .root(
                Some(token),
                "{ auditLog(first: 200) { edges { node { action entity entityId before after actor { id } } } } }",
                json!({}),
            )
            .await;
        log.edges.into_iter().map(|e| e.node).collect()
    }

    /// Signs in as a newly created user of `tenant` with `role`.
    pub async fn user_with_role(&self, tenant: &Tenant, role: &str) -> String {
        let email = format!("{}@{}.test", role.to_lowercase(), tenant.slug);
        self.member(tenant, &email, role, &[]).await.1
    }
}

/// An audit entry as [`TestApp::audit_entries`] asks for it. `before` and
/// `after` are JSON scalars, whose keys depend on the entity: null when
/// there is none.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditEntry {
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub before: Value,
    pub after: Value,
    pub actor: Option<Id>,
}

impl AuditEntry {
    /// The id of whoever made the change; `None` for the system.
    pub fn actor_id(&self) -> Option<&str> {
        self.actor.as_ref().map(|a| a.id.as_str())
    }
}

/// A job run as [`TestApp::finished_run`] asks for it.
// The shape of the query helpers ask with: every field it returns is
// named, though not every test reads every one.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobRun {
    pub id: String,
    pub kind: String,
    pub trigger: String,
    pub status: String,
    pub error: Option<String>,
    pub leads_scanned: i64,
}

/// Asks `probe` until it answers `Some`, for at most `within`, and returns
/// the answer; fails the test saying `what` did not happen otherwise.
///
/// For what the server changes in its background and announces nowhere
/// (a job run's status, a webhook delivery's log row): wait on a
/// notification or a handle where the app offers one. Each probe here is
/// a request to the server, which paces the loop; between probes the task
/// only yields. No fixed sleep guesses how long the work takes.
pub async fn eventually<T, F, Fut>(what: &str, within: std::time::Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let asking = async {
        loop {
            if let Some(answer) = probe().await {
                return answer;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(within, asking)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {within:?}"))
}

// ---------------------------------------------------------------------
// Leads: the shapes tests read and the helpers that make and change them.
// ---------------------------------------------------------------------

/// The lead fields the lead helpers ask for; [`Lead`] is their shape.
pub const LEAD_FIELDS: &str =
    "id name company updatedAt email phone score tier tierRank flags status version closeProbability
    nextFollowUpAt attributes owner { id } team { id } stage { key kind } pipeline { name }
    scoreBreakdown { total tier modelVersion contributions { dimensionKey points weight normalized }
                     overrides { rule effect reason } }";

/// A lead as [`LEAD_FIELDS`] asks for it.
// The shape of the query helpers ask with: every field it returns is
// named, though not every test reads every one.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lead {
    pub id: String,
    pub name: String,
    pub company: Option<String>,
    pub updated_at: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// 0 to 100.
    pub score: f64,
    pub tier: String,
    pub tier_rank: i64,
    pub flags: Vec<String>,
    pub status: String,
    pub version: i64,
    pub close_probability: Option<f64>,
    pub next_follow_up_at: Option<String>,
    pub attributes: Value,
    pub owner: Option<Id>,
    pub team: Option<Id>,
    pub stage: StageRef,
    pub pipeline: PipelineName,
    pub score_breakdown: ScoreBreakdown,
}

impl Lead {
    /// Whether the last scoring raised `flag` (`COLD`, `URGENT`, …).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The points of every dimension its explanation shows, added up.
    pub fn points_shown(&self) -> f64 {
        self.score_breakdown
            .contributions
            .iter()
            .map(|c| c.points)
            .sum()
    }

    /// Its owner's id; `None` in the shared pool.
    pub fn owner_id(&self) -> Option<&str> {
        self.owner.as_ref().map(|o| o.id.as_str())
    }
}

/// `{ id }` of anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Id {
    pub id: String,
}

/// `stage { key kind }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRef {
    pub key: String,
    pub kind: String,
}

/// `pipeline { name }`.
// The shape of the query helpers ask with: every field it returns is
// named, though not every test reads every one.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineName {
    pub name: String,
}

/// `scoreBreakdown` as [`LEAD_FIELDS`] asks for it.
// The shape of the query helpers ask with: every field it returns is
// named, though not every test reads every one.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreBreakdown {
    pub total: f64,
    pub tier: String,
    pub model_version: i64,
    pub contributions: Vec<Contribution>,
    pub overrides: Vec<AppliedOverride>,
}

/// One dimension's share of a score.
// The shape of the query helpers ask with: every field it returns is
// named, though not every test reads every one.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Contribution {
    pub dimension_key: String,
    pub points: f64,
    pub weight: f64,
    pub normalized: f64,
}

/// A rule that raised or capped a tier.
// The shape of the query helpers ask with: every field it returns is
// named, though not every test reads every one.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedOverride {
    pub rule: String,
    pub effect: String,
    pub reason: String,
}

/// A `followUpQueue` entry as [`TestApp::queue`] asks for it.
// The shape of the query helpers ask with: every field it returns is
// named, though not every test reads every one.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueueEntry {
    pub priority: i64,
    pub due_at: Option<String>,
    pub overdue_days: i64,
    pub reasons: Vec<String>,
    pub lead: QueuedLead,
}

/// The lead of a queue entry.
// The shape of the query helpers ask with: every field it returns is
// named, though not every test reads every one.
#[allow(dead_code)]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuedLead {
    pub id: String,
    pub name: String,
    pub tier: String,
    pub score: f64,
    pub flags: Vec<String>,
}

/// A page of a connection (`leads`, `auditLog`, …): only what the query
/// asked for is there, and anything it did not expect fails.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connection<N> {
    pub total_count: Option<i64>,
    pub page_info: Option<PageInfo>,
    #[serde(default = "Vec::new")]
    pub edges: Vec<Edge<N>>,
}

impl<N> Connection<N> {
    /// The nodes of the page, in order.
    pub fn nodes(&self) -> impl Iterator<Item = &N> {
        self.edges.iter().map(|e| &e.node)
    }

    /// Whether another page follows; false when `pageInfo` was not asked.
    pub fn has_next_page(&self) -> bool {
        self.page_info.as_ref().is_some_and(|p| p.has_next_page)
    }

    /// The cursor after this page.
    pub fn end_cursor(&self) -> Option<String> {
        self.page_info.as_ref().and_then(|p| p.end_cursor.clone())
    }
}

/// One edge of a connection.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge<N> {
    pub cursor: Option<String>,
    pub node: N,
}

/// `pageInfo { hasNextPage endCursor }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

/// `{ name }` of anything.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Name {
    pub name: String,
}

/// The payload of a lead mutation: `{ lead { … } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeadPayload {
    lead: Lead,
}

/// Ratings that make a strong lead.
pub fn strong() -> Value {
    json!({"budget": 5, "authority": 5, "need": 5, "timeline": 5, "industry_position": 5, "decision_chain": 5})
}

/// Ratings that make a weak lead.
pub fn weak() -> Value {
    json!({"budget": 1, "authority": 1, "need": 2, "timeline": 1, "industry_position": 1, "decision_chain": 1})
}

/// `days` days before now, as RFC 3339.
pub fn days_ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339()
}

impl TestApp {
    /// Creates a lead: the lead, or why it was refused.
    pub async fn create_lead(&self, token: &str, input: Value) -> Result<Lead, GraphqlErrors> {
        self.lead_mutation(token, "createLead", "CreateLeadInput", input)
            .await
    }

    /// Creates a lead that must succeed, and returns it.
    pub async fn new_lead(&self, token: &str, input: Value) -> Lead {
        self.create_lead(token, input)
            .await
            .unwrap_or_else(|e| panic!("createLead failed: {e}"))
    }

    /// Runs a lead mutation whose payload is `{ lead }`, such as
    /// `moveLeadStage` with input type `MoveStageInput`: the lead, or why
    /// it was refused.
    pub async fn lead_mutation(
        &self,
        token: &str,
        name: &str,
        input_type: &str,
        input: Value,
    ) -> Result<Lead, GraphqlErrors> {
        let query = format!(
            "mutation($input: {input_type}!) {{ {name}(input: $input) {{ lead {{ {LEAD_FIELDS} }} }} }}"
        );
        let mut data: std::collections::HashMap<String, LeadPayload> = self
            .query(Some(token), &query, json!({ "input": input }))
            .await?;
        Ok(data
            .remove(name)
            .unwrap_or_else(|| panic!("the answer has no {name}"))
            .lead)
    }

    /// Records `signal` on `lead`, with `extra` input fields such as
    /// `occurredAt`, and returns the re-scored lead.
    pub async fn record(&self, token: &str, lead: &str, signal: &str, extra: Value) -> Lead {
        let mut input = json!({"leadId": lead, "signalKey": signal});
        if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
            input.extend(extra.clone());
        }
        self.lead_mutation(token, "recordActivity", "RecordActivityInput", input)
            .await
            .unwrap_or_else(|e| panic!("recordActivity failed: {e}"))
    }

    /// The follow-up queue, of `owner` or of the caller: the entries, or
    /// why it was refused.
    pub async fn try_queue(
        &self,
        token: &str,
        owner: Option<&str>,
    ) -> Result<Vec<QueueEntry>, GraphqlErrors> {
        self.query_root(
            Some(token),
            "query($owner: ID) { followUpQueue(ownerId: $owner) { priority dueAt overdueDays reasons lead { id name tier score flags } } }",
            json!({ "owner": owner }),
        )
        .await
    }

    /// The follow-up queue, of `owner` or of the caller, which the caller
    /// may read.
    pub async fn queue(&self, token: &str, owner: Option<&str>) -> Vec<QueueEntry> {
        self.try_queue(token, owner)
            .await
            .unwrap_or_else(|e| panic!("followUpQueue failed: {e}"))
    }

    /// The lead `id`, which the caller must be able to see.
    pub async fn lead_by_id(&self, token: &str, id: &str) -> Lead {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Data {
            lead: Lead,
        }
        let data: Data = self
            .data(
                Some(token),
                &format!("query($id: ID!) {{ lead(id: $id) {{ {LEAD_FIELDS} }} }}"),
                json!({ "id": id }),
            )
            .await;
        data.lead
    }

    /// Creates a user of `tenant` and signs them in: (id, token).
    pub async fn member(
        &self,
        tenant: &Tenant,
        email: &str,
        role: &str,
        teams: &[&str],
    ) -> (String, String) {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Created {
            user: Id,
        }
        let created: Created = self
            .root(
                Some(&tenant.token),
                "mutation($input: CreateUserInput!) { createUser(input: $input) { user { id } } }",
                json!({"input": {"email": email, "password": PASSWORD, "displayName": email, "role": role, "teamIds": teams}}),
            )
            .await;
        let session = self
            .try_login(&tenant.slug, email, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("the new user cannot sign in: {e}"));
        (created.user.id, session.access_token)
    }
}

/// An API key's id and its secret, shown once.
pub struct Key {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    /// Creates an API key that must succeed.
    pub async fn new_api_key(&self, token: &str, name: &str, scopes: &[&str]) -> Key {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Created {
            secret: String,
            api_key: Id,
        }
        let created: Created = self
            .root(
                Some(token),
                "mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id } } }",
                json!({"input": {"name": name, "scopes": scopes}}),
            )
            .await;
        Key {
            id: created.api_key.id,
            secret: created.secret,
        }
    }
}

// ---------------------------------------------------------------------
// What the server logs.
// ---------------------------------------------------------------------

/// The ERROR events logged in this process, each formatted with the spans
/// it happened in (so with its request's `request_id`). One global
/// subscriber serves the whole test binary, from the first [`error_log`]
/// on; tests pick their own events out by request id.
pub struct ErrorLog(&'static std::sync::Mutex<Vec<String>>);

/// What the process's one global subscriber keeps: the server runs on
/// threads of its own, so only a global subscriber sees its logs and
/// spans, and a process has one. Tests that read either share it.
struct Observed {
    errors: &'static std::sync::Mutex<Vec<String>>,
    spans: &'static std::sync::Mutex<Vec<SpanFields>>,
}

fn observed() -> &'static Observed {
    static OBSERVED: std::sync::OnceLock<Observed> = std::sync::OnceLock::new();
    // Installed inside the initialiser, so that no caller goes on before
    // the subscriber is in place. The buffers live as long as the process.
    OBSERVED.get_or_init(|| {
        use tracing_subscriber::{filter, prelude::*};
        let errors: &'static std::sync::Mutex<Vec<String>> = Box::leak(Box::default());
        let spans: &'static std::sync::Mutex<Vec<SpanFields>> = Box::leak(Box::default());
        // Spans of every level pass, so that an event carries its
        // request's fields; of events, only errors are kept.
        let only_errors = filter::filter_fn(|meta| {
            (meta.is_span() && *meta.level() <= tracing::Level::INFO)
                || *meta.level() == tracing::Level::ERROR
        })
        .with_max_level_hint(filter::LevelFilter::INFO);
        // Of spans, the one kind the trace test reads, so the other tests
        // running beside it pay almost nothing.
        let only_create_lead =
            filter::filter_fn(|meta| meta.is_span() && meta.name() == "create_lead");
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || EventSink(errors))
                    .with_filter(only_errors),
            )
            .with(SpanCapture(spans).with_filter(only_create_lead))
            .try_init()
            .expect("only helpers::observed installs a global subscriber");
        // A callsite first reached by another test's server while the
        // subscriber went in can keep the interest it had before ("none"),
        // and the trace test then missed its span in about one full run in
        // three. Asking every callsite again settled most of it, but not a
        // callsite still registering while the cache was rebuilt (a run in
        // ten or so): so spawn_app_with installs the subscriber before any
        // server starts, and no callsite is reached without it.
        tracing::callsite::rebuild_interest_cache();
        Observed { errors, spans }
    })
}

/// Starts keeping the process's ERROR events, if nothing does yet. Call it
/// before the request whose log the test reads.
pub fn error_log() -> ErrorLog {
    ErrorLog(observed().errors)
}

/// A span's fields by name, as text.
pub type SpanFields = Vec<(String, String)>;

/// Every `create_lead` span closed in this process since the first call,
/// with its fields as they were when it closed.
pub fn created_lead_spans() -> &'static std::sync::Mutex<Vec<SpanFields>> {
    observed().spans
}

/// Keeps the fields of the spans it is shown.
struct SpanCapture(&'static std::sync::Mutex<Vec<SpanFields>>);

#[derive(Default)]
struct RecordedFields(SpanFields);

impl tracing::field::Visit for RecordedFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S> tracing_subscriber::Layer<S> for SpanCapture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = RecordedFields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<RecordedFields>()
        {
            values.record(fields);
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(fields) = span.extensions_mut().remove::<RecordedFields>()
        {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(fields.0);
        }
    }
}

impl ErrorLog {
    /// The events logged while serving the request `request_id`.
    pub fn of_request(&self, request_id: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|event| event.contains(request_id))
            .cloned()
            .collect()
    }
}

/// Keeps each formatted event as an entry of its own: the formatter writes
/// an event, however many lines, in one call.
struct EventSink(&'static std::sync::Mutex<Vec<String>>);

impl std::io::Write for EventSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl TestApp {
    /// Posts a GraphQL request and returns the request id the server
    /// answered with (`x-request-id`, as its logs name the request) and the
    /// whole body.
    pub async fn graphql_with_request_id(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (String, Value) {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the server answers");
        assert!(response.status().is_success(), "HTTP {}", response.status());
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("the answer names its request")
            .to_owned();
        (request_id, response.json().await.expect("a JSON body"))
    }

    /// Breaks the database under the server on purpose: renames `table`
    /// away, through the test's own connection, as a lost migration or a
    /// hand-run statement would.
    pub async fn break_table(&self, table: &str) {
        self.system_db
            .execute_unprepared(&format!(
                "ALTER TABLE \"{table}\" RENAME TO \"{table}_broken_by_test\""
            ))
            .await
            .expect("the test may rename a table");
    }
}

/// The answer to `{ __schema { queryType { name } } }`: the schema when
/// introspection is on, null otherwise.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Introspected {
    pub __schema: Option<IntrospectedSchema>,
}

/// The part of the schema [`Introspected`] asks for.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntrospectedSchema {
    pub query_type: Name,
}

/// The answer to `signUp(…) { tenant { slug } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedUpSlug {
    pub tenant: Slugged,
}

/// A tenant read for its slug alone.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slugged {
    pub slug: String,
}
