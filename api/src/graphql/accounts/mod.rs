//! Accounts: sign-up and sign-in, users, teams and roles, API keys and the
//! audit log.

pub mod access;
pub mod account;
pub mod api_keys;
pub mod audit;
