//! Settings, read once from the environment and validated at start-up.
//!
//! Every variable has a safe default; a value that cannot be parsed stops the
//! server with a message naming the variable. Secrets redact in `Debug`.

use std::{fmt, path::PathBuf, time::Duration};

use anyhow::{Context, bail};

/// A secret value that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Where the JWT signing secret comes from.
#[derive(Clone, Debug)]
pub enum JwtSecretSource {
    /// `LEADRANK_JWT_SECRET` was set.
    Given(Secret),
    /// Not set: generate one at first start and keep it in this file.
    File(PathBuf),
}

/// The whole configuration of one server process. Its `Debug` hides the
/// database password and the JWT secret.
#[derive(Clone)]
pub struct Settings {
    /// `DATABASE_URL`: `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// `LEADRANK_BIND`: address and port to listen on.
    pub bind: String,
    /// `LEADRANK_JWT_SECRET`, or the file it is generated into.
    pub jwt_secret: JwtSecretSource,
    /// `LEADRANK_ACCESS_TOKEN_TTL_SECS`: lifetime of an access token.
    pub access_token_ttl: Duration,
    /// `LEADRANK_REFRESH_TOKEN_TTL_SECS`: lifetime of a refresh token.
    pub refresh_token_ttl: Duration,
    /// `LEADRANK_SESSION_MAX_LIFETIME_SECS`: the longest a sign-in lasts,
    /// however often its refresh token is traded in.
    pub session_max_lifetime: Duration,
    /// `LEADRANK_CORS_ORIGINS`: comma-separated origins allowed to call the
    /// API from a browser; `*` allows any; empty allows none.
    pub cors_origins: Vec<String>,
    /// `LEADRANK_ENV`: `production` (the default) or `development`; picks
    /// the defaults of settings that differ between the two.
    pub environment: Environment,
    /// `LEADRANK_INTROSPECTION`: whether the schema may be introspected;
    /// by default only in development, so production does not hand its
    /// whole schema to anyone who asks.
    pub introspection: bool,
    /// `LEADRANK_MAX_QUERY_DEPTH`.
    pub max_query_depth: usize,
    /// `LEADRANK_MAX_QUERY_COMPLEXITY`: the cost one HTTP request may have,
    /// shared by the operations of a batch.
    pub max_query_complexity: usize,
    /// `LEADRANK_MAX_QUERY_NESTING`: the deepest nesting of brackets,
    /// braces and parentheses a document may have; checked before parsing,
    /// whose recursion would otherwise overflow the stack.
    pub max_query_nesting: usize,
    /// `LEADRANK_MAX_QUERY_FIELDS`: fields one HTTP request may ask for once
    /// its fragments are expanded, shared by the operations of a batch.
    pub max_query_fields: u64,
    /// `LEADRANK_MAX_QUERY_FRAGMENTS`: fragment definitions per document.
    pub max_query_fragments: usize,
    /// `LEADRANK_MAX_ALIASES_PER_FIELD`: how often one field may be selected
    /// (under different aliases) in one selection set.
    pub max_aliases_per_field: usize,
    /// `LEADRANK_REQUEST_TIMEOUT_SECS`: how long a GraphQL request over HTTP
    /// may run before it is cancelled.
    pub request_timeout: Duration,
    /// `LEADRANK_USER_REQUESTS_PER_MINUTE`: operations one user may send per
    /// minute (a token bucket refilled evenly); 0 for no limit.
    pub user_requests_per_minute: u32,
    /// `LEADRANK_TENANT_REQUESTS_PER_MINUTE`: the same for all users of one
    /// tenant together; 0 for no limit.
    pub tenant_requests_per_minute: u32,
    /// `LEADRANK_BODY_LIMIT_BYTES`: the largest request body accepted.
    pub body_limit_bytes: usize,
    /// `LEADRANK_INGEST_EVENTS_PER_MINUTE`: events one API key (or user)
    /// may send per minute through `POST /v1/events` and
    /// `recordActivities`, as a bucket refilled evenly; 0 for no limit.
    pub ingest_events_per_minute: u32,
    /// `LEADRANK_METRICS_TOKEN`: the bearer token `/metrics` asks for;
    /// unset, `/metrics` is off (404).
    pub metrics_token: Option<Secret>,
    /// `LEADRANK_LOGIN_MAX_FAILURES`: failed logins for one tenant and email
    /// within the window before further attempts are refused.
    pub login_max_failures: u32,
    /// `LEADRANK_LOGIN_MAX_FAILURES_PER_CLIENT`: the same, per client address.
    pub login_max_failures_per_client: u32,
    /// `LEADRANK_LOGIN_WINDOW_SECS`: the throttling window.
    pub login_window: Duration,
    /// `LEADRANK_SIGNUPS_PER_CLIENT`: sign-ups one client address may make
    /// within the sign-up window; 0 for no limit.
    pub sign_ups_per_client: u32,
    /// `LEADRANK_SIGNUP_WINDOW_SECS`: the sign-up throttling window.
    pub sign_up_window: Duration,
    /// `LEADRANK_TRUST_FORWARDED_FOR`: take the client address from
    /// `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    /// `LEADRANK_SCHEDULER`: run each tenant's nightly re-scoring from this
    /// process. Off when an external scheduler runs `leadrank rescore`.
    pub scheduler: bool,
    /// `LEADRANK_JOB_CONCURRENCY`: tenants re-scored at the same time.
    pub job_concurrency: usize,
    /// `LEADRANK_ACTIVATION_INLINE_LEADS`: a model activation re-scores up
    /// to this many open leads in the request; more go to the re-scoring job.
    pub activation_inline_leads: u64,
    /// `LEADRANK_SQLITE_CACHE_MB`: SQLite page cache per connection.
    pub sqlite_cache_mb: u64,
    /// `LEADRANK_DB_MAX_CONNECTIONS`: database pool size.
    pub db_max_connections: u32,
    /// `LEADRANK_WEBHOOK_*`: how webhooks are checked and sent.
    pub webhooks: WebhookSettings,
    /// `LEADRANK_SUBSCRIPTION_BUFFER`: batches of changes held for the
    /// slowest subscriber before it is disconnected.
    pub subscription_buffer: usize,
    /// `LEADRANK_MAX_SUBSCRIPTIONS_PER_CONNECTION`: subscriptions one
    /// WebSocket connection may hold at once.
    pub max_subscriptions_per_connection: usize,
    /// `LEADRANK_MAX_CONNECTIONS_PER_USER`: WebSocket connections one user
    /// may hold open at once, per server process.
    pub max_connections_per_user: usize,
    /// `LEADRANK_LIVE_UPDATES`: feed subscriptions from the database's
    /// change notices (off: subscriptions receive nothing).
    pub live_updates: bool,
}

