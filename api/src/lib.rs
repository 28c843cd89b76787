//! LeadRank: whom to follow up next, and why. A multi-tenant GraphQL
//! backend that scores every lead through the pure `scoring` crate.

pub mod auth;
pub mod caller;
pub mod cli;
pub mod config;
pub mod config_check;
pub mod db;
pub mod domain;
pub mod error;
pub mod events_http;
pub mod export_http;
pub mod graphql;
pub mod jobs;
pub mod live;
pub mod metrics;
pub mod rate_limit;
pub mod service;
pub mod startup;
pub mod telemetry;
pub mod tenancy;
pub mod tls;

// A GraphQL answer is thousands of small values made and dropped on many
// threads at once; glibc's allocator spent a quarter of a queue request's
// CPU in malloc and free (perf, explained queue). Declared in the library
// so the server, the CLI, the benchmarks and the tests all run on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
