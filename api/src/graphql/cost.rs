//! What fields cost against `LEADRANK_MAX_QUERY_COMPLEXITY`, beside the
//! one every field costs. A field that reads the database costs more than
//! one answered from memory, so a query cannot ask for thousands of
//! database round trips while staying under the limit; lists multiply
//! their items' cost by their page size (`count_of(first)` in `lead.rs`).

/// A root field answered by a query or two (`me`, `lead`, `pipelines`).
pub const READ: usize = 10;
/// A filtered page of a tenant's leads (`leads`), which may also be counted.
pub const PAGE: usize = 200;
/// A `COUNT(*)` over a tenant's leads (`totalCount`). It sits inside the
/// connection, so the connection's page size multiplies it like the
/// nodes' fields: kept low enough that a page of 100 with its count stays
/// well inside the limit. Aliases of it share one count; asking for many
/// connections is what `PAGE` prices.
pub const COUNT: usize = 20;
/// An aggregate over a tenant's leads (`funnel`, `tierDistribution`).
pub const ANALYTICS: usize = 1_000;
/// Scoring a model against every closed lead (`modelEvaluation`).
pub const EVALUATION: usize = 2_500;
/// Scoring every open lead with a draft model (`previewScoringModel`).
pub const PREVIEW: usize = 5_000;