/// Where the server runs, for the defaults that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// A deployment: the safe defaults.
    Production,
    /// A developer's machine: introspection on.
    Development,
}

impl std::str::FromStr for Environment {
    type Err = anyhow::Error;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.to_ascii_lowercase().as_str() {
            "production" | "prod" => Ok(Self::Production),
            "development" | "dev" => Ok(Self::Development),
            _ => bail!("expected `production` or `development`"),
        }
    }
}

/// How webhook endpoints are checked and their deliveries sent.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// `LEADRANK_WEBHOOK_WORKER`: send deliveries from this process.
    pub worker: bool,
    /// `LEADRANK_WEBHOOK_POLL_MS`: how often the worker looks for due deliveries.
    pub poll_interval: Duration,
    /// `LEADRANK_WEBHOOK_TIMEOUT_SECS`: how long one request may take.
    pub timeout: Duration,
    /// `LEADRANK_WEBHOOK_RETRY_BASE_MS`: the wait before the first retry,
    /// doubled for each further one (at most six hours).
    pub retry_base: Duration,
    /// `LEADRANK_WEBHOOK_MAX_ATTEMPTS`: attempts before a delivery fails for good.
    pub max_attempts: i32,
    /// `LEADRANK_WEBHOOK_DISABLE_AFTER`: failed attempts in a row after
    /// which an endpoint is disabled.
    pub disable_after: i32,
    /// `LEADRANK_WEBHOOK_CONCURRENCY`: requests in flight per endpoint,
    /// per process. A slow receiver holds at most this many; the others
    /// are served meanwhile.
    pub per_endpoint: usize,
    /// `LEADRANK_WEBHOOK_TENANT_CONCURRENCY`: requests in flight per
    /// tenant, per process, across its endpoints: a tenant with many slow
    /// endpoints cannot take every connection.
    pub per_tenant: usize,
    /// `LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST`: accept `http://` URLs to
    /// localhost, for development, and let deliveries reach loopback
    /// addresses; otherwise only `https://` to public addresses. Private,
    /// link-local and other internal addresses are refused either way.
    pub allow_http_localhost: bool,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database_url", &redact(&self.database_url))
            .field("bind", &self.bind)
            .field("jwt_secret", &self.jwt_secret)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("session_max_lifetime", &self.session_max_lifetime)
            .field("cors_origins", &self.cors_origins)
            .field("environment", &self.environment)
            .field("introspection", &self.introspection)
            .field("max_query_depth", &self.max_query_depth)
            .field("max_query_complexity", &self.max_query_complexity)
            .field("max_query_nesting", &self.max_query_nesting)
            .field("max_query_fields", &self.max_query_fields)
            .field("max_query_fragments", &self.max_query_fragments)
            .field("max_aliases_per_field", &self.max_aliases_per_field)
            .field("request_timeout", &self.request_timeout)
            .field("user_requests_per_minute", &self.user_requests_per_minute)
            .field(
                "tenant_requests_per_minute",
                &self.tenant_requests_per_minute,
            )
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("ingest_events_per_minute", &self.ingest_events_per_minute)
            .field("metrics_token", &self.metrics_token)
            .field("login_max_failures", &self.login_max_failures)
            .field(
                "login_max_failures_per_client",
                &self.login_max_failures_per_client,
            )
            .field("login_window", &self.login_window)
            .field("sign_ups_per_client", &self.sign_ups_per_client)
            .field("sign_up_window", &self.sign_up_window)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .field("scheduler", &self.scheduler)
            .field("job_concurrency", &self.job_concurrency)
            .field("activation_inline_leads", &self.activation_inline_leads)
            .field("sqlite_cache_mb", &self.sqlite_cache_mb)
            .field("db_max_connections", &self.db_max_connections)
            .field("webhooks", &self.webhooks)
            .field("subscription_buffer", &self.subscription_buffer)
            .field(
                "max_subscriptions_per_connection",
                &self.max_subscriptions_per_connection,
            )
            .field("max_connections_per_user", &self.max_connections_per_user)
            .field("live_updates", &self.live_updates)
            .finish()
    }
}

