//! The shared, single-flight token cache in front of a [`TokenSource`].
//!
//! Words used throughout this module:
//!
//! - **entry**: a token as the cache holds it, with its `Authorization` header built once and
//!   the instants at which it turns stale and expires (`entry.rs`); the **state** holds the
//!   current entry and moves its stamp as the entry ages (`state.rs`).
//! - **generation**: a number unique in the process that names one entry.
//! - **phase**: where the current entry is in its life: empty, fresh, stale, refreshing,
//!   unwatched, expired, or unauthorized (a request with it got a 401 answer).
//! - **stamp**: the generation and phase in one atomic word; the one read of a request's fast
//!   path. Equal stamps mean the same token in the same phase (`stamp.rs`).
//! - **flight**: the one fetch that may run at a time, in a task of its own (`flight.rs`);
//!   **waiters** are the requests that wait for it.
//! - **fetch**: what the flight's task does: read the store when cold, else ask the source, with
//!   retries and backoff (`fetch.rs`); saving to the store is `persist.rs`.
//! - **ticket**: the header a request carries and the generation it names, so that a 401 answer
//!   retires that token and no other (`ticket.rs`).
//! - **lineage**: where a token set stands among the sets of its grant ([`Lineage`](crate::Lineage)): the
//!   fetch gives each new set one above the set it replaces. The rule, for every keeper of
//!   sets (this cache, its store, the fleet): a set never replaces one of higher lineage.

mod builder;
mod entry;
mod fetch;
#[cfg(feature = "redis")]
mod fleet;
mod flight;
mod persist;
mod stamp;
mod state;
mod stats;
mod ticket;

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::HeaderValue;

pub(crate) use self::ticket::{Ticket, Wait};
pub use self::{builder::TokenCacheBuilder, stats::CacheStats};
use self::{
    entry::Entry,
    fetch::Backoff,
    flight::Flight,
    persist::Persistence,
    stamp::{Phase, Stamp, USABLE},
    state::State,
    stats::Stats,
};
use crate::{Error, FetchReason, Token, TokenSource, source::DynTokenSource};

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
/// never evicts a token that is still valid. No fetch for a stale or expired token starts
/// sooner than [`min_refresh_interval`](TokenCacheBuilder::min_refresh_interval) after the
/// previous one, so a server that issues tokens with tiny lifetimes cannot make the cache
/// busy-loop.
///
/// Every token set the cache gets has a [`Lineage`](crate::Lineage) above the set it
/// replaces, and whoever keeps sets ([`TokenStore`](crate::TokenStore)s, the fleet) never
/// lets an older set replace a newer one: a refresh token the server has rotated away never
/// comes back.
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
    core: Arc<Core>,
}

/// Everything the clones of one cache share.
struct Core {
    /// Read by every request: kept off the cache line of the `Arc`'s reference counts, which
    /// threads that clone the client for each request keep writing.
    state: ApartFromCounts<Arc<State>>,
    flight: Mutex<Flight>,
    source: Box<dyn DynTokenSource>,
    persistence: Persistence,
    #[cfg(feature = "redis")]
    fleet: Option<fleet::Fleet>,
    rules: Rules,
    stats: Stats,
    /// The set an unusable token answer carried (its refresh token, with an access token that
    /// cannot be sent): the next fetch presents its refresh token, the server's newest.
    salvaged: Mutex<Option<Token>>,
}

/// A value aligned to a cache line of its own (128 bytes covers adjacent-line prefetching).
#[repr(align(128))]
struct ApartFromCounts<T>(T);

impl<T> std::ops::Deref for ApartFromCounts<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Timing rules, from the builder.
#[derive(Debug, Clone, Copy)]
struct Rules {
    refresh_margin: Duration,
    min_refresh_interval: Duration,
    fetch_timeout: Duration,
    backoff: Backoff,
}

impl TokenCache {
    /// Creates a cache over `source` with the default settings.
    pub fn new(source: impl TokenSource) -> Self {
        Self::builder(source).build()
    }

    /// Starts configuring a cache over `source`.
    pub fn builder(source: impl TokenSource) -> TokenCacheBuilder {
        TokenCacheBuilder::new(Box::new(source))
    }

    /// Returns a usable token, waiting for a fetch when the cache holds none.
    pub async fn token(&self) -> Result<CachedToken, Error> {
        loop {
            let stamp = self.core.state.stamp();
            if stamp.phase().is_usable() {
                self.settle(stamp);
                if let Some(entry) = self.core.state.entry_for(stamp) {
                    return Ok(CachedToken(entry));
                }
                continue;
            }
            if let Some(entry) = self.core.held_back(stamp) {
                return Ok(CachedToken(entry));
            }
            if let Some(fetch) = self.core.join(FetchReason::for_phase(stamp.phase())) {
                return flight::wait(fetch?).await.map(CachedToken);
            }
        }
    }

    /// Returns the current token without fetching, if it is usable.
    pub fn current(&self) -> Option<CachedToken> {
        let stamp = self.core.state.stamp();
        if !stamp.phase().is_usable() {
            return None;
        }
        self.core.state.entry_for(stamp).map(CachedToken)
    }

