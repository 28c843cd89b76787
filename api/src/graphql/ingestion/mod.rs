//! Ingestion: recorded activities and CSV imports.

pub mod import;
pub mod ingest;
