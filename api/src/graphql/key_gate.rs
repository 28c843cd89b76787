//! What a request made with an API key may ask for, checked on its parsed
//! document before anything runs: the root fields of its operation must be
//! among those the key's scopes allow (see
//! [`allows_root_field`]). A key acts as an ADMIN inside those
//! fields, so the check at the root is the whole narrowing.

use async_graphql::{
    ErrorExtensions, Request, ServerError,
    parser::types::{
        DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
    },
};

use crate::{error::AppError, service::accounts::api_keys::Scopes};

/// Query fields a READ key may ask for: leads, the queue and what is
/// needed to make sense of them, but not the audit log, job runs, webhooks,
/// API keys or the caller (`me`: a key is not a person).
const READ_FIELDS: &[&str] = &[
    "tenant",
    "users",
    "teams",
    "pipelines",
    "signalTypes",
    "leadFields",
    "scoringModels",
    "activeScoringModel",
    "lead",
    "leads",
    "followUpQueue",
    "funnel",
    "tierDistribution",
];

/// Mutations an INGEST key may run.
const INGEST_FIELDS: &[&str] = &[
    "recordActivity",
    "recordActivities",
    "createLead",
    "updateLead",
];

/// Whether a key with these scopes may select `field` at the root of a
/// query (`mutation: false`) or a mutation. `__typename` is always
/// allowed; introspection follows the server's setting.
///
/// # Errors
/// FORBIDDEN naming what the key would need.
fn allows_root_field(scopes: Scopes, mutation: bool, field: &str) -> Result<(), AppError> {
    if field.starts_with("__") {
        return Ok(());
    }
    let (allowed, scope, list) = if mutation {
        (scopes.ingest, "INGEST", INGEST_FIELDS)
    } else {
        (scopes.read, "READ", READ_FIELDS)
    };
    if !list.contains(&field) {
        return Err(AppError::Forbidden {
            action: if mutation {
                "use this mutation with an API key: API keys may only record signals and create or update leads"
            } else {
                "read this with an API key: API keys read leads, the queue and the configuration behind them"
            },
        });
    }
    if !allowed {
        return Err(AppError::Forbidden {
            action: if scope == "INGEST" {
                "record signals or change leads with a key that lacks the INGEST scope"
            } else {
                "read with a key that lacks the READ scope"
            },
        });
    }
    Ok(())
}

/// Fragments nest at most this deep at the root before the request is
/// refused (the document limits refuse deeper ones anyway).
const MAX_FRAGMENT_DEPTH: usize = 8;

/// Refuses a request whose operation reaches beyond the key's scopes. A
/// request that does not parse, or names no operation of its document, is
/// let through to be answered with the usual error.
///
/// # Errors
/// FORBIDDEN, as a request error.
pub fn check(request: &mut Request, scopes: Scopes, max_nesting: usize) -> Result<(), ServerError> {
    if super::limits::check_nesting(&request.query, max_nesting).is_err() {
        return Ok(());
    }
    let operation_name = request.operation_name.clone();
    let Ok(doc) = request.parsed_query() else {
        return Ok(());
    };
    let operation = match (&doc.operations, operation_name.as_deref()) {
        (DocumentOperations::Single(op), _) => &op.node,
        (DocumentOperations::Multiple(ops), Some(name)) => {
            match ops.iter().find(|(n, _)| n.as_str() == name) {
                Some((_, op)) => &op.node,
                None => return Ok(()),
            }
        }
        (DocumentOperations::Multiple(_), None) => return Ok(()),
    };
    let mutation = match operation.ty {
        OperationType::Query => false,
        OperationType::Mutation => true,
        OperationType::Subscription => {
            return Err(refusal(&AppError::Forbidden {
                action: "subscribe with an API key: live updates are for people",
            }));
        }
    };
    root_fields(doc, &operation.selection_set.node, 0)
        .map_err(|err| refusal(&err))?
        .into_iter()
        .try_for_each(|field| allows_root_field(scopes, mutation, &field))
        .map_err(|err| refusal(&err))
}

fn root_fields(
    doc: &ExecutableDocument,
    set: &SelectionSet,
    depth: usize,
) -> Result<Vec<String>, AppError> {
    if depth > MAX_FRAGMENT_DEPTH {
        return Err(AppError::Forbidden {
            action: "nest fragments this deep at the root of a request made with an API key",
        });
    }
    let mut fields = Vec::new();
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => fields.push(field.node.name.node.to_string()),
            Selection::InlineFragment(fragment) => {
                fields.extend(root_fields(
                    doc,
                    &fragment.node.selection_set.node,
                    depth + 1,
                )?);
            }
            Selection::FragmentSpread(spread) => {
                // An unknown fragment is a validation error, reported later.
                if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                    fields.extend(root_fields(
                        doc,
                        &fragment.node.selection_set.node,
                        depth + 1,
                    )?);
                }
            }
        }
    }
    Ok(fields)
}

fn refusal(err: &AppError) -> ServerError {
    let extended = err.extend();
    let mut server = ServerError::new(extended.message, None);
    server.extensions = extended.extensions;
    server
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_narrow_what_a_key_may_do() {
        let ingest = Scopes::parse("INGEST");
        assert!(allows_root_field(ingest, true, "recordActivities").is_ok());
        assert!(allows_root_field(ingest, false, "leads").is_err());
        assert!(allows_root_field(ingest, true, "createApiKey").is_err());
        let read = Scopes::parse("READ");
        assert!(allows_root_field(read, false, "followUpQueue").is_ok());
        assert!(allows_root_field(read, false, "apiKeys").is_err());
        assert!(allows_root_field(read, true, "recordActivity").is_err());
        assert!(allows_root_field(read, false, "__typename").is_ok());
    }
}
