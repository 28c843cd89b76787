//! Events out: webhook endpoints and their deliveries.

pub mod webhooks;
