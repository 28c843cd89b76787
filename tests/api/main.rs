//! LeadRank's integration tests: one binary, the real server on a random
//! port with a fresh database per test. SQLite by default; set
//! `TEST_DATABASE_URL=postgres://user:pass@host/db` to run every test in its
//! own fresh PostgreSQL database instead (the role needs CREATEDB).

#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests set up and check rows across tenants through the system
// connection (`TestApp::system_db`), where no tenant scope applies.
#![allow(clippy::disallowed_methods)]

mod helpers;

mod access;
mod account_abuse;
mod accounts;
mod api_keys;
mod assignment;
mod configuration;
mod customers;
mod demo;
mod digest;
mod errors;
mod export;
mod graphql_http;
mod hardening;
mod import;
mod ingestion;
mod inside_tenant;
mod jobs;
mod leads;
mod limits;
mod live;
mod live_access;
mod metrics;
mod models;
mod pins;
mod pool;
mod review;
mod sessions;
mod tenancy;
mod throttling;
mod traces;
mod urgency_rules;
mod webhooks;
mod whom_next;
