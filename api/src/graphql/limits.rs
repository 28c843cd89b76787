//! Limits on the shape of a GraphQL document, checked before the work that
//! the shape would multiply.
//!
//! async-graphql's parser recurses once per bracket, so a few kilobytes of
//! `{a:{a:…}}` overflow the stack and abort the process: the nesting is
//! counted by a byte scan before the document reaches the parser. Its
//! validation expands every fragment spread, so `F0 {...F1 ...F1}` chains
//! cost twice as much per level: the expanded size is computed with one
//! count per fragment and refused over the limit before validation runs.
//! A batch shares one allowance of fields and complexity, so ten copies of
//! the largest query do not cost ten times the limit.

use std::{
    any::TypeId,
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use async_graphql::{
    Request, Response, ServerError, ServerResult, ValidationResult, Value,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation,
    },
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use crate::config::Settings;

/// The limits, from the settings.
#[derive(Clone, Copy, Debug)]
pub struct DocumentLimits {
    /// Deepest nesting of `(`, `[` and `{`.
    pub max_nesting: usize,
    /// Fields after fragment expansion, per HTTP request.
    pub max_fields: u64,
    /// Fragment definitions per document.
    pub max_fragments: usize,
    /// Selections of one field in one selection set.
    pub max_aliases_per_field: usize,
    /// Complexity per HTTP request (async-graphql checks each operation;
    /// this adds up a batch).
    pub max_complexity: usize,
}

impl DocumentLimits {
    /// The limits of `settings`.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            max_nesting: settings.max_query_nesting,
            max_fields: settings.max_query_fields,
            max_fragments: settings.max_query_fragments,
            max_aliases_per_field: settings.max_aliases_per_field,
            max_complexity: settings.max_query_complexity,
        }
    }
}

/// What one HTTP request may still spend; the operations of a batch share
/// one, so the limits hold for the batch as a whole.
#[derive(Debug, Default)]
pub struct QueryBudget {
    fields: AtomicU64,
    complexity: AtomicU64,
}

impl QueryBudget {
    /// A budget for one HTTP request, to put into each of its operations.
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn spend(counter: &AtomicU64, amount: u64, max: u64) -> Result<(), u64> {
        let spent = counter
            .fetch_add(amount, Ordering::Relaxed)
            .saturating_add(amount);
        if spent > max { Err(spent) } else { Ok(()) }
    }
}

/// A GraphQL error with a code, for the person who sent the document.
pub fn refusal(code: &str, message: impl Into<String>) -> ServerError {
    let mut error = ServerError::new(message, None);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", Value::from(code));
    error
}

/// Refuses a document nested deeper than `max` before it is parsed.
///
/// # Errors
/// QUERY_TOO_DEEP, saying the limit.
pub fn check_nesting(query: &str, max: usize) -> ServerResult<()> {
    if nesting_exceeds(query, max) {
        return Err(refusal(
            "QUERY_TOO_DEEP",
            format!(
                "the query nests brackets, braces or parentheses more than {max} levels deep; \
                 flatten its arguments or pass deep values as variables"
            ),
        ));
    }
    Ok(())
}

