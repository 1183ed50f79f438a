//! The shared, single-flight token cache in front of a [`TokenSource`].

mod flight;
mod state;

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http::HeaderValue;

use self::{
    flight::{Backoff, Rules, Shared, Waiter},
    state::{Lifetimes, Phase},
};
use crate::{Error, FetchReason, Token, TokenSource, TokenStore, store::DynTokenStore};

pub(crate) use self::{
    flight::{Outcome, wait, wait_with},
    state::Cached,
};

/// A fetch to wait for, or why none could be started.
pub(crate) type Pending = Result<Waiter, Error>;

/// A token cache shared by every request of a client: one fetch at a time, its result shared.
///
/// Clones share one cache. It hands out the current token without locking or allocating, and
/// asks its [`TokenSource`] for a new one when:
///
/// - it holds none yet, or the token has expired: requests wait for the fetch;
/// - the token is inside its *refresh margin* (default 60 seconds before expiry, at most half
///   the token's lifetime): requests keep using it while one fetch runs in the background;
/// - a request with it got a 401 answer ([`invalidate`](Self::invalidate)).
///
/// However many requests need a token at once, the source runs once, and every waiter gets its
/// result, token or [`Error`]. The fetch runs in a task of its own: dropping every waiting
/// request does not cancel it, and its token is cached for the next request. A fetch that fails
/// never evicts a token that is still valid. No fetch starts sooner than
/// [`min_refresh_interval`](TokenCacheBuilder::min_refresh_interval) after the previous one, so
/// a server that issues tokens with tiny lifetimes cannot make the cache busy-loop.
///
/// Fetches are spawned on the Tokio runtime of the request that starts them.
///
/// ```
/// use tower_oauth2::{FetchContext, Error, Token, TokenCache, TokenSource};
///
/// struct Fixed;
///
/// impl TokenSource for Fixed {
///     async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
///         Ok(Token::bearer("abc"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let cache = TokenCache::new(Fixed);
/// let token = cache.token().await?;
/// assert_eq!(token.header_value(), "Bearer abc");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokenCache {
    shared: Arc<Shared>,
}

impl TokenCache {
    /// Creates a cache over `source` with the default settings.
    pub fn new(source: impl TokenSource) -> Self {
        Self::builder(source).build()
    }

    /// Starts configuring a cache over `source`.
    pub fn builder(source: impl TokenSource) -> TokenCacheBuilder {
        TokenCacheBuilder {
            source: Box::new(source),
            store: None,
            rules: Rules {
                lifetimes: Lifetimes {
                    refresh_margin: Duration::from_secs(60),
                },
                min_refresh_interval: Duration::from_secs(1),
                fetch_timeout: Duration::from_secs(60),
                backoff: Backoff {
                    initial: Duration::from_millis(250),
                    max: Duration::from_secs(30),
                    attempts: 3,
                },
            },
        }
    }

    /// Returns a usable token, waiting for a fetch when the cache holds none.
    pub async fn token(&self) -> Result<CachedToken, Error> {
        match self.lookup() {
            Lookup::Ready(cached, _) => Ok(CachedToken(cached)),
            Lookup::Wait(waiter) => wait(waiter?).await.map(CachedToken),
        }
    }

    /// Returns the current token without fetching, if it is usable.
    pub fn current(&self) -> Option<CachedToken> {
        let state = &self.shared.state;
        if !Phase::of(state.word()).is_usable() {
            return None;
        }
        state.current().map(CachedToken)
    }

    /// Fetches a new token now, or joins the fetch already in flight, and waits for it.
    ///
    /// Requests keep using the current token, if it is usable, until the new one arrives.
    pub async fn refresh(&self) -> Result<CachedToken, Error> {
        wait(self.shared.force()?).await.map(CachedToken)
    }

    /// Marks `used` as rejected, if it is still the current token: the next request waits for a
    /// new one. Does nothing when a newer token has replaced it, so many requests that got a 401
    /// answer for the same token cause one fetch, and a request that used an older token simply
    /// retries with the current one.
    pub fn invalidate(&self, used: &CachedToken) {
        self.invalidate_generation(used.0.generation);
    }

