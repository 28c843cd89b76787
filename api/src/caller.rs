//! Who is calling an HTTP endpoint, from its `Authorization` header: a
//! person's access token or an API key. The GraphQL endpoint and the event
//! endpoint both start here.

use actix_web::{HttpRequest, http::header};
use chrono::Utc;
use sea_orm::DatabaseConnection;

use crate::{
    auth::{
        Authentication, access,
        tokens::{Claims, TokenKeys},
    },
    service::accounts::api_keys::{self, ApiKeyCaller},
};

/// Who is calling, as the `Authorization` header says.
pub struct Caller {
    pub authentication: Authentication,
    /// The verified claims of a person's access token.
    pub claims: Option<Claims>,
    /// The key, when the request authenticated with an API key.
    pub api_key: Option<ApiKeyCaller>,
}

impl Caller {
    fn from(authentication: Authentication) -> Self {
        Self {
            authentication,
            claims: None,
            api_key: None,
        }
    }
}

/// Who is calling: the bearer token checked in full, including the user as
/// they are now (role, active flag, revoked sessions), or an API key
/// (`lrk_…`) checked against its tenant's stored hash.
pub async fn authenticate(req: &HttpRequest, db: &DatabaseConnection, keys: &TokenKeys) -> Caller {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Caller::from(Authentication::Anonymous);
    };
    let token = value.to_str().ok().and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    });
    match token.map(str::trim) {
        Some(key) if key.starts_with(api_keys::PREFIX) => {
            match api_keys::authenticate(db, key, Utc::now()).await {
                Ok(Ok(caller)) => Caller {
                    authentication: Authentication::Authenticated(caller.principal()),
                    claims: None,
                    api_key: Some(caller),
                },
                Ok(Err(why)) => Caller::from(Authentication::Rejected(why)),
                Err(err) => {
                    tracing::error!(error = ?err, "an API key could not be checked");
                    Caller::from(Authentication::Unavailable)
                }
            }
        }
        Some(token) => {
            let (authentication, claims) = access::authenticate(db, keys, token, Utc::now()).await;
            Caller {
                authentication,
                claims,
                api_key: None,
            }
        }
        None => Caller::from(Authentication::Rejected(
            "the Authorization header must be `Bearer <accessToken>` or `Bearer lrk_…` (an API key)",
        )),
    }
}
