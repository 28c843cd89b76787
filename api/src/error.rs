//! The one error type of the API, grouped by the GraphQL error code the
//! client sees (`extensions.code`).

use async_graphql::ErrorExtensions;
use uuid::Uuid;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request carries no valid access token.
    #[error("authentication required: sign in and send `Authorization: Bearer <accessToken>`")]
    Unauthenticated,
    /// The credentials or token were refused; the message says why without
    /// revealing which part was wrong.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The caller's role does not allow the action.
    #[error("your role does not allow you to {action}")]
    Forbidden { action: &'static str },
    /// The entity does not exist, or belongs to another tenant.
    #[error("{entity} {id} not found")]
    NotFound { entity: &'static str, id: String },
    /// An input value is invalid. `field` is the path of the value within
    /// what the service was given, in the service's own terms (`owner_id`,
    /// `stages[2].win_probability`, empty for the input as a whole); each
    /// edge turns it into its own (see [`IntoGraphql::gql_at`]).
    #[error("{message}")]
    InvalidInput { field: String, message: String },
    /// A duplicate or a stale version.
    #[error("{message}")]
    Conflict {
        message: String,
        existing_id: Option<Uuid>,
    },
    /// Too many attempts; try again after `retry_after_secs`.
    #[error("too many failed attempts; try again in {retry_after_secs} seconds")]
    RateLimited { retry_after_secs: u64 },
    /// A fault on our side; the client sees a generic message.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// An invalid input at `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Not found (also for another tenant's id).
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// The stable code in `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated | Self::Unauthorized(_) => "UNAUTHENTICATED",
            Self::Forbidden { .. } => "FORBIDDEN",
            Self::NotFound { .. } => "NOT_FOUND",
            Self::InvalidInput { .. } => "BAD_USER_INPUT",
            Self::Conflict { .. } => "CONFLICT",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        // Unique-constraint violations become conflicts here, in one place.
        // The database's text names tables, columns and values, which are
        // ours to know and not the client's: it goes to the log only.
        if let Some(sea_orm::SqlErr::UniqueConstraintViolation(detail)) = err.sql_err() {
            tracing::info!(detail = %detail, "a write was refused by a unique constraint");
            return Self::Conflict {
                message: "this already exists".to_owned(),
                existing_id: None,
            };
        }
        Self::Internal(anyhow::Error::new(err).context("database error"))
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        let message = match self {
            Self::Internal(err) => {
                tracing::error!(error = ?err, "request failed with an internal error");
                "something went wrong on our side; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        async_graphql::Error::new(message).extend_with(|_, ext| {
            ext.set("code", self.code());
            match self {
                Self::InvalidInput { field, .. } => ext.set("field", graphql_path(field)),
                Self::Conflict {
                    existing_id: Some(id),
                    ..
                } => ext.set("existingId", id.to_string()),
                Self::RateLimited { retry_after_secs } => ext.set("retryAfter", *retry_after_secs),
                _ => {}
            }
        })
    }
}

/// Result of a service call.
pub type AppResult<T> = Result<T, AppError>;

/// Turns a service result into a GraphQL result with the error's extensions.
pub trait IntoGraphql<T> {
    /// Maps the error through [`ErrorExtensions`]; an invalid field keeps
    /// its path, in GraphQL's names (see [`graphql_path`]).
    fn gql(self) -> async_graphql::Result<T>;

    /// As [`IntoGraphql::gql`], for a service given the GraphQL argument
    /// `argument`: an invalid field's path starts there (`owner_id` of
    /// `createLead(input:)` is `input.ownerId`).
    fn gql_at(self, argument: &str) -> async_graphql::Result<T>;
}

impl<T> IntoGraphql<T> for AppResult<T> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|err| err.extend())
    }

    fn gql_at(self, argument: &str) -> async_graphql::Result<T> {
        self.map_err(|err| match err {
            AppError::InvalidInput { field, message } => AppError::InvalidInput {
                field: within(argument, field),
                message,
            },
            other => other,
        })
        .gql()
    }
}

/// A service's `field` inside the GraphQL `argument` it was given.
fn within(argument: &str, field: String) -> String {
    if field.is_empty() {
        argument.to_owned()
    } else if field.starts_with('[') {
        format!("{argument}{field}")
    } else {
        format!("{argument}.{field}")
    }
}

/// A service's field path in GraphQL's names: each field's snake_case name
/// in camelCase (`stages[2].win_probability` is `stages[2].winProbability`).
/// The keys under `attributes` are the tenant's lead-field keys, data rather
/// than names, and are kept as written.
pub fn graphql_path(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut keys_follow = false;
    for (i, segment) in field.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        if keys_follow {
            out.push_str(segment);
            continue;
        }
        let mut upper = false;
        for c in segment.chars() {
            match c {
                '_' => upper = true,
                c if upper => {
                    out.extend(c.to_uppercase());
                    upper = false;
                }
                c => out.push(c),
            }
        }
        keys_follow = segment == "attributes";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_paths_read_in_graphql_names_under_their_argument() {
        for (argument, field, expected) in [
            ("input", "owner_id", "input.ownerId"),
            ("input", "", "input"),
            (
                "input",
                "stages[2].win_probability",
                "input.stages[2].winProbability",
            ),
            (
                "input",
                "dimensions[0].weight",
                "input.dimensions[0].weight",
            ),
            (
                "input",
                "attributes.trial_lesson",
                "input.attributes.trial_lesson",
            ),
            ("input", "input_count", "input.inputCount"),
            ("filter", "[3]", "filter[3]"),
        ] {
            assert_eq!(graphql_path(&within(argument, field.to_owned())), expected);
        }
    }
}
