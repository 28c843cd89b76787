//! Access tokens (HS256 JWTs) and refresh tokens (random, stored hashed).

use std::{fs, io::Write, path::Path};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::enums::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Principal;
use crate::config::{JwtSecretSource, Secret};

/// The claims of an access token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: entity::UserId,
    /// The tenant id.
    pub tid: Uuid,
    /// The role when issued.
    pub role: Role,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// The user's session version when issued: a token older than the
    /// user's current version was revoked. Tokens issued before versions
    /// existed read as 0, the version every user starts at.
    #[serde(default)]
    pub ver: i32,
    /// The session family the token belongs to, so signing out of one
    /// session stops its access token too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

/// Which session an access token belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionClaims {
    /// The user's session version at issue.
    pub version: i32,
    /// The refresh-token family.
    pub family: Option<Uuid>,
}

impl Claims {
    /// The caller as the token names them, with the role it was issued
    /// with; [`super::access`] replaces the role with the current one.
    pub fn principal(&self) -> Principal {
        Principal {
            tenant_id: self.tid,
            user_id: self.sub,
            role: self.role,
        }
    }

    /// The session the token belongs to.
    pub fn session(&self) -> SessionClaims {
        SessionClaims {
            version: self.ver,
            family: self.sid,
        }
    }
}

/// Signs and verifies access tokens with one secret and one pinned algorithm.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    /// Keys from a secret.
    pub fn from_secret(secret: &Secret) -> Self {
        // Pinned to HS256: a token claiming any other algorithm, `none`
        // included, is refused before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }
    }

    /// Signs an access token for `principal`, valid until `expires_at`.
    ///
    /// # Errors
    /// Only if signing fails, which does not happen with a valid key.
    pub fn issue(
        &self,
        principal: &Principal,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        self.issue_for_session(principal, SessionClaims::default(), now, expires_at)
    }

    /// Signs an access token for `principal` in `session`, valid until
    /// `expires_at`.
    ///
    /// # Errors
    /// Only if signing fails, which does not happen with a valid key.
    pub fn issue_for_session(
        &self,
        principal: &Principal,
        session: SessionClaims,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let claims = Claims {
            sub: principal.user_id,
            tid: principal.tenant_id,
            role: principal.role,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            ver: session.version,
            sid: session.family,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .context("failed to sign an access token")
    }

    /// Verifies a token's algorithm, signature and expiry.
    ///
    /// # Errors
    /// A message for the client; which check failed is not revealed.
    pub fn verify(&self, token: &str) -> Result<Principal, &'static str> {
        self.verify_claims(token).map(|claims| claims.principal())
    }

    /// Verifies a token as [`Self::verify`] does and returns its claims.
    ///
    /// # Errors
    /// A message for the client; which check failed is not revealed.
    pub fn verify_claims(&self, token: &str) -> Result<Claims, &'static str> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(err) => match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Err("your session has expired; refresh it or sign in again")
                }
                _ => Err("the access token is not valid; sign in again"),
            },
        }
    }
}

/// The audience of an export link, which no access token has: a link
/// cannot be used as a token, nor a token as a link.
const EXPORT_AUDIENCE: &str = "leadrank-export";

/// What a signed export link carries: who asked, in which session, and
/// for what.
#[derive(Debug, Serialize, Deserialize)]
struct ExportClaims {
    sub: entity::UserId,
    tid: Uuid,
    role: Role,
    aud: String,
    iat: i64,
    exp: i64,
    ver: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
    /// The export asked for (filter and options), as JSON.
    req: serde_json::Value,
}

impl TokenKeys {
    /// Signs a link to an export of `request` for `principal` in
    /// `session` (signing out of it ends the link too), valid until
    /// `expires_at`.
    ///
    /// # Errors
    /// Only if signing fails, which does not happen with a valid key.
    pub fn sign_export<T: Serialize>(
        &self,
        principal: &Principal,
        session: SessionClaims,
        request: &T,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        let claims = ExportClaims {
            sub: principal.user_id,
            tid: principal.tenant_id,
            role: principal.role,
            aud: EXPORT_AUDIENCE.to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            ver: session.version,
            sid: session.family,
            req: serde_json::to_value(request).context("the export cannot be described")?,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .context("failed to sign an export link")
    }

    /// Verifies an export link: the claims of the session it was asked
    /// for in (to be admitted as an access token's are), and the request.
    ///
    /// # Errors
    /// A message for the client when the link is not one this server
    /// signed, has expired, or does not describe an export.
    pub fn verify_export<T: serde::de::DeserializeOwned>(
        &self,
        link: &str,
    ) -> Result<(Claims, T), &'static str> {
        let mut validation = self.validation.clone();
        validation.set_audience(&[EXPORT_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        let claims = jsonwebtoken::decode::<ExportClaims>(link, &self.decoding, &validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    "this export link has expired; ask for a new one"
                }
                _ => "this is not a valid export link",
            })?
            .claims;
        let request =
            serde_json::from_value(claims.req).map_err(|_| "this is not a valid export link")?;
        Ok((
            Claims {
                sub: claims.sub,
                tid: claims.tid,
                role: claims.role,
                iat: claims.iat,
                exp: claims.exp,
                ver: claims.ver,
                sid: claims.sid,
            },
            request,
        ))
    }
}