    /// Makes `token` the current token, as if a fetch had just returned it, and saves it to
    /// the [store](TokenCacheBuilder::store): for a token from an authorization-code exchange.
    /// Its lifetime counts from now.
    ///
    /// Fails when the access token cannot be sent in an HTTP header.
    pub async fn seed(&self, token: Token) -> Result<CachedToken, Error> {
        let state = &self.shared.state;
        let issued = tokio::time::Instant::now();
        let cached = Cached::new(
            token,
            issued,
            state.next_generation(),
            self.shared.rules.lifetimes,
        )?;
        self.shared.persist(&cached.token).await;
        let cached = Arc::new(cached);
        self.shared.seed(Arc::clone(&cached));
        Ok(CachedToken(cached))
    }

    /// Returns the last error of the [store](TokenCacheBuilder::store), if the last save
    /// failed.
    pub fn store_error(&self) -> Option<Error> {
        self.shared.store_error()
    }

    /// Returns counts of what the cache has done since it was built.
    pub fn stats(&self) -> CacheStats {
        self.shared.stats.snapshot()
    }

    /// The state word, the one read of the hot path. Equal words mean nothing changed.
    #[inline]
    pub(crate) fn word(&self) -> u64 {
        self.shared.state.word()
    }

    /// Finds a usable token, starting a background refresh when the token is stale, or tells
    /// the caller what to wait for.
    pub(crate) fn lookup(&self) -> Lookup {
        let state = &self.shared.state;
        loop {
            let word = state.word();
            let phase = Phase::of(word);
            if phase.is_usable() {
                let Some(cached) = state.current() else {
                    continue;
                };
                if !cached.is_armed() {
                    cached.arm(state);
                }
                if phase != Phase::Stale {
                    return Lookup::Ready(cached, word);
                }
                // Only the request that moves the word from stale starts the refresh.
                let Some(word) = state.try_advance(word, Phase::Refreshing) else {
                    continue;
                };
                if self.shared.start_background().is_err() {
                    state.transition(cached.generation, &[Phase::Refreshing], Phase::Stale);
                }
                return Lookup::Ready(cached, word);
            }
            let reason = match phase {
                Phase::Empty => FetchReason::Cold,
                Phase::Rejected => FetchReason::Rejected,
                _ => FetchReason::Expired,
            };
            if let Some(waiter) = self.shared.join(reason) {
                return Lookup::Wait(waiter);
            }
        }
    }

    pub(crate) fn record_retry(&self) {
        self.shared.stats.record_retry();
    }

    pub(crate) fn invalidate_generation(&self, generation: u64) {
        let usable = [Phase::Fresh, Phase::Stale, Phase::Refreshing];
        self.shared
            .state
            .transition(generation, &usable, Phase::Rejected);
    }
}

/// What [`TokenCache::lookup`] found.
pub(crate) enum Lookup {
    /// A usable token, and the state word it was found under.
    Ready(Arc<Cached>, u64),
    /// No usable token: wait for this fetch.
    Wait(Pending),
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("phase", &Phase::of(self.word()))
            .field("rules", &self.shared.rules)
            .finish_non_exhaustive()
    }
}

/// Configures a [`TokenCache`]. Made by [`TokenCache::builder`].
#[must_use]
pub struct TokenCacheBuilder {
    source: Box<dyn crate::source::DynTokenSource>,
    store: Option<Box<dyn DynTokenStore>>,
    rules: Rules,
}