/// Whether the brackets, braces and parentheses of `query` nest deeper
/// than `max`, ignoring those in strings, block strings and comments as the
/// GraphQL lexer does. Where the scan and the lexer could disagree (an
/// unterminated string), the parser refuses the document before reaching
/// what follows, so nothing uncounted is ever parsed.
pub fn nesting_exceeds(query: &str, max: usize) -> bool {
    let bytes = query.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'#' => {
                while bytes.get(i).is_some_and(|b| *b != b'\n' && *b != b'\r') {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes.get(i..i + 3) == Some(b"\"\"\"") => {
                i += 3;
                loop {
                    match bytes.get(i) {
                        None => return false,
                        Some(b'\\') if bytes.get(i + 1..i + 4) == Some(b"\"\"\"") => i += 4,
                        Some(b'"') if bytes.get(i..i + 3) == Some(b"\"\"\"") => {
                            i += 3;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                continue;
            }
            b'"' => {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return false,
                        Some(b'\\') => i += 2,
                        Some(b'"' | b'\n' | b'\r') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// Why a parsed document is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeError {
    /// More fragment definitions than allowed.
    #[error("the query defines {count} fragments; at most {max} are allowed")]
    TooManyFragments { count: usize, max: usize },
    /// One selection set selects a field too often.
    #[error(
        "the query selects `{field}` {count} times in one selection set; at most {max} aliases of one field are allowed"
    )]
    TooManyAliases {
        field: String,
        count: usize,
        max: usize,
    },
    /// A fragment spreads itself, directly or through others.
    #[error("the fragment `{0}` spreads itself; a fragment cannot contain itself")]
    FragmentCycle(String),
}

impl ShapeError {
    fn into_server_error(self) -> ServerError {
        let code = match self {
            Self::FragmentCycle(_) => "GRAPHQL_VALIDATION_FAILED",
            Self::TooManyFragments { .. } | Self::TooManyAliases { .. } => "QUERY_TOO_LARGE",
        };
        refusal(code, self.to_string())
    }
}

/// One fragment's or operation's own selections: fields it selects itself
/// (inline fragments included) and the fragments it spreads, each as often
/// as it is spread.
#[derive(Default)]
struct Own<'a> {
    fields: u64,
    spreads: Vec<&'a str>,
}

/// Fields the operations of `doc` select once every fragment spread is
/// expanded, counting `__typename`. Linear in the size of the document:
/// each fragment is counted once and its count reused at every spread.
///
/// # Errors
/// Too many fragments, too many aliases of one field, or a fragment cycle.
pub fn expanded_fields(
    doc: &ExecutableDocument,
    limits: &DocumentLimits,
) -> Result<u64, ShapeError> {
    if doc.fragments.len() > limits.max_fragments {
        return Err(ShapeError::TooManyFragments {
            count: doc.fragments.len(),
            max: limits.max_fragments,
        });
    }
    let mut own: HashMap<&str, Own<'_>> = HashMap::with_capacity(doc.fragments.len());
    for (name, fragment) in &doc.fragments {
        let mut counted = Own::default();
        count_own(&fragment.node.selection_set.node, limits, &mut counted)?;
        own.insert(name.as_str(), counted);
    }
    let expanded = expand_fragments(&own)?;
    let mut total = 0u64;
    for (_, operation) in doc.operations.iter() {
        let mut counted = Own::default();
        count_own(&operation.node.selection_set.node, limits, &mut counted)?;
        total = total.saturating_add(counted.fields);
        for spread in counted.spreads {
            // An unknown fragment counts nothing; validation names it.
            total = total.saturating_add(expanded.get(spread).copied().unwrap_or(0));
        }
    }
    Ok(total)
}

/// Counts `set`'s own fields into `into` and notes its spreads, checking the
/// aliases of each selection set on the way. Recursion follows the
/// document's braces, which the nesting limit has already bounded.
fn count_own<'a>(
    set: &'a SelectionSet,
    limits: &DocumentLimits,
    into: &mut Own<'a>,
) -> Result<(), ShapeError> {
    let mut per_field: HashMap<&str, usize> = HashMap::new();
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let name = field.node.name.node.as_str();
                let seen = per_field.entry(name).or_default();
                *seen += 1;
                if *seen > limits.max_aliases_per_field {
                    return Err(ShapeError::TooManyAliases {
                        field: name.to_owned(),
                        count: *seen,
                        max: limits.max_aliases_per_field,
                    });
                }
                into.fields = into.fields.saturating_add(1);
                count_own(&field.node.selection_set.node, limits, into)?;
            }
            Selection::InlineFragment(inline) => {
                count_own(&inline.node.selection_set.node, limits, into)?;
            }
            Selection::FragmentSpread(spread) => {
                into.spreads.push(spread.node.fragment_name.node.as_str());
            }
        }
    }
    Ok(())
}

/// Each fragment's expanded field count, resolved depth first with an
/// explicit stack (a chain of fragments cannot overflow the thread's) and
/// refusing cycles, which validation would otherwise expand up to its
/// depth limit before reporting them.
fn expand_fragments<'a>(
    own: &HashMap<&'a str, Own<'a>>,
) -> Result<HashMap<&'a str, u64>, ShapeError> {
    enum Step<'a> {
        Enter(&'a str),
        Leave(&'a str),
    }
    let mut done: HashMap<&str, u64> = HashMap::with_capacity(own.len());
    let mut entered: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for root in own.keys() {
        let mut stack = vec![Step::Enter(root)];
        while let Some(step) = stack.pop() {
            match step {
                Step::Enter(name) => {
                    if done.contains_key(name) {
                        continue;
                    }
                    if !entered.insert(name) {
                        return Err(ShapeError::FragmentCycle(name.to_owned()));
                    }
                    stack.push(Step::Leave(name));
                    if let Some(counted) = own.get(name) {
                        for spread in &counted.spreads {
                            if own.contains_key(spread) && !done.contains_key(spread) {
                                stack.push(Step::Enter(spread));
                            }
                        }
                    }
                }
                Step::Leave(name) => {
                    let Some(counted) = own.get(name) else {
                        continue;
                    };
                    let total = counted.spreads.iter().fold(counted.fields, |sum, spread| {
                        sum.saturating_add(done.get(spread).copied().unwrap_or(0))
                    });
                    done.insert(name, total);
                    entered.remove(name);
                }
            }
        }
    }
    Ok(done)
}

