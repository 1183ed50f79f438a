//! Building a [`TokenCache`]: its timing rules, its store and its fleet, each with its default.

use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    ApartFromCounts, Core, Rules, TokenCache, fetch::Backoff, flight::Flight, persist::Persistence,
    state::State, stats::Stats, ticket,
};
use crate::{TokenStore, source::DynTokenSource, store::DynTokenStore};

/// Configures a [`TokenCache`]. Made by [`TokenCache::builder`].
#[must_use]
pub struct TokenCacheBuilder {
    source: Box<dyn DynTokenSource>,
    store: Option<Box<dyn DynTokenStore>>,
    #[cfg(feature = "redis")]
    fleet: Option<(Arc<crate::fleet::RedisFleet>, crate::TokenSetId)>,
    rules: Rules,
}

impl TokenCacheBuilder {
    /// A builder over `source` with the default settings.
    pub(super) fn new(source: Box<dyn DynTokenSource>) -> Self {
        Self {
            source,
            store: None,
            #[cfg(feature = "redis")]
            fleet: None,
            rules: Rules {
                refresh_margin: Duration::from_secs(60),
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

    /// How long before expiry a token counts as stale and is refreshed in the background.
    /// Default: 60 seconds. At most half of a token's lifetime is used, so a token that lives
    /// 2 seconds is refreshed after 1.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.rules.refresh_margin = margin;
        self
    }

    /// The least time between the starts of two fetches for stale or expired tokens. Default:
    /// 1 second. The first fetch after a 401 answer starts at once; fetches after 401 answers
    /// to one new token after another are held back by a growing delay (the
    /// [`backoff`](Self::backoff)), since an API that rejects every new token is better told
    /// apart than hammered.
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

    /// Shares tokens with the other replicas of a fleet through Redis: on a miss, when its
    /// token turns stale, and after a 401, the cache asks `fleet` before its source, and one
    /// replica runs the grant for all. A request whose token is cached never touches Redis.
    /// See [`fleet`](crate::fleet). Available with the `redis` feature.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) when the source does not say
    /// what its tokens are for ([`TokenSource::identity`](crate::TokenSource::identity)): a grant
    /// that acts for a user needs a subject first, such as
    /// [`RefreshToken::subject`](crate::grant::RefreshToken::subject), so that no replica is
    /// ever handed another user's tokens; or when its token client has a DPoP key, as bound
    /// tokens are good only in the process that holds the key.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn fleet(
        mut self,
        fleet: impl Into<Arc<crate::fleet::RedisFleet>>,
    ) -> Result<Self, crate::Error> {
        let id = self.source.identity().ok_or_else(|| {
            crate::Error::config(
                "the token source does not say what its tokens are for (TokenSource::identity); \
                 a grant that acts for a user shares tokens only once given a subject",
            )
        })?;
        if id.dpop_bound {
            return Err(crate::Error::config(
                "a DPoP-bound token cannot be shared through a fleet: build this cache without \
                 TokenCacheBuilder::fleet, or its token client without a DPoP key",
            ));
        }
        self.fleet = Some((fleet.into(), id));
        Ok(self)
    }

    /// Builds the cache.
    pub fn build(self) -> TokenCache {
        let rules = self.rules;
        TokenCache {
            core: Arc::new(Core {
                state: ApartFromCounts(Arc::new(State::new(ticket::SLOTS))),
                flight: Mutex::new(Flight::default()),
                source: self.source,
                persistence: Persistence::new(self.store, rules.fetch_timeout),
                #[cfg(feature = "redis")]
                fleet: self
                    .fleet
                    .map(|(fleet, id)| super::fleet::Fleet::new(fleet, &id, rules.refresh_margin)),
                rules,
                stats: Stats::default(),
                salvaged: Mutex::new(None),
            }),
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
