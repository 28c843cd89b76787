//! What a request made with an API key may ask for, checked on its parsed
//! document before anything runs: the root fields of its operation must be
//! among those the key's scopes allow (see
//! [`Scopes::allows_root_field`]). A key acts as an ADMIN inside those
//! fields, so the check at the root is the whole narrowing.

use async_graphql::{
    ErrorExtensions, Request, ServerError,
    parser::types::{
        DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
    },
};

use crate::{error::AppError, service::accounts::api_keys::Scopes};

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
        .try_for_each(|field| scopes.allows_root_field(mutation, &field))
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
