//! Edge cases of the token cache: runtimes that go away, deadlines, absurd settings, strangers' tokens.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::StatusCode;
use tokio::time::Instant;
use tower_oauth2::{
    Error, ErrorKind, FetchContext, MemoryStore, Secret, Token, TokenCache, TokenSource, TokenStore,
};

use common::AuthServerExt;
use tower_oauth2_testkit::AuthServer;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Answers just before the fetch deadline with a rotated refresh token.
struct RotatesLate;

impl TokenSource for RotatesLate {
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, Error> {
        tokio::time::sleep(secs(59)).await;
        Ok(Token::bearer("a2")
            .with_expires_in(secs(3600))
            .with_refresh_token("r2"))
    }
}

/// A store whose saves take two seconds, as a remote one can.
struct SlowStore(MemoryStore);

impl TokenStore for SlowStore {
    async fn load(&self) -> Result<Option<Token>, Error> {
        self.0.load().await
    }

    async fn save(&self, token: &Token) -> Result<(), Error> {
        tokio::time::sleep(secs(2)).await;
        self.0.save(token).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_rotated_refresh_token_survives_a_slow_save_near_the_fetch_deadline() {
    let store = Arc::new(SlowStore(MemoryStore::new()));
    let cache = TokenCache::builder(RotatesLate)
        .store(Arc::clone(&store))
        .attempts_per_fetch(1)
        .build();
    // The server has issued r2 and retired the refresh token before it: dropping r2 now
    // means the user has to authorize again.
    let token = cache
        .token()
        .await
        .expect("the issued token was thrown away");
    assert_eq!(
        token.token().refresh_token().map(Secret::expose),
        Some("r2")
    );
    let saved = store.0.get().expect("the issued token was not saved");
    assert_eq!(saved.refresh_token().map(Secret::expose), Some("r2"));
}

/// Counts its fetches; every token lives 100 seconds.
#[derive(Default)]
struct Counting(AtomicUsize);

impl TokenSource for Counting {
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, Error> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Token::bearer(format!("t{n}")).with_expires_in(secs(100)))
    }
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn a_token_still_expires_after_the_runtime_that_armed_its_timer_shut_down() {
    // A client kept in a static and used from one `#[tokio::test]` after another, or from
    // sync code that builds a runtime per call, outlives the runtime its timers run on.
    let cache = TokenCache::new(Counting::default());
    let first = paused_runtime();
    let token = first.block_on(cache.token()).unwrap();
    assert_eq!(token.token().access_token().expose(), "t1");
    drop(first);

    paused_runtime().block_on(async {
        let token = cache.token().await.unwrap();
        assert_eq!(token.token().access_token().expose(), "t1");
        tokio::time::sleep(secs(200)).await;
        assert!(
            cache.current().is_none(),
            "a token 100 seconds past its expiry is still offered"
        );
        let token = cache.token().await.unwrap();
        assert_eq!(token.token().access_token().expose(), "t2");
    });
}

#[tokio::test(start_paused = true)]
async fn a_refresh_waiting_out_the_backoff_does_not_make_requests_wait_for_it() {
    let issuer = AuthServer::new();
    issuer.fail_with(StatusCode::SERVICE_UNAVAILABLE, "down");
    let cache = TokenCache::builder(issuer.grant())
        .backoff(secs(30), secs(30))
        .attempts_per_fetch(1)
        .build();
    let error = cache.token().await.unwrap_err();
    assert!(error.is_transient());

    // An explicit refresh inside the backoff step starts a fetch that sleeps until the step
    // ends; requests that need a token must still fail at once with the last error.
    let refresh = tokio::spawn({
        let cache = cache.clone();
        async move { cache.refresh().await }
    });
    tokio::task::yield_now().await;
    let started = Instant::now();
    let error = cache.token().await.unwrap_err();
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "a request waited for a fetch that was sleeping out the backoff"
    );
    assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
    assert!(refresh.await.unwrap().is_err());
}

#[tokio::test(start_paused = true)]
async fn a_token_that_lives_for_duration_max_does_not_panic_the_cache() {
    let cache = TokenCache::new(Counting::default());
    let token = Token::bearer("forever").with_expires_in(Duration::MAX);
    let seeded = tokio::spawn(async move { cache.seed(token).await.map(|_| cache) })
        .await
        .expect("seeding a token that never expires panicked")
        .unwrap();
    tokio::time::sleep(secs(1_000_000)).await;
    assert_eq!(
        seeded.current().unwrap().token().access_token().expose(),
        "forever"
    );
}

#[tokio::test(start_paused = true)]
async fn duration_max_as_fetch_timeout_means_no_timeout_rather_than_a_panic() {
    let cache = TokenCache::builder(Counting::default())
        .fetch_timeout(Duration::MAX)
        .build();
    let token = cache.token().await.expect("the fetch task panicked");
    assert_eq!(token.token().access_token().expose(), "t1");
}

/// Always fails.
struct Unavailable;

impl TokenSource for Unavailable {
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, Error> {
        Err(Error::source_failed(std::io::Error::other("down")))
    }
}

#[tokio::test(start_paused = true)]
async fn duration_max_as_refresh_interval_or_backoff_does_not_panic() {
    let cache = TokenCache::builder(Unavailable)
        .min_refresh_interval(Duration::MAX)
        .backoff(Duration::MAX, Duration::MAX)
        .build();
    let error = tokio::spawn(async move { cache.token().await })
        .await
        .expect("starting the fetch panicked")
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Source);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_cache_is_freed_while_its_failed_fetch_waits_out_the_backoff() {
    let source = Arc::new(Unavailable);
    let probe = Arc::downgrade(&source);
    let cache = TokenCache::builder(source)
        .backoff(secs(30), secs(30))
        .attempts_per_fetch(1)
        .build();
    cache.token().await.unwrap_err();
    drop(cache);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        probe.upgrade().is_none(),
        "the source (and its HTTP client) outlives every handle to the cache"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_from_another_cache_does_not_invalidate_this_one() {
    let orders = TokenCache::new(Counting::default());
    let billing = TokenCache::new(Counting::default());
    let orders_token = orders.token().await.unwrap();
    billing.token().await.unwrap();

    billing.invalidate(&orders_token);
    assert!(
        billing.current().is_some(),
        "another cache's token evicted this cache's token"
    );
}

#[test]
fn asking_for_a_token_on_a_runtime_that_is_shutting_down_fails_instead_of_deadlocking() {
    // Sync code on the blocking pool outlives `shutdown_background`; a task it spawns is
    // dropped on the spot, inside `spawn`.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (started, has_started) = std::sync::mpsc::channel();
    let (go, wait_for_shutdown) = std::sync::mpsc::channel::<()>();
    let (done, result) = std::sync::mpsc::channel();
    let cache = TokenCache::new(Counting::default());
    runtime.spawn_blocking(move || {
        started.send(()).unwrap();
        wait_for_shutdown.recv().unwrap();
        let outcome = tokio::runtime::Handle::current().block_on(cache.token());
        done.send(outcome.map(|_| ()).map_err(|error| error.kind()))
            .unwrap();
    });
    has_started.recv().unwrap();
    runtime.shutdown_background();
    go.send(()).unwrap();
    let outcome = result
        .recv_timeout(Duration::from_secs(10))
        .expect("the cache deadlocked on its own flight lock");
    assert_eq!(outcome, Err(ErrorKind::Interrupted));
}
