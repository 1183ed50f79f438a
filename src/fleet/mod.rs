//! Fleets: many replicas of a service sharing one token set through Redis, so the fleet runs
//! one grant per token lifetime instead of one per replica.
//!
//! A [`RedisFleet`] stands between a replica's cache and its [`TokenSource`](crate::TokenSource).
//! It is asked only when the replica's own cache cannot answer: it holds no token, its token
//! turned stale, or a request with it got a 401 answer. A request whose token is cached never
//! touches Redis.
//!
//! Build one `RedisFleet` per process and give it to every [`TokenCache`](crate::TokenCache)
//! whose tokens the replicas should share, with
//! [`TokenCacheBuilder::fleet`](crate::TokenCacheBuilder::fleet):
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_oauth2::{
//!     ClientAuth, OAuth2Layer, TokenCache, TokenClient,
//!     fleet::{FleetKey, RedisFleet},
//!     grant::ClientCredentials,
//! };
//!
//! # fn main() -> Result<(), tower_oauth2::Error> {
//! # let http = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
//! #     Ok::<_, std::convert::Infallible>(http::Response::new(
//! #         http_body_util::Full::<bytes::Bytes>::default(),
//! #     ))
//! # });
//! // The same key on every replica, from wherever the service keeps its secrets.
//! let key = FleetKey::from_base64(1, &std::env::var("FLEET_KEY").unwrap_or_default())?;
//! let fleet = RedisFleet::new("redis://redis.internal:6379", key)?
//!     .namespace("orders-service")
//!     .lease(Duration::from_secs(10))
//!     .timeout(Duration::from_millis(500));
//!
//! let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
//! let grant = ClientCredentials::new(endpoint, ClientAuth::basic("my-client", "my-secret"));
//! let cache = TokenCache::builder(grant).fleet(fleet)?.build();
//! let layer = OAuth2Layer::new(cache);
//!
//! // Or a Redis Cluster, reached through any of its nodes:
//! # let key = FleetKey::new(1, [7; 32]);
//! let fleet = RedisFleet::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"], key)?;
//! # Ok(())
//! # }
//! ```
//!
//! A grant that acts for a user shares only once it names the user:
//! [`RefreshToken::subject`](crate::grant::RefreshToken::subject),
//! [`AuthorizationCode::subject`](crate::grant::AuthorizationCode::subject). The guide in
//! `docs/fleet.md` has the protocol, the failure semantics, the load at scale and the
//! measurements; `fleet/run.sh` proves it against real Redis servers and replica processes.
//!
//! # How replicas share a token set
//!
//! Terms, as the code uses them:
//!
//! - **token set**: the access token and what came with it (refresh and id tokens, expiry),
//!   stored sealed under one Redis key. Two caches share a token set when their sources'
//!   [identities](crate::TokenSource::identity) are equal (the same token endpoint, client,
//!   grant type, scopes, audiences, other plain fields and subject) and their fleets have the
//!   same [namespace](RedisFleet::namespace).
//! - **usable**: a shared token that is not the one the replica wants replaced, and has more
//!   time left than the cache's refresh margin (capped at half the token's lifetime, as the
//!   cache caps it). Time left is counted from the `expires_at` the writer recorded, by each
//!   replica's own clock: keep the clocks in sync.
//! - **lease**: a Redis key, set with `SET NX PX` to a random value, that says which replica
//!   runs the grant for the fleet. Its **holder** renews it while the grant runs; it expires
//!   on its own when the holder dies.
//! - **waiter**: a replica that found the lease taken. It waits for the holder's token set
//!   (woken through pub/sub, polling in case a wake-up is lost) for as long as the holder
//!   renews its lease, and takes the lease over when the holder died or gave up: a
//!   **takeover**. A holder that crashes delays the others by at most one lease.
//! - **fallback**: Redis failed or did not answer in time, so the replica runs the grant on
//!   its own, as if it had no fleet.
//! - **retire**: after a 401 answer, stop the shared token set from offering the token that
//!   was refused, if it still does, so the next replica to ask runs one grant for all: delete
//!   it, or, when it carries a refresh token, rewrite it with its access token expired, so
//!   that grant still gets the newest refresh token.
//!
//! ```text
//!             read token set ──usable──────────────────────────────────────► take it (fleet)
//!                   │ absent, unreadable, stale or the one being replaced
//!                   ▼
//!       ┌──► SET lease NX PX ──won──► read again ──usable──► release lease ► take it (fleet)
//!       │           │                     │ still not usable
//!       │          held                   ▼
//!       │           ▼               run the grant, renewing the lease every lease/3
//!       │   wait: wake-up, poll,          │ token                        │ error
//!       │   or lease expiry               ▼                              ▼
//!       │           │               write sealed set, TTL = lifetime   release lease,
//!       └───────────┘               (+ retention with a refresh        wake waiters,
//!        (read again first;         token) and release the lease in    report the error
//!         usable: take it)          one script; wake waiters (granted)
//!
//!   any Redis error or timeout on the way ─► run the grant locally (fallback); WARN once
//! ```
//!
//! # Security
//!
//! - Keys are a SHA-256 of the token set's identity and never contain a secret.
//! - Values are sealed with AES-256-GCM-SIV under a [`FleetKey`], with a nonce from the
//!   operating system for each value (never from a generator in the process, which a forked
//!   or snapshot-restored replica would share), with its key id in the value
//!   (so keys can be rotated) and the Redis key as associated data (so a value copied under
//!   another key does not open). Tokens reach Redis in clear only after
//!   [`plaintext`](RedisFleet::plaintext); wake-up messages carry nothing.
//! - A value that does not open, or does not parse, is treated as absent, logged at `WARN`
//!   (with the reason, never the content) and counted in [`FleetStats::discarded`]; it is
//!   replaced by the next grant.
//!
//! # When Redis fails
//!
//! Every Redis operation has a [timeout](RedisFleet::timeout) (default 1 second); a Redis that
//! accepts connections but never answers fails like one that refuses them. A replica that
//! cannot reach Redis runs its grant locally, logs once at `WARN` until Redis answers again
//! (then once at `INFO`), counts it in [`FleetStats::fallbacks`], and leaves Redis alone for
//! the timeout (at least a second) before it tries again. A failing Redis never fails a token
//! fetch.
//!
//! # Observability
//!
//! [`RedisFleet::stats`] counts tokens read from the fleet, leases won and lost, takeovers,
//! fallbacks, refused values and retired token sets; a cache's
//! [`CacheStats::shared`](crate::CacheStats::shared) counts the tokens it took from the fleet
//! (with the `metrics` feature also `tower_oauth2_token_shared_total`). Through `tracing`: a
//! span `fleet_obtain` (`INFO`, inside the cache's `token_fetch`; fields `set`, the hash that
//! names the token set, and `outcome`: `fleet`, `granted`, `fallback` or `error`) and
//! `fleet_retire` (`INFO`, `set`); events for a takeover (`INFO`), a refused value, a lease
//! lost during a grant, Redis becoming unavailable (`WARN`), and Redis answering again
//! (`INFO`). No token, key or secret is ever recorded. The crate docs' *Observability* has
//! the whole list.
//!
//! # What the fleet needs of Redis
//!
//! Redis 7 or later (Redis Cluster included), RESP3. With ACLs: `HELLO`, and `GET`, `SET`,
//! `EVAL` (the scripts call `GET`, `SET`, with `KEEPTTL` too, `DEL`, `PTTL` and `PEXPIRE`),
//! `PUBLISH` and `SUBSCRIBE` (`SPUBLISH` and `SSUBSCRIBE` on a cluster), on keys and channels
//! `tower-oauth2:*`. A Redis that refuses the subscription still works: waiters poll.

mod key;
mod lead;
mod lineage;
mod protocol;
mod redis;
mod seal;
mod sealing_key;
mod shared;
mod stats;

use std::{fmt, sync::Arc, time::Duration};

pub(crate) use self::{key::FleetScope, protocol::Obtained};
use self::{
    redis::Redis,
    seal::Keyring,
    stats::{Counters, Health},
};
pub use self::{sealing_key::FleetKey, stats::FleetStats};
use crate::{Error, TokenSetId};

const DEFAULT_LEASE: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
const DEFAULT_REFRESH_RETENTION: Duration = Duration::from_secs(24 * 3600);
const SHORTEST_LEASE: Duration = Duration::from_millis(100);
/// A lease is how long a dead holder makes the others wait; longer than this is a setting
/// meant as "forever", which would stall the fleet behind one crash.
const LONGEST_LEASE: Duration = Duration::from_secs(3600);

/// A fleet of replicas sharing token sets through Redis or Redis Cluster: one grant per
/// fleet per token lifetime. See the [module docs](self) for the protocol and its guarantees.
///
/// Build one per process and share it (it is `Send + Sync`; the connection is made on first
/// use and shared). Every replica needs the same [`FleetKey`] and
/// [namespace](Self::namespace).
///
/// `rediss://` URLs connect over TLS with rustls, trusting the system's root certificates.
/// Where the program has installed no rustls crypto provider, the fleet installs `ring` as the
/// process default before it connects over TLS.
pub struct RedisFleet {
    redis: Redis,
    keyring: Keyring,
    namespace: String,
    lease: Duration,
    refresh_retention: Duration,
    health: Health,
    counters: Counters,
    /// Shared with the tasks that write token sets back.
    marks: Arc<lineage::Marks>,
}

impl RedisFleet {
    /// A fleet on one Redis server (or a proxy in front of several), such as
    /// `redis://:password@redis.internal:6379/0` or `rediss://redis.internal:6380`, sealing
    /// token sets with `key`.
    ///
    /// Nothing is sent until the fleet is first used. Fails with
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) when `url` is not a Redis URL; the
    /// error does not repeat the URL, which may hold a password.
    pub fn new(url: &str, key: FleetKey) -> Result<Self, Error> {
        let redis = Redis::standalone(url, DEFAULT_TIMEOUT).map_err(|_| not_a_url())?;
        Ok(Self::with(redis, key))
    }

    /// A fleet on a Redis Cluster, found through any of `urls` (one node is enough; more
    /// survive that node being down at start), sealing token sets with `key`.
    ///
    /// Every key of one token set carries the same hash tag, so they share a slot; wake-ups use
    /// sharded pub/sub (Redis 7 and later).
    pub fn cluster<I, S>(urls: I, key: FleetKey) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let urls: Vec<String> = urls
            .into_iter()
            .map(|url| url.as_ref().to_owned())
            .collect();
        if urls.is_empty() {
            return Err(Error::config("a Redis Cluster needs at least one node URL"));
        }
        let redis = Redis::cluster(urls, DEFAULT_TIMEOUT).map_err(|_| not_a_url())?;
        Ok(Self::with(redis, key))
    }

    fn with(redis: Redis, key: FleetKey) -> Self {
        Self {
            redis,
            keyring: Keyring::new(key),
            namespace: String::new(),
            lease: DEFAULT_LEASE,
            refresh_retention: DEFAULT_REFRESH_RETENTION,
            health: Health::default(),
            counters: Counters::default(),
            marks: Arc::default(),
        }
    }

    /// Sets a namespace that is part of every key: fleets with different namespaces never
    /// share a token set, even for the same client. Use it to separate environments or
    /// services that share one Redis. Default: empty.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets how long a lease lasts unless its holder renews it (it does, every third of it,
    /// while its grant runs): how long a replica that dies during a grant makes the others
    /// wait before one of them takes over. Default: 10 seconds; at least 100 ms, at most an
    /// hour (`Duration::MAX` is an hour).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.clamp(SHORTEST_LEASE, LONGEST_LEASE);
        self
    }

    /// Sets how long any one Redis operation may take before the fleet gives up on it and the
    /// replica runs its grant locally. Default: 1 second; at least 10 ms.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.redis.timeout = timeout.max(Duration::from_millis(10));
        self
    }

    /// Also opens values sealed with `key`, for key rotation: give every replica the new key
    /// this way first, then make it the current key everywhere, then drop the old one.
    #[must_use]
    pub fn also_decrypt_with(mut self, key: FleetKey) -> Self {
        self.keyring.add(key);
        self
    }

    /// Stores token sets **unencrypted**, and accepts unencrypted values: access, refresh and
    /// id tokens are then readable by anyone who can read the Redis. Values sealed with the
    /// fleet's keys are still read. Without this, an unencrypted value is refused.
    #[must_use]
    pub fn plaintext(mut self) -> Self {
        self.keyring.allow_plaintext();
        self
    }

    /// Sets how long a token set with a refresh token stays in Redis after its access token
    /// expires, so a replica that wakes up later still finds the newest refresh token (a
    /// server that rotates refresh tokens accepts only the newest). Default: one day; zero
    /// keeps every token set only as long as its access token; at most a year
    /// (`Duration::MAX` is a year).
    ///
    /// No token set stays in Redis longer than a year after it is written, however long its
    /// access token lives and whatever the retention: Redis refuses longer expiries.
    #[must_use]
    pub fn refresh_token_retention(mut self, retention: Duration) -> Self {
        self.refresh_retention = retention.min(redis::LONGEST_EXPIRY);
        self
    }

    /// Returns what this fleet has done since it was built.
    pub fn stats(&self) -> FleetStats {
        self.counters.snapshot()
    }

    /// The keys of the token set `id` in this fleet's namespace.
    pub(crate) fn scope(&self, id: &TokenSetId) -> FleetScope {
        FleetScope::derive(&self.namespace, id)
    }
}

