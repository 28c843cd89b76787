//! What the benchmarks in `tests/bench/` share. The integration tests live
//! in `tests/api/`.

// The benchmark reads its tenant straight from the database.
#![allow(clippy::disallowed_methods)]

use anyhow::Context;
use entity::tenant;
use leadrank::{
    auth::tokens::{TokenKeys, random_token},
    config::{Secret, Settings},
    startup::Application,
};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

/// The release server, started in the benchmark's process on a random port,
/// and the database beside it.
pub struct BenchServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A system connection to the server's database: the benchmark reads
    /// its tenant and times the floor across PostgreSQL's row-level
    /// security; the requests it times go through the server.
    pub db: DatabaseConnection,
    /// The tenant the benchmark runs on.
    pub tenant: tenant::Model,
    /// Signs access tokens the server accepts, so the benchmark needs no
    /// passwords.
    pub keys: TokenKeys,
    /// The server's `DATABASE_URL`.
    pub database_url: String,
}

impl BenchServer {
    /// Starts the server on `DATABASE_URL` (`sqlite://leadrank.db` when
    /// unset) with a fresh signing secret, no request rate limits and the
    /// `extra` settings, and finds the tenant `slug`.
    ///
    /// # Errors
    /// When the server cannot start or the tenant is not there.
    pub async fn start(slug: &str, extra: &[(&str, String)]) -> anyhow::Result<Self> {
        let database_url =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://leadrank.db".to_owned());
        let secret = random_token(32)?;
        // The bench measures the server, not its rate limits: its clients
        // send thousands of requests a second as a handful of users.
        let mut vars = vec![
            ("DATABASE_URL", database_url.clone()),
            ("LEADRANK_BIND", "127.0.0.1:0".to_owned()),
            ("LEADRANK_JWT_SECRET", secret.clone()),
            ("LEADRANK_USER_REQUESTS_PER_MINUTE", "0".to_owned()),
            ("LEADRANK_TENANT_REQUESTS_PER_MINUTE", "0".to_owned()),
        ];
        vars.extend(extra.iter().cloned());
        let settings = Settings::from_lookup(|name| {
            vars.iter()
                .rev()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        })?;
        let db = leadrank::db::connect_system(&settings).await?;
        let app = Application::build(settings).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let tenant = tenant::Entity::find()
            .filter(tenant::Column::Slug.eq(slug))
            .one(&db)
            .await?
            .with_context(|| {
                format!(
                    "no tenant \"{slug}\" in {}; load it first with `leadrank demo --tenant {slug} --leads 100000`",
                    leadrank::config::redact(&database_url)
                )
            })?;
        Ok(Self {
            base,
            db,
            tenant,
            keys: TokenKeys::from_secret(&Secret::new(secret)),
            database_url,
        })
    }
}
