//! Leads and activities from outside: ingested events and CSV imports.

pub mod import;
pub mod ingest;