fn not_a_url() -> Error {
    Error::config("not a Redis URL (redis://, rediss:// or redis+unix://)")
}

/// Shows where the fleet connects, never a password or a key.
impl fmt::Debug for RedisFleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisFleet")
            .field("servers", &self.redis.addresses())
            .field("cluster", &self.redis.is_cluster())
            .field("namespace", &self.namespace)
            .field("keys", &self.keyring)
            .field("lease", &self.lease)
            .field("timeout", &self.redis.timeout)
            .field("refresh_token_retention", &self.refresh_retention)
            .finish_non_exhaustive()
    }
}

/// The crate-private entry points the cache calls, for `tests/fleet` to drive the protocol
/// directly. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __seam {
    use std::future::Future;

    use super::RedisFleet;
    pub use super::{
        key::FleetScope,
        protocol::{Obtained, Retired},
    };
    pub use crate::TokenSetId;
    use crate::{Error, Token};

    /// `RedisFleet::scope`.
    pub fn scope(fleet: &RedisFleet, id: &TokenSetId) -> FleetScope {
        fleet.scope(id)
    }

    /// `RedisFleet::obtain`, waiting for other replicas at most a minute, the cache's default
    /// fetch timeout.
    pub async fn obtain<G, F>(
        fleet: &RedisFleet,
        scope: &FleetScope,
        local: Option<&Token>,
        grant: G,
    ) -> Result<Obtained, Error>
    where
        G: FnOnce(Option<Token>) -> F,
        F: Future<Output = Result<Token, Error>>,
    {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        fleet.obtain(scope, local, deadline, grant).await
    }

    /// `RedisFleet::obtain`, waiting for other replicas no later than `deadline`.
    pub async fn obtain_by<G, F>(
        fleet: &RedisFleet,
        scope: &FleetScope,
        local: Option<&Token>,
        deadline: tokio::time::Instant,
        grant: G,
    ) -> Result<Obtained, Error>
    where
        G: FnOnce(Option<Token>) -> F,
        F: Future<Output = Result<Token, Error>>,
    {
        fleet.obtain(scope, local, deadline, grant).await
    }

    /// `RedisFleet::retire`.
    pub async fn retire(fleet: &RedisFleet, scope: &FleetScope, token: &Token) -> Retired {
        fleet.retire(scope, token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_servers_but_no_password_or_key() {
        let key = FleetKey::new(7, [0xab; 32]);
        let fleet = RedisFleet::new("redis://user:sentinel-password@127.0.0.1:6380/2", key)
            .unwrap()
            .namespace("ns");
        let shown = format!("{fleet:?}");
        assert!(shown.contains("127.0.0.1:6380"), "{shown}");
        assert!(!shown.contains("sentinel"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn a_bad_url_is_a_config_error_that_does_not_repeat_it() {
        let error =
            RedisFleet::new("http://sentinel:secret@host", FleetKey::new(1, [0; 32])).unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Config);
        assert!(!error.to_string().contains("sentinel"), "{error}");
        let none: [&str; 0] = [];
        assert!(RedisFleet::cluster(none, FleetKey::new(1, [0; 32])).is_err());
    }

    #[test]
    fn settings_too_long_for_redis_are_clamped() {
        let fleet = RedisFleet::new("redis://127.0.0.1:1", FleetKey::new(1, [0; 32]))
            .unwrap()
            .lease(Duration::MAX)
            .refresh_token_retention(Duration::MAX);
        assert_eq!(fleet.lease, Duration::from_secs(3600));
        assert_eq!(
            fleet.refresh_retention,
            Duration::from_secs(365 * 24 * 3600)
        );
        let short = fleet
            .lease(Duration::ZERO)
            .refresh_token_retention(Duration::ZERO);
        assert_eq!(short.lease, Duration::from_millis(100));
        assert_eq!(short.refresh_retention, Duration::ZERO);
    }

    #[test]
    fn the_fleet_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RedisFleet>();
    }
}