impl Settings {
    /// Reads the settings from the process environment.
    ///
    /// # Errors
    /// A variable that is set but cannot be parsed, naming it.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup`, so tests can pass their own.
    ///
    /// # Errors
    /// A variable that is set but cannot be parsed, naming it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let database_url = get("DATABASE_URL").unwrap_or_else(|| "sqlite://leadrank.db".to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("DATABASE_URL must start with sqlite:, postgres:// or postgresql://");
        }
        let jwt_secret = match get("LEADRANK_JWT_SECRET") {
            Some(secret) if secret.len() < 32 => {
                bail!("LEADRANK_JWT_SECRET must be at least 32 characters")
            }
            Some(secret) => JwtSecretSource::Given(Secret::new(secret)),
            None => JwtSecretSource::File(secret_file_beside(&database_url)),
        };
        let environment: Environment = parse_with(&get, "LEADRANK_ENV", Environment::Production)?;
        Ok(Self {
            bind: get("LEADRANK_BIND").unwrap_or_else(|| "127.0.0.1:8080".to_owned()),
            jwt_secret,
            access_token_ttl: Duration::from_secs(parse(
                &get,
                "LEADRANK_ACCESS_TOKEN_TTL_SECS",
                900,
            )?),
            refresh_token_ttl: Duration::from_secs(parse(
                &get,
                "LEADRANK_REFRESH_TOKEN_TTL_SECS",
                30 * 24 * 3600,
            )?),
            session_max_lifetime: Duration::from_secs(parse(
                &get,
                "LEADRANK_SESSION_MAX_LIFETIME_SECS",
                90 * 24 * 3600,
            )?),
            cors_origins: get("LEADRANK_CORS_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            environment,
            introspection: parse(
                &get,
                "LEADRANK_INTROSPECTION",
                environment == Environment::Development,
            )?,
            max_query_depth: parse(&get, "LEADRANK_MAX_QUERY_DEPTH", 12)?,
            max_query_complexity: parse(&get, "LEADRANK_MAX_QUERY_COMPLEXITY", 20_000)?,
            max_query_nesting: parse(&get, "LEADRANK_MAX_QUERY_NESTING", 64)?,
            max_query_fields: parse(&get, "LEADRANK_MAX_QUERY_FIELDS", 2_000)?,
            max_query_fragments: parse(&get, "LEADRANK_MAX_QUERY_FRAGMENTS", 100)?,
            max_aliases_per_field: parse(&get, "LEADRANK_MAX_ALIASES_PER_FIELD", 30)?.max(1),
            request_timeout: Duration::from_secs(
                parse(&get, "LEADRANK_REQUEST_TIMEOUT_SECS", 30)?.max(1),
            ),
            user_requests_per_minute: parse(&get, "LEADRANK_USER_REQUESTS_PER_MINUTE", 600)?,
            tenant_requests_per_minute: parse(&get, "LEADRANK_TENANT_REQUESTS_PER_MINUTE", 6_000)?,
            body_limit_bytes: parse(&get, "LEADRANK_BODY_LIMIT_BYTES", 16 * 1024 * 1024)?,
            ingest_events_per_minute: parse(&get, "LEADRANK_INGEST_EVENTS_PER_MINUTE", 1_200_000)?,
            metrics_token: match get("LEADRANK_METRICS_TOKEN") {
                Some(token) if token.len() < 16 => {
                    bail!("LEADRANK_METRICS_TOKEN must be at least 16 characters")
                }
                token => token.map(Secret::new),
            },
            login_max_failures: parse(&get, "LEADRANK_LOGIN_MAX_FAILURES", 5)?,
            login_max_failures_per_client: parse(
                &get,
                "LEADRANK_LOGIN_MAX_FAILURES_PER_CLIENT",
                50,
            )?,
            login_window: Duration::from_secs(parse(&get, "LEADRANK_LOGIN_WINDOW_SECS", 15 * 60)?),
            sign_ups_per_client: parse(&get, "LEADRANK_SIGNUPS_PER_CLIENT", 5)?,
            sign_up_window: Duration::from_secs(parse(&get, "LEADRANK_SIGNUP_WINDOW_SECS", 3600)?),
            trust_forwarded_for: parse(&get, "LEADRANK_TRUST_FORWARDED_FOR", false)?,
            scheduler: parse(&get, "LEADRANK_SCHEDULER", true)?,
            job_concurrency: parse(&get, "LEADRANK_JOB_CONCURRENCY", 2)?,
            activation_inline_leads: parse(&get, "LEADRANK_ACTIVATION_INLINE_LEADS", 2000)?,
            sqlite_cache_mb: parse(&get, "LEADRANK_SQLITE_CACHE_MB", 64)?,
            db_max_connections: parse(&get, "LEADRANK_DB_MAX_CONNECTIONS", 10)?,
            subscription_buffer: parse(&get, "LEADRANK_SUBSCRIPTION_BUFFER", 1024)?,
            max_subscriptions_per_connection: parse(
                &get,
                "LEADRANK_MAX_SUBSCRIPTIONS_PER_CONNECTION",
                20,
            )?
            .max(1),
            max_connections_per_user: parse(&get, "LEADRANK_MAX_CONNECTIONS_PER_USER", 16)?.max(1),
            live_updates: parse(&get, "LEADRANK_LIVE_UPDATES", true)?,
            webhooks: WebhookSettings {
                worker: parse(&get, "LEADRANK_WEBHOOK_WORKER", true)?,
                poll_interval: Duration::from_millis(parse(
                    &get,
                    "LEADRANK_WEBHOOK_POLL_MS",
                    1000,
                )?),
                timeout: Duration::from_secs(parse(&get, "LEADRANK_WEBHOOK_TIMEOUT_SECS", 10)?),
                retry_base: Duration::from_millis(parse(
                    &get,
                    "LEADRANK_WEBHOOK_RETRY_BASE_MS",
                    30_000,
                )?),
                max_attempts: parse(&get, "LEADRANK_WEBHOOK_MAX_ATTEMPTS", 10)?.max(1),
                disable_after: parse(&get, "LEADRANK_WEBHOOK_DISABLE_AFTER", 50)?.max(1),
                per_endpoint: parse(&get, "LEADRANK_WEBHOOK_CONCURRENCY", 4)?.max(1),
                per_tenant: parse(&get, "LEADRANK_WEBHOOK_TENANT_CONCURRENCY", 16)?.max(1),
                allow_http_localhost: parse(&get, "LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST", false)?,
            },
            database_url,
        })
    }

    /// Whether the database is SQLite.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }
}

