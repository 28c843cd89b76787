//! The process's TLS crypto provider, below everything that opens an HTTPS
//! connection (the webhook worker, the trace exporter).

/// Makes ring the process's TLS crypto provider. reqwest is built without
/// a bundled one (its default, aws-lc, needs a C toolchain and minutes of
/// build); ring is already in the tree for the database driver's TLS. Any
/// HTTP client in the process needs this first; a second call is harmless.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
