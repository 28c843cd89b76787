//! Apollo's automatic persisted queries: a client sends the SHA-256 of its
//! document in `extensions.persistedQuery.sha256Hash` instead of the
//! document; the first time, the server answers `PERSISTED_QUERY_NOT_FOUND`
//! and the client sends the document with its hash, which the server
//! checks and keeps.
//!
//! The hash is resolved to its document here, before the request runs, so
//! that it takes the same path as any other (the shape checks, the lean
//! schema, the GET mutation refusal) rather than going through a schema
//! extension, which would put every field of every answer on
//! async-graphql's slow path. Documents are kept per process, bounded by
//! their size; a replica that does not know a hash asks the client for the
//! document once.

use std::sync::Arc;

use async_graphql::{Request, ServerError, Value};
use moka::sync::Cache;
use sha2::{Digest, Sha256};

/// Bytes of documents (and their hashes) one process keeps.
pub const CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// The documents this process knows by hash.
#[derive(Clone)]
pub struct PersistedQueries {
    documents: Cache<String, Arc<str>>,
}

impl Default for PersistedQueries {
    fn default() -> Self {
        Self {
            documents: Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|hash: &String, doc: &Arc<str>| {
                    u32::try_from(hash.len() + doc.len()).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }
}

fn error(code: &str, message: &str) -> ServerError {
    let mut err = ServerError::new(message, None);
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    err
}

impl PersistedQueries {
    /// Fills in the document of a request that names a persisted query by
    /// hash, or checks and keeps the document sent with its hash. A
    /// request without the extension is left as it is.
    ///
    /// # Errors
    /// `PERSISTED_QUERY_NOT_FOUND` for an unknown hash (the client then
    /// sends the document); `BAD_REQUEST` for a malformed extension or a
    /// hash that does not match the document sent.
    pub fn resolve(&self, request: &mut Request) -> Result<(), ServerError> {
        let Some(extension) = request.extensions.get("persistedQuery") else {
            return Ok(());
        };
        let Value::Object(fields) = extension else {
            return Err(error(
                "BAD_REQUEST",
                "extensions.persistedQuery must be an object with version and sha256Hash",
            ));
        };
        if fields.get("version") != Some(&Value::from(1)) {
            return Err(error(
                "BAD_REQUEST",
                "extensions.persistedQuery.version must be 1",
            ));
        }
        let hash = match fields.get("sha256Hash") {
            Some(Value::String(hash))
                if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                hash.to_ascii_lowercase()
            }
            _ => {
                return Err(error(
                    "BAD_REQUEST",
                    "extensions.persistedQuery.sha256Hash must be the hex SHA-256 of the document",
                ));
            }
        };
        if request.query.trim().is_empty() {
            let Some(document) = self.documents.get(&hash) else {
                return Err(error("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound"));
            };
            request.query = document.to_string();
            return Ok(());
        }
        if hex::encode(Sha256::digest(request.query.as_bytes())) != hash {
            return Err(error(
                "BAD_REQUEST",
                "provided sha256Hash does not match the query",
            ));
        }
        self.documents
            .insert(hash, Arc::from(request.query.as_str()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn with_hash(query: &str, hash: &str) -> Request {
        let mut request = Request::new(query);
        request.extensions.insert(
            "persistedQuery".into(),
            serde_json::from_value(serde_json::json!({"version": 1, "sha256Hash": hash})).unwrap(),
        );
        request
    }

    fn code(err: &ServerError) -> String {
        err.extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    #[test]
    fn an_unknown_hash_is_asked_for_then_remembered() {
        let queries = PersistedQueries::default();
        let doc = "{ __typename }";
        let hash = hex::encode(Sha256::digest(doc.as_bytes()));
        let err = queries.resolve(&mut with_hash("", &hash)).unwrap_err();
        assert_eq!(code(&err), "\"PERSISTED_QUERY_NOT_FOUND\"");
        queries.resolve(&mut with_hash(doc, &hash)).unwrap();
        let mut by_hash = with_hash("", &hash);
        queries.resolve(&mut by_hash).unwrap();
        assert_eq!(by_hash.query, doc);
    }

    #[test]
    fn a_document_that_does_not_match_its_hash_is_refused() {
        let queries = PersistedQueries::default();
        let err = queries
            .resolve(&mut with_hash("{ __typename }", &"0".repeat(64)))
            .unwrap_err();
        assert_eq!(code(&err), "\"BAD_REQUEST\"");
    }
}
