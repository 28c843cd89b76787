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
    /// An input value is invalid; `field` is its input path.
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
                Self::InvalidInput { field, .. } => ext.set("field", field.as_str()),
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
    /// Maps the error through [`ErrorExtensions`].
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> IntoGraphql<T> for AppResult<T> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|err| err.extend())
    }
}
