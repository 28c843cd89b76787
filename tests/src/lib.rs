//! Nothing here: the integration tests live in `tests/api/`.
