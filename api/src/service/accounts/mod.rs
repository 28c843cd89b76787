//! Tenants, users and teams: sign-up and sessions, taking access away,
//! API keys for machines, and the audit log of configuration changes.

pub mod access;
pub mod account;
pub mod api_keys;
pub mod audit;
