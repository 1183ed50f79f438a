//! The rustls crypto provider behind every TLS connection the crate makes (the `https`
//! client, mutual TLS keys, `rediss://`).

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The process default when the application installed one (aws-lc-rs's, say, for its
/// post-quantum key exchange), else ring's. Named explicitly, because rustls' own default
/// panics when a program links two providers and installs neither.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(ring()))
}

/// Installs ring's provider as the process default when none is, for libraries that read
/// only the default (redis-rs).
#[cfg(feature = "redis")]
pub(crate) fn install_default_if_none() {
    if CryptoProvider::get_default().is_none() {
        // Another thread may have installed one meanwhile: that one stays, as it should.
        let _ = ring().install_default();
    }
}

// rustls 0.23.48 deprecates ring's provider for lacking post-quantum key exchange. It stays
// the fallback: ring builds without the C toolchain and cmake aws-lc-rs needs, and an
// application that wants post-quantum key exchange installs aws-lc-rs as the default.
#[allow(deprecated)]
fn ring() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}