/// As [`parse`], for types whose parse error is an `anyhow::Error`.
fn parse_with<T: std::str::FromStr<Err = anyhow::Error>>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> anyhow::Result<T> {
    match get(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .with_context(|| format!("{name} has an invalid value {raw:?}")),
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> anyhow::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match get(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .with_context(|| format!("{name} has an invalid value {raw:?}")),
    }
}

/// The generated secret lives beside an SQLite file, or in the working
/// directory for a server database.
fn secret_file_beside(database_url: &str) -> PathBuf {
    let Some(rest) = database_url.strip_prefix("sqlite:") else {
        return PathBuf::from("leadrank.jwt-secret");
    };
    let path = rest
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return PathBuf::from("leadrank.jwt-secret");
    }
    PathBuf::from(format!("{path}.jwt-secret"))
}

/// A database URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn passwords_are_hidden_from_database_urls() {
        assert_eq!(
            redact("postgres://lr:s3cret@localhost:5432/db"),
            "postgres://lr:***@localhost:5432/db"
        );
        assert_eq!(redact("sqlite://leadrank.db"), "sqlite://leadrank.db");
    }

    fn from(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Settings::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_are_sqlite_on_localhost_with_a_generated_secret_beside_the_file() {
        let settings = from(&[]).unwrap();
        assert_eq!(settings.database_url, "sqlite://leadrank.db");
        assert_eq!(settings.bind, "127.0.0.1:8080");
        assert!(
            matches!(settings.jwt_secret, JwtSecretSource::File(ref p) if p == &PathBuf::from("leadrank.db.jwt-secret"))
        );
        assert_eq!(settings.login_max_failures, 5);
        assert_eq!(settings.login_max_failures_per_client, 50);
    }

    #[test]
    fn production_is_the_default_and_hides_the_schema_while_development_shows_it() {
        let production = from(&[]).unwrap();
        assert_eq!(production.environment, Environment::Production);
        assert!(!production.introspection);

        let development = from(&[("LEADRANK_ENV", "development")]).unwrap();
        assert!(development.introspection);

        let overridden = from(&[("LEADRANK_INTROSPECTION", "true")]).unwrap();
        assert!(overridden.introspection);
        let err = from(&[("LEADRANK_ENV", "staging")]).unwrap_err();
        assert!(err.to_string().contains("LEADRANK_ENV"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = from(&[("LEADRANK_ACCESS_TOKEN_TTL_SECS", "soon")]).unwrap_err();
        assert!(
            err.to_string().contains("LEADRANK_ACCESS_TOKEN_TTL_SECS"),
            "{err}"
        );
    }

    #[test]
    fn a_short_jwt_secret_is_refused() {
        let err = from(&[("LEADRANK_JWT_SECRET", "short")]).unwrap_err();
        assert!(err.to_string().contains("LEADRANK_JWT_SECRET"));
    }

    #[test]
    fn secrets_never_print() {
        let settings = from(&[
            (
                "LEADRANK_JWT_SECRET",
                "0123456789abcdef0123456789abcdef-top",
            ),
            ("DATABASE_URL", "postgres://lr:db-password@localhost/lr"),
        ])
        .unwrap();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("0123456789abcdef"), "{printed}");
        assert!(!printed.contains("db-password"), "{printed}");
    }
}
