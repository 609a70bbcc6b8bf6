//! Postgres TLS as Spin's client does it: unless the connection string says
//! `sslmode=disable`, ask for TLS and verify the server's certificate and
//! name against the system's roots (`prefer` falls back to plain text only
//! when the server offers no TLS). Shared by this sidecar and the runtime's
//! `spin:postgres` host, so the Job, `village` and Spin agree on what
//! connects.
//!
//! rustls (with ring, already in the tree) and `rustls-native-certs` rather
//! than OpenSSL: nothing to install, and the same roots Spin's `native-tls`
//! reads on Linux.

use std::sync::{Arc, OnceLock};

pub use tokio_postgres_rustls::MakeRustlsConnect;

/// The verifying TLS connector, built once per process.
pub fn connector() -> Result<MakeRustlsConnect, String> {
    static TLS: OnceLock<Result<MakeRustlsConnect, String>> = OnceLock::new();
    TLS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            eprintln!("postgres tls: a system root certificate could not be loaded: {e}");
        }
        roots.add_parsable_certificates(native.certs);
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    })
    .clone()
}
