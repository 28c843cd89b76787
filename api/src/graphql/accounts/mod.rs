//! Accounts: sign-up, sessions, users, teams and the tenant, taking access
//! away, API keys, and the audit log of configuration changes.

pub mod access;
pub mod account;
pub mod api_keys;
pub mod audit;
