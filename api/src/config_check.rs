//! `leadrank check-config`: the settings as the server would read them,
//! secrets redacted, and what looks wrong for a deployment.

use crate::config::{Environment, JwtSecretSource, Settings};

/// Advice about settings that parse but look wrong for a deployment.
#[must_use]
pub fn warnings(settings: &Settings) -> Vec<String> {
    let production = settings.environment == Environment::Production;
    let postgres = !settings.database_url.starts_with("sqlite:");
    let mut out = Vec::new();
    if let JwtSecretSource::File(path) = &settings.jwt_secret {
        out.push(format!(
            "LEADRANK_JWT_SECRET is not set: a secret is generated and kept in {}; set it, the same on every replica, or tokens signed by one replica fail on the others",
            path.display()
        ));
    }
    if !postgres && production {
        out.push(
            "DATABASE_URL is a SQLite file: run a single replica, or use PostgreSQL".to_owned(),
        );
    }
    if settings.cors_origins.iter().any(|o| o == "*") {
        out.push("LEADRANK_CORS_ORIGINS=* lets any web page call the API from a browser".into());
    }
    if production && settings.introspection {
        out.push(
            "LEADRANK_INTROSPECTION=true in production shows the whole schema to anyone".into(),
        );
    }
    if production && settings.webhooks.allow_http_localhost {
        out.push(
            "LEADRANK_WEBHOOK_ALLOW_HTTP_LOCALHOST=true in production lets webhooks reach this machine's loopback".into(),
        );
    }
    if settings.bind.starts_with("127.") || settings.bind.starts_with("localhost") {
        out.push(format!(
            "LEADRANK_BIND={} accepts connections from this machine only (in a container, use 0.0.0.0:8080)",
            settings.bind
        ));
    }
    if settings.metrics_token.is_none() {
        out.push("LEADRANK_METRICS_TOKEN is not set: /metrics is off".into());
    }
    if settings.ingest_events_per_minute == 0 {
        out.push("LEADRANK_INGEST_EVENTS_PER_MINUTE=0: no limit on events per API key".into());
    }
    out
}

/// The report `check-config` prints: the effective settings (secrets
/// redacted) and the warnings.
#[must_use]
pub fn report(settings: &Settings) -> String {
    let mut out =
        format!("The settings are valid. Effective settings (secrets redacted):\n{settings:#?}\n");
    let warnings = warnings(settings);
    if warnings.is_empty() {
        out.push_str("No warnings.\n");
    } else {
        out.push_str(&format!("{} warning(s):\n", warnings.len()));
        for w in warnings {
            out.push_str(&format!("  - {w}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        Settings::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap()
    }

    #[test]
    fn secrets_never_print_and_risky_settings_are_named() {
        let secret = "a-jwt-secret-of-at-least-32-characters!";
        let s = settings(&[
            ("DATABASE_URL", "postgres://lr:db-password@db:5432/lr"),
            ("LEADRANK_JWT_SECRET", secret),
            ("LEADRANK_METRICS_TOKEN", "metrics-token-0123456789"),
            ("LEADRANK_CORS_ORIGINS", "*"),
        ]);
        let report = report(&s);
        assert!(!report.contains(secret), "{report}");
        assert!(!report.contains("db-password"), "{report}");
        assert!(!report.contains("metrics-token-0123456789"), "{report}");
        assert!(report.contains("LEADRANK_CORS_ORIGINS=*"), "{report}");
        assert!(
            !report.contains("LEADRANK_JWT_SECRET is not set"),
            "{report}"
        );
    }

    #[test]
    fn an_unset_secret_and_sqlite_in_production_are_warned_about() {
        let w = warnings(&settings(&[]));
        assert!(
            w.iter()
                .any(|w| w.starts_with("LEADRANK_JWT_SECRET is not set"))
        );
        assert!(
            w.iter()
                .any(|w| w.starts_with("DATABASE_URL is a SQLite file"))
        );
    }
}
