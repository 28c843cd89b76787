//! The command line's maintenance subcommands, beside `serve`: re-scoring,
//! CSV import and export, and the demo tenant.

pub mod demo;
pub mod import;
pub mod rescore;
