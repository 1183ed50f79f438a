//! What a cache has done: counters kept with relaxed atomics, off the hot path.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a [`TokenCache`](crate::TokenCache) has done since it was built. Made by
/// [`TokenCache::stats`](crate::TokenCache::stats).
///
/// With the `metrics` feature the same events also go to the
/// [`metrics`](https://docs.rs/metrics) facade as `tower_oauth2_token_fetches_total` (labelled
/// `outcome`), `tower_oauth2_token_loads_total`, `tower_oauth2_token_shared_total` and
/// `tower_oauth2_retries_total`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Attempts to get a token from the source, successful or not.
    pub fetches: u64,
    /// Tokens read back from the [store](crate::TokenCacheBuilder::store) by a cold cache, each
    /// of which spared a fetch.
    pub loads: u64,
    /// Tokens taken from a fleet (`TokenCacheBuilder::fleet`): fetched by another replica, or
    /// by this one before a restart; each spared a fetch.
    pub shared: u64,
    /// Attempts that failed.
    pub failed_fetches: u64,
    /// Requests sent again after a 401 answer.
    pub retries_after_401: u64,
    /// Tokens the [store](crate::TokenCacheBuilder::store) failed to save.
    pub failed_saves: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    fetches: AtomicU64,
    loads: AtomicU64,
    shared: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
    failed_saves: AtomicU64,
}

impl Stats {
    pub(crate) fn fetched(&self, ok: bool) {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_oauth2_token_fetches_total", "outcome" => if ok { "ok" } else { "error" })
            .increment(1);
    }

    pub(crate) fn loaded(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_oauth2_token_loads_total").increment(1);
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn shared(&self) {
        self.shared.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_oauth2_token_shared_total").increment(1);
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_oauth2_retries_total").increment(1);
    }

    pub(crate) fn save_failed(&self) {
        self.failed_saves.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> CacheStats {
        CacheStats {
            fetches: self.fetches.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
            shared: self.shared.load(Ordering::Relaxed),
            failed_fetches: self.failures.load(Ordering::Relaxed),
            retries_after_401: self.retries.load(Ordering::Relaxed),
            failed_saves: self.failed_saves.load(Ordering::Relaxed),
        }
    }
}
