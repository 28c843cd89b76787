//! Leads: queries, mutations and the shared pool.

pub mod lead;
pub mod pool;
