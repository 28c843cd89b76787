//! Leads: creating, changing and reading them, the bulk writes that keep a
//! lead row and its score together, the reasons a queue explains itself
//! with, re-scoring, and the shared pool.

pub mod bulk;
pub mod lead;
pub mod lead_query;
pub mod lead_writer;
pub mod pool;
pub mod reasons;
pub mod rescoring;