impl TokenCacheBuilder {
    /// How long before expiry a token counts as stale and is refreshed in the background.
    /// Default: 60 seconds. At most half of a token's lifetime is used, so a token that lives
    /// 2 seconds is refreshed after 1.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.rules.lifetimes.refresh_margin = margin;
        self
    }

    /// The least time between the starts of two fetches. Default: 1 second.
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.rules.min_refresh_interval = interval;
        self
    }

    /// How long one fetch may take, its retries included, before it fails with
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout). Default: 60 seconds.
    ///
    /// This bounds any token source, including custom ones; a
    /// [`TokenClient`](crate::TokenClient) also has its own timeout per request. It does not
    /// cut short saving a new token to the [store](Self::store), which has a timeout of its
    /// own as long: the server may already have retired the refresh token before it. No
    /// request waits for a token longer than twice this plus the minimum refresh interval.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.rules.fetch_timeout = timeout;
        self
    }

    /// The backoff after failures: the first delay, doubling up to `max`, each a random point
    /// in the upper half of its step. A longer `Retry-After` from the server wins (up to ten
    /// minutes). Default: 250 milliseconds up to 30 seconds.
    ///
    /// After a failed fetch, requests that need a token fail at once with its error until the
    /// delay has passed; a token that is still valid keeps being served.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.rules.backoff.initial = initial;
        self.rules.backoff.max = max.max(initial);
        self
    }

    /// How many attempts one fetch makes when the errors are transient (see
    /// [`Error::is_transient`](crate::Error::is_transient)). Permanent errors end a fetch at
    /// once. Default: 3.
    pub fn attempts_per_fetch(mut self, attempts: u32) -> Self {
        self.rules.backoff.attempts = attempts.max(1);
        self
    }

    /// Keeps tokens in `store`, so that they survive a restart. See [`TokenStore`].
    pub fn store(mut self, store: impl TokenStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Builds the cache.
    pub fn build(self) -> TokenCache {
        TokenCache {
            shared: Arc::new(Shared::new(self.source, self.store, self.rules)),
        }
    }
}

impl fmt::Debug for TokenCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCacheBuilder")
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// Counters of one cache, kept with relaxed atomics off the hot path.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    fetches: AtomicU64,
    loads: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
    failed_saves: AtomicU64,
}

impl Stats {
    pub(crate) fn record_fetch(&self, ok: bool) {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_oauth2_token_fetches_total", "outcome" => if ok { "ok" } else { "error" })
            .increment(1);
    }

    pub(crate) fn record_load(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_oauth2_token_loads_total").increment(1);
    }

    pub(crate) fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("tower_oauth2_retries_total").increment(1);
    }

    pub(crate) fn record_failed_save(&self) {
        self.failed_saves.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> CacheStats {
        CacheStats {
            fetches: self.fetches.load(Ordering::Relaxed),
            loads: self.loads.load(Ordering::Relaxed),
            failed_fetches: self.failures.load(Ordering::Relaxed),
            retries_after_401: self.retries.load(Ordering::Relaxed),
            failed_saves: self.failed_saves.load(Ordering::Relaxed),
        }
    }
}

/// What a [`TokenCache`] has done since it was built. Made by [`TokenCache::stats`].
///
/// With the `metrics` feature the same events also go to the
/// [`metrics`](https://docs.rs/metrics) facade as `tower_oauth2_token_fetches_total` (labelled
/// `outcome`), `tower_oauth2_token_loads_total` and `tower_oauth2_retries_total`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Attempts to get a token from the source, successful or not.
    pub fetches: u64,
    /// Tokens read back from the [store](TokenCacheBuilder::store) by a cold cache, each of
    /// which spared a fetch.
    pub loads: u64,
    /// Attempts that failed.
    pub failed_fetches: u64,
    /// Requests sent again after a 401 answer.
    pub retries_after_401: u64,
    /// Tokens the [store](TokenCacheBuilder::store) failed to save.
    pub failed_saves: u64,
}

/// A token handed out by a [`TokenCache`]: the token, and the `Authorization` header built
/// from it. Cloning it is a reference-count increment.
#[derive(Clone)]
pub struct CachedToken(Arc<Cached>);

impl CachedToken {
    /// Returns the token as the source produced it.
    pub fn token(&self) -> &Token {
        &self.0.token
    }

    /// Returns the `Authorization` header value, `Bearer <token>`, marked sensitive.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0.header
    }
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("generation", &self.0.generation)
            .field("token", &self.0.token)
            .finish()
    }
}