/// Checks one operation's document against `limits` before it is
/// validated, spending its fields from the request's `budget`, and leaves
/// it parsed in `request` (async-graphql reuses the parsed document).
///
/// # Errors
/// QUERY_TOO_DEEP, GRAPHQL_PARSE_FAILED, QUERY_TOO_LARGE and the other
/// shape refusals, each saying the limit.
pub fn admit(
    request: &mut Request,
    limits: &DocumentLimits,
    budget: &QueryBudget,
) -> ServerResult<()> {
    check_nesting(&request.query, limits.max_nesting)?;
    let doc = request.parsed_query().map_err(|mut err| {
        err.extensions
            .get_or_insert_with(Default::default)
            .set("code", "GRAPHQL_PARSE_FAILED");
        err
    })?;
    let fields = expanded_fields(doc, limits).map_err(ShapeError::into_server_error)?;
    if let Err(spent) = QueryBudget::spend(&budget.fields, fields, limits.max_fields) {
        return Err(refusal(
            "QUERY_TOO_LARGE",
            format!(
                "the request asks for {spent} fields once its fragments are expanded \
                 (the operations of a batch count together); at most {} are allowed: \
                 ask for fewer fields or split the work into several requests",
                limits.max_fields
            ),
        ));
    }
    Ok(())
}

/// Gives the validation errors of a response from the lean schema their
/// codes, as the extension does for the full one. Validation errors are
/// the ones without a path: a resolver's error always has one.
pub fn code_validation_errors(response: &mut Response) {
    let errors = std::mem::take(&mut response.errors);
    response.errors = errors
        .into_iter()
        .map(|error| {
            let coded = error
                .extensions
                .as_ref()
                .is_some_and(|e| e.get("code").is_some());
            if coded || !error.path.is_empty() {
                error
            } else {
                with_validation_code(error)
            }
        })
        .collect();
}

/// Installs the checks on every operation of the full schema: batches over
/// HTTP and operations over WebSocket (single HTTP operations are checked
/// with `admit` before they run on the lean schema).
pub struct QueryLimits(pub DocumentLimits);

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryLimitsExtension(self.0))
    }
}

struct QueryLimitsExtension(DocumentLimits);

#[async_graphql::async_trait::async_trait]
impl Extension for QueryLimitsExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let budget = request
            .data
            .get(&TypeId::of::<Arc<QueryBudget>>())
            .and_then(|b| b.downcast_ref::<Arc<QueryBudget>>())
            .cloned();
        let budget = match budget {
            Some(budget) => budget,
            None => {
                let own = QueryBudget::shared();
                request.data.insert(own.clone());
                own
            }
        };
        admit(&mut request, &self.0, &budget)?;
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(with_validation_code)
                .collect::<Vec<_>>()
        })?;
        if let Some(budget) = ctx.data_opt::<Arc<QueryBudget>>() {
            let cost = u64::try_from(result.complexity).unwrap_or(u64::MAX);
            let max = u64::try_from(self.0.max_complexity).unwrap_or(u64::MAX);
            if let Err(spent) = QueryBudget::spend(&budget.complexity, cost, max) {
                return Err(vec![refusal(
                    "QUERY_TOO_COMPLEX",
                    format!(
                        "the request is too complex: its operations together cost {spent} \
                         and at most {max} is allowed; ask for smaller pages or fewer \
                         operations per batch"
                    ),
                )]);
            }
        }
        Ok(result)
    }
}