    /// Fetches a new token now, or joins the fetch already in flight, and waits for it.
    ///
    /// Requests keep using the current token, if it is usable, until the new one arrives.
    pub async fn refresh(&self) -> Result<CachedToken, Error> {
        flight::wait(self.core.force()?).await.map(CachedToken)
    }

    /// Marks `used` as rejected, if it is still the current token: the next request waits for a
    /// new one. Does nothing when a newer token has replaced it, so many requests that got a 401
    /// answer for the same token cause one fetch, and a request that used an older token simply
    /// retries with the current one.
    pub fn invalidate(&self, used: &CachedToken) {
        self.retire(used.0.generation);
    }

    /// Makes `token` the current token, as if a fetch had just returned it, and saves it to
    /// the [store](TokenCacheBuilder::store): for a token from an authorization-code exchange.
    /// Its lifetime counts from now.
    ///
    /// Fails when the access token cannot be sent in an HTTP header.
    pub async fn seed(&self, mut token: Token) -> Result<CachedToken, Error> {
        let now = tokio::time::Instant::now();
        let current = self.core.state.current();
        token.descend_from(current.as_deref().map(|entry| &entry.token));
        let entry = Arc::new(Entry::new(token, now, self.core.rules.refresh_margin)?);
        self.core
            .persistence
            .save(&entry.token, &self.core.stats)
            .await;
        self.core.seed(Arc::clone(&entry));
        Ok(CachedToken(entry))
    }

    /// Returns the last error of the [store](TokenCacheBuilder::store), if the last save
    /// failed.
    pub fn store_error(&self) -> Option<Error> {
        self.core.persistence.error()
    }

    /// What the cache's source says its tokens are for ([`TokenSource::identity`]).
    pub(crate) fn identity(&self) -> Option<crate::TokenSetId> {
        self.core.source.identity()
    }

    /// Returns counts of what the cache has done since it was built.
    pub fn stats(&self) -> CacheStats {
        self.core.stats.snapshot()
    }

    /// A ticket for the current token, or the fetch to wait for. A stale token is served while
    /// this starts its background refresh.
    #[inline]
    pub(crate) fn ticket(&self) -> Result<Ticket, Wait> {
        let stamp = self.core.state.stamp();
        if stamp.is_settled()
            && let Some(ticket) = self.copied_ticket(stamp)
        {
            return Ok(ticket);
        }
        self.ticket_slow()
    }

    #[cold]
    #[inline(never)]
    fn ticket_slow(&self) -> Result<Ticket, Wait> {
        loop {
            let stamp = self.core.state.stamp();
            if stamp.phase().is_usable() {
                let stamp = self.settle(stamp);
                if let Some(entry) = self.core.state.entry_for(stamp) {
                    return Ok(self.ticket_for(stamp, &entry));
                }
                continue;
            }
            if let Some(entry) = self.core.held_back(stamp) {
                return Ok(self.ticket_for(stamp, &entry));
            }
            let reason = FetchReason::for_phase(stamp.phase());
            if let Some(fetch) = self.core.join(reason) {
                return Err(Wait::new(fetch, self.clone()));
            }
        }
    }

    /// Does what a request that finds the token in `stamp` must do before it uses it: start
    /// the background refresh of a stale token, or the timer of an unwatched one. Returns the
    /// stamp after that.
    fn settle(&self, stamp: Stamp) -> Stamp {
        let state = &self.core.state;
        match stamp.phase() {
            // Only the request that moves the stamp on from stale starts the refresh.
            Phase::Stale if state.advance(stamp, Phase::Refreshing) => {
                if self.core.refresh_in_background().is_err() {
                    state.transition(stamp.generation(), &[Phase::Refreshing], Phase::Stale);
                }
            }
            Phase::Unwatched => state.rewatch(stamp),
            _ => return stamp,
        }
        state.stamp()
    }

    /// Marks the token of `generation` as rejected by a 401 answer, if it is still current.
    pub(crate) fn retire(&self, generation: u64) {
        self.core
            .state
            .transition(generation, USABLE, Phase::Unauthorized);
    }

    /// Counts a request sent again after a 401 answer.
    pub(crate) fn count_retry(&self) {
        self.core.stats.retried();
    }
}

impl FetchReason {
    /// Why a request that finds the cache in `phase` needs a fetch.
    fn for_phase(phase: Phase) -> Self {
        match phase {
            Phase::Empty => Self::Cold,
            Phase::Unauthorized => Self::Unauthorized,
            _ => Self::Expired,
        }
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("phase", &self.core.state.stamp().phase())
            .field("rules", &self.core.rules)
            .finish_non_exhaustive()
    }
}

/// A token handed out by a [`TokenCache`]: the token, and the `Authorization` header built
/// from it. Cloning it is a reference-count increment.
#[derive(Clone)]
pub struct CachedToken(Arc<Entry>);

impl CachedToken {
    /// Returns the token as the source produced it.
    pub fn token(&self) -> &Token {
        &self.0.token
    }

    /// Returns the `Authorization` header value, `Bearer <token>`, marked sensitive; for a
    /// DPoP-bound token `DPoP <token>`, which a server accepts only beside a proof that
    /// [`OAuth2Layer`](crate::OAuth2Layer) signs for each request.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0.header
    }

    /// How long the token stays valid from now, if it expires: zero once it has.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        let at = self.0.expires_at()?;
        Some(at.saturating_duration_since(tokio::time::Instant::now()))
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