/// Resolves the JWT secret: the configured one, or the one generated at
/// first start and kept in a file readable by its owner only.
///
/// # Errors
/// When the secret file cannot be read or written.
pub fn load_or_create_secret(source: &JwtSecretSource) -> anyhow::Result<Secret> {
    match source {
        JwtSecretSource::Given(secret) => Ok(secret.clone()),
        JwtSecretSource::File(path) => {
            if path.exists() {
                let secret = fs::read_to_string(path).with_context(|| {
                    format!("failed to read the JWT secret file {}", path.display())
                })?;
                let secret = secret.trim();
                // An empty or truncated file would make tokens forgeable.
                if secret.len() < 32 {
                    anyhow::bail!(
                        "the JWT secret file {} holds fewer than 32 characters; delete it to generate a new one or set LEADRANK_JWT_SECRET",
                        path.display()
                    );
                }
                return Ok(Secret::new(secret));
            }
            let secret = random_token(48)?;
            write_owner_only(path, &secret)?;
            tracing::warn!(
                path = %path.display(),
                "LEADRANK_JWT_SECRET is not set: generated a signing secret and kept it beside the database; set LEADRANK_JWT_SECRET in production"
            );
            Ok(Secret::new(secret))
        }
    }
}

fn write_owner_only(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("failed to create the JWT secret file {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("failed to write the JWT secret file {}", path.display()))
}

/// `bytes` random bytes, URL-safe base64.
///
/// # Errors
/// When the operating system's random source fails.
pub fn random_token(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|err| anyhow::anyhow!("the system random source failed: {err}"))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// A refresh token as handed to the client: `tenant.session.secret`. The
/// tenant and session ids let the server find the row without a global
/// index; only the secret's hash is stored.
#[derive(Debug, PartialEq, Eq)]
pub struct RefreshToken {
    /// The tenant the session belongs to.
    pub tenant_id: Uuid,
    /// The session row.
    pub session_id: Uuid,
    /// The random part.
    pub secret: String,
}

impl RefreshToken {
    /// A new token for a new session row.
    ///
    /// # Errors
    /// When the random source fails.
    pub fn generate(tenant_id: Uuid) -> anyhow::Result<Self> {
        Ok(Self {
            tenant_id,
            session_id: Uuid::now_v7(),
            secret: random_token(32)?,
        })
    }

    /// Parses what the client sent; `None` when it is malformed.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut parts = raw.trim().splitn(3, '.');
        let tenant_id = Uuid::parse_str(parts.next()?).ok()?;
        let session_id = Uuid::parse_str(parts.next()?).ok()?;
        let secret = parts.next()?.to_owned();
        (secret.len() >= 32).then_some(Self {
            tenant_id,
            session_id,
            secret,
        })
    }

    /// What the client keeps.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.tenant_id, self.session_id, self.secret)
    }

    /// What the database keeps.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.secret.as_bytes()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::Duration;

    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::from_secret(&Secret::new("a test secret that is long enough to sign"))
    }

    fn principal() -> Principal {
        Principal {
            tenant_id: Uuid::now_v7(),
            user_id: entity::UserId::new(),
            role: Role::Rep,
        }
    }

    #[test]
    fn an_issued_token_verifies_to_its_principal() {
        let p = principal();
        let now = Utc::now();
        let token = keys().issue(&p, now, now + Duration::minutes(15)).unwrap();
        assert_eq!(keys().verify(&token).unwrap(), p);
    }

    #[test]
    fn an_export_link_and_an_access_token_cannot_stand_in_for_each_other() {
        let p = principal();
        let now = Utc::now();
        let session = SessionClaims {
            version: 3,
            family: Some(Uuid::now_v7()),
        };
        let link = keys()
            .sign_export(
                &p,
                session,
                &serde_json::json!({"bom": true}),
                now,
                now + Duration::minutes(10),
            )
            .unwrap();
        let (claims, request): (Claims, serde_json::Value) = keys().verify_export(&link).unwrap();
        assert_eq!(claims.principal(), p);
        assert_eq!(claims.session(), session);
        assert_eq!(request["bom"], true);
        assert!(keys().verify(&link).is_err(), "a link is not a token");
        let token = keys().issue(&p, now, now + Duration::minutes(15)).unwrap();
        assert!(keys().verify_export::<serde_json::Value>(&token).is_err());
        let old = keys()
            .sign_export(
                &p,
                SessionClaims::default(),
                &serde_json::json!({}),
                now - Duration::hours(1),
                now - Duration::minutes(50),
            )
            .unwrap();
        assert!(
            keys()
                .verify_export::<serde_json::Value>(&old)
                .unwrap_err()
                .contains("expired")
        );
    }

    #[test]
    fn an_expired_token_is_refused() {
        let now = Utc::now();
        let token = keys()
            .issue(
                &principal(),
                now - Duration::hours(2),
                now - Duration::hours(1),
            )
            .unwrap();
        assert!(keys().verify(&token).unwrap_err().contains("expired"));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let now = Utc::now();
        let other =
            TokenKeys::from_secret(&Secret::new("another secret, also long enough to sign"));
        let token = other
            .issue(&principal(), now, now + Duration::minutes(5))
            .unwrap();
        assert!(keys().verify(&token).is_err());
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let now = Utc::now().timestamp();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let p = principal();
        let body = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"sub": p.user_id, "tid": p.tenant_id, "role": "OWNER", "iat": now, "exp": now + 600}).to_string(),
        );
        assert!(keys().verify(&format!("{header}.{body}.")).is_err());
    }

    #[test]
    fn a_refresh_token_round_trips_and_hashes_stably() {
        let token = RefreshToken::generate(Uuid::now_v7()).unwrap();
        let parsed = RefreshToken::parse(&token.encode()).unwrap();
        assert_eq!(parsed, token);
        assert_eq!(parsed.hash(), token.hash());
        assert_eq!(token.hash().len(), 64);
        assert!(RefreshToken::parse("garbage").is_none());
    }
}