/// Gives async-graphql's validation errors a code, the over-deep and
/// over-complex ones their own.
fn with_validation_code(mut error: ServerError) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        let code = if error.message.contains("too complex") {
            "QUERY_TOO_COMPLEX"
        } else if error.message.contains("nested too deep") {
            "QUERY_TOO_DEEP"
        } else {
            "GRAPHQL_VALIDATION_FAILED"
        };
        extensions.set("code", code);
    }
    error
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const LIMITS: DocumentLimits = DocumentLimits {
        max_nesting: 64,
        max_fields: 2_000,
        max_fragments: 100,
        max_aliases_per_field: 30,
        max_complexity: 20_000,
    };

    fn fields(query: &str) -> Result<u64, ShapeError> {
        expanded_fields(&async_graphql::parser::parse_query(query).unwrap(), &LIMITS)
    }

    #[test]
    fn nesting_counts_brackets_but_not_those_in_strings_or_comments() {
        let cases = [
            ("{ a }", 1, false),
            ("{ a { b } }", 1, true),
            ("{ a(x: [1, [2]]) }", 4, false),
            ("{ a(x: [1, [2]]) }", 3, true),
            ("{ a(x: \"{{{{{{\") }", 2, false),
            ("{ a(x: \"\\\"{{{{\") }", 2, false),
            ("{ a(x: \"\"\"{{{\\\"\"\"{{{\"\"\") }", 2, false),
            ("{ a # {{{{{{\n }", 1, false),
            ("}}}}} { a }", 1, false),
        ];
        for (query, max, exceeds) in cases {
            assert_eq!(nesting_exceeds(query, max), exceeds, "{query} with {max}");
        }
    }

    #[test]
    fn a_block_string_ends_only_at_unescaped_triple_quotes() {
        // The escaped \""" does not end it, so the braces after it are text.
        let query = "{ a(x: \"\"\" \\\"\"\" {{{{ \"\"\") }";
        assert!(!nesting_exceeds(query, 2));
    }

    #[test]
    fn the_reported_attack_is_refused_before_parsing() {
        let value = format!("{}1{}", "{a:".repeat(1_500), "}".repeat(1_500));
        let query = format!("{{ me(x: {value}) {{ id }} }}");
        assert!(check_nesting(&query, 64).is_err());
    }

    #[test]
    fn expanded_fields_count_every_spread_once_per_use() {
        assert_eq!(fields("{ me { id } }").unwrap(), 2);
        assert_eq!(
            fields("{ ...F ...F } fragment F on Query { me { id } }").unwrap(),
            4
        );
        assert_eq!(
            fields("{ ... on Query { __typename } me { ...U } } fragment U on User { id email }")
                .unwrap(),
            4
        );
    }

    #[test]
    fn a_doubling_fragment_chain_is_counted_without_expanding_it() {
        let mut query = String::from("query { ...F0 }");
        for level in 0..60 {
            query.push_str(&format!(
                " fragment F{level} on Query {{ ...F{n} ...F{n} }}",
                n = level + 1
            ));
        }
        query.push_str(" fragment F60 on Query { __typename }");
        assert_eq!(fields(&query).unwrap(), 1u64 << 60);
    }

    #[test]
    fn a_fragment_cycle_is_refused() {
        let err = fields("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
            .unwrap_err();
        assert!(matches!(err, ShapeError::FragmentCycle(_)), "{err}");
    }

    #[test]
    fn too_many_aliases_of_one_field_are_refused() {
        let ok: String = (0..30).map(|n| format!("a{n}: me {{ id }} ")).collect();
        assert!(fields(&format!("{{ {ok} }}")).is_ok());
        let over: String = (0..31).map(|n| format!("a{n}: me {{ id }} ")).collect();
        assert!(matches!(
            fields(&format!("{{ {over} }}")),
            Err(ShapeError::TooManyAliases { count: 31, .. })
        ));
    }

    /// The query GraphiQL sends to learn the schema (graphql-js's
    /// `getIntrospectionQuery`, nine levels of `ofType`).
    const INTROSPECTION: &str = r"
        query IntrospectionQuery {
          __schema {
            queryType { name } mutationType { name } subscriptionType { name }
            types { ...FullType }
            directives { name description locations args { ...InputValue } }
          }
        }
        fragment FullType on __Type {
          kind name description specifiedByURL
          fields(includeDeprecated: true) {
            name description args { ...InputValue } type { ...TypeRef }
            isDeprecated deprecationReason
          }
          inputFields { ...InputValue }
          interfaces { ...TypeRef }
          enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
          possibleTypes { ...TypeRef }
        }
        fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
        fragment TypeRef on __Type {
          kind name ofType { kind name ofType { kind name ofType { kind name ofType {
          kind name ofType { kind name ofType { kind name ofType { kind name ofType {
          kind name } } } } } } } }
        }";

    #[test]
    fn the_ide_introspection_query_fits_well_within_the_default_limit() {
        let count = fields(INTROSPECTION).unwrap();
        assert!(count < LIMITS.max_fields / 4, "{count} fields");
    }
}
