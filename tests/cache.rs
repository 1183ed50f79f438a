//! The token cache: single flight, lifetimes, failures, invalidation.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::StatusCode;
use tokio::{task::JoinSet, time::Instant};
use tower::{Layer, ServiceExt};
use tower_oauth2::{
    Error, ErrorKind, FetchContext, FetchReason, OAuth2Layer, Token, TokenCache, TokenSource,
};

use common::AuthServerExt;
use tower_oauth2_testkit::{AuthServer, Body, accepted_token, get};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

async fn access(cache: &TokenCache) -> String {
    let token = cache.token().await.unwrap();
    token.token().access_token().expose().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_on_a_cold_cache_share_one_grant() {
    let issuer = AuthServer::new().token_delay(Duration::from_millis(50));
    let client = OAuth2Layer::new(issuer.cache()).layer(issuer.api::<Body>());
    let mut requests = JoinSet::new();
    for _ in 0..1000 {
        requests.spawn(client.clone().oneshot(get("/")));
    }
    for response in requests.join_all().await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(accepted_token(&response), Some("token-1"));
    }
    assert_eq!(issuer.grants(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_is_reused_until_its_refresh_margin() {
    let issuer = AuthServer::new();
    let cache = issuer.cache();
    assert_eq!(access(&cache).await, "token-1");
    tokio::time::sleep(secs(3600 - 61)).await;
    assert_eq!(access(&cache).await, "token-1");
    assert_eq!(issuer.grants(), 1);
}

#[tokio::test(start_paused = true)]
async fn inside_the_margin_requests_do_not_wait_and_one_background_refresh_runs() {
    let issuer = AuthServer::new().token_delay(secs(5));
    let cache = issuer.cache();
    assert_eq!(access(&cache).await, "token-1");
    tokio::time::sleep(secs(3600 - 30)).await;

    let started = Instant::now();
    for _ in 0..50 {
        assert_eq!(access(&cache).await, "token-1");
    }
    assert_eq!(started.elapsed(), Duration::ZERO, "a request waited");

    tokio::time::sleep(secs(6)).await;
    assert_eq!(issuer.grants(), 2);
    assert_eq!(access(&cache).await, "token-2");
}

#[tokio::test(start_paused = true)]
async fn after_expiry_requests_wait_for_one_refresh() {
    let issuer = AuthServer::new().token_delay(secs(2));
    let cache = issuer.cache();
    assert_eq!(access(&cache).await, "token-1");
    tokio::time::sleep(secs(3601)).await;
    assert!(
        cache.current().is_none(),
        "an expired token is still offered"
    );

    let started = Instant::now();
    let mut callers = JoinSet::new();
    for _ in 0..20 {
        let cache = cache.clone();
        callers.spawn(async move { access(&cache).await });
    }
    let tokens = callers.join_all().await;
    assert!(tokens.iter().all(|token| token == "token-2"));
    assert!(
        started.elapsed() >= secs(2),
        "nobody waited for the refresh"
    );
    assert_eq!(issuer.grants(), 2);
}

#[tokio::test(start_paused = true)]
async fn dropping_every_waiter_does_not_cancel_the_grant() {
    let issuer = AuthServer::new().token_delay(secs(1));
    let cache = issuer.cache();
    let mut callers = JoinSet::new();
    for _ in 0..10 {
        let cache = cache.clone();
        callers.spawn(async move { access(&cache).await });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    callers.abort_all();
    while callers.join_next().await.is_some() {}

    tokio::time::sleep(secs(1)).await;
    assert_eq!(issuer.grants(), 1);
    let cached = cache.current().expect("the grant's token was cached");
    assert_eq!(cached.token().access_token().expose(), "token-1");
    assert_eq!(access(&cache).await, "token-1");
    assert_eq!(issuer.grants(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_refresh_keeps_serving_a_valid_token_and_backs_off() {
    let issuer = AuthServer::new();
    let cache = TokenCache::builder(issuer.grant())
        .refresh_margin(secs(600))
        .build();
    assert_eq!(access(&cache).await, "token-1");
    tokio::time::sleep(secs(3600 - 590)).await;

    issuer.fail_with(StatusCode::SERVICE_UNAVAILABLE, "down");
    for _ in 0..60 {
        assert_eq!(access(&cache).await, "token-1");
        tokio::time::sleep(secs(1)).await;
    }
    // A request a second for a minute, yet the endpoint saw only the backoff's steps:
    // 250 ms doubling up to 30 s.
    let failed = issuer.grants() - 1;
    assert!((4..=12).contains(&failed), "{failed} failed attempts");

    issuer.heal();
    let healed = Instant::now();
    while access(&cache).await == "token-1" {
        assert!(
            healed.elapsed() <= secs(31),
            "not replaced within one backoff step"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cache.stats().failed_fetches, failed as u64);
}

#[tokio::test(start_paused = true)]
async fn every_waiter_gets_the_same_typed_error() {
    let issuer = AuthServer::new();
    issuer.fail_with(
        StatusCode::UNAUTHORIZED,
        r#"{"error":"invalid_client","error_description":"unknown client"}"#,
    );
    let cache = issuer.cache();
    let mut callers = JoinSet::new();
    for _ in 0..20 {
        let cache = cache.clone();
        callers.spawn(async move { cache.token().await.map(|_| ()) });
    }
    for result in callers.join_all().await {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Rejected);
        assert_eq!(error.oauth_error(), Some("invalid_client"));
        assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    }
    assert_eq!(issuer.grants(), 1);
}

#[tokio::test(start_paused = true)]
async fn invalidate_clears_only_the_token_it_was_given() {
    let issuer = AuthServer::new();
    let cache = issuer.cache();
    let first = cache.token().await.unwrap();
    cache.invalidate(&first);
    assert!(cache.current().is_none());
    assert_eq!(access(&cache).await, "token-2");

    cache.invalidate(&first);
    assert_eq!(access(&cache).await, "token-2");
    assert_eq!(issuer.grants(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_tiny_lifetime_cannot_make_the_cache_busy_loop() {
    let issuer = AuthServer::new().lifetime(Duration::ZERO);
    let cache = issuer.cache();
    for _ in 0..1000 {
        access(&cache).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Ten seconds with the default minimum interval of one second between fetches.
    assert!(issuer.grants() <= 11, "{} grants", issuer.grants());
    assert!(issuer.grants() >= 9, "{} grants", issuer.grants());
}

#[tokio::test(start_paused = true)]
async fn refresh_replaces_the_token_while_the_old_one_keeps_serving() {
    let issuer = AuthServer::new().token_delay(secs(1));
    let cache = issuer.cache();
    assert_eq!(access(&cache).await, "token-1");
    tokio::time::sleep(secs(2)).await;

    let refreshing = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .refresh()
                .await
                .map(|token| token.header_value().clone())
        }
    });
    tokio::task::yield_now().await;
    assert_eq!(access(&cache).await, "token-1");
    assert_eq!(refreshing.await.unwrap().unwrap(), "Bearer token-2");
    assert_eq!(access(&cache).await, "token-2");
}

#[tokio::test(start_paused = true)]
async fn a_seeded_token_is_used_without_a_grant() {
    let issuer = AuthServer::new();
    let cache = issuer.cache();
    cache
        .seed(Token::bearer("seeded").with_expires_in(secs(600)))
        .await
        .unwrap();
    assert_eq!(access(&cache).await, "seeded");
    assert_eq!(issuer.grants(), 0);
    tokio::time::sleep(secs(601)).await;
    assert_eq!(access(&cache).await, "token-1");
}

struct Panicking {
    calls: AtomicUsize,
}

impl TokenSource for Panicking {
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, Error> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("the first fetch fails hard");
        }
        Ok(Token::bearer("recovered"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_source_interrupts_its_waiters_and_the_next_request_tries_again() {
    let source = Arc::new(Panicking {
        calls: AtomicUsize::new(0),
    });
    let cache = TokenCache::builder(Arc::clone(&source))
        .min_refresh_interval(Duration::ZERO)
        .build();
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Interrupted);
    assert_eq!(access(&cache).await, "recovered");
}

struct Hangs;

impl TokenSource for Hangs {
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, Error> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_source_times_out() {
    let cache = TokenCache::builder(Hangs).fetch_timeout(secs(5)).build();
    let started = Instant::now();
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(started.elapsed(), secs(5));
}

struct Recorder {
    seen: std::sync::Mutex<Vec<(FetchReason, Option<String>)>>,
}

impl TokenSource for Recorder {
    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, Error> {
        let previous = cx
            .previous()
            .and_then(Token::refresh_token)
            .map(|token| token.expose().to_owned());
        let mut seen = self.seen.lock().unwrap();
        seen.push((cx.reason(), previous));
        let n = seen.len();
        // Only the first response carries a refresh token, as servers that do not rotate do.
        let token = Token::bearer(format!("t{n}")).with_expires_in(secs(100));
        Ok(if n == 1 {
            token.with_refresh_token("r1")
        } else {
            token
        })
    }
}

#[tokio::test(start_paused = true)]
async fn sources_learn_why_they_are_asked_and_the_refresh_token_is_kept() {
    let recorder = Arc::new(Recorder {
        seen: Default::default(),
    });
    let cache = TokenCache::new(Arc::clone(&recorder));
    let first = cache.token().await.unwrap();
    tokio::time::sleep(secs(60)).await;
    access(&cache).await;
    tokio::time::sleep(secs(1)).await;
    let second = cache.token().await.unwrap();
    cache.invalidate(&second);
    access(&cache).await;
    tokio::time::sleep(secs(200)).await;
    access(&cache).await;
    cache.refresh().await.unwrap();

    let reasons: Vec<FetchReason> = recorder.seen.lock().unwrap().iter().map(|s| s.0).collect();
    assert_eq!(
        reasons,
        [
            FetchReason::Cold,
            FetchReason::Stale,
            FetchReason::Unauthorized,
            FetchReason::Expired,
            FetchReason::Forced
        ]
    );
    let refresh_tokens = recorder
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.1.clone())
        .collect::<Vec<_>>();
    assert_eq!(refresh_tokens[0], None);
    assert!(
        refresh_tokens[1..]
            .iter()
            .all(|r| r.as_deref() == Some("r1"))
    );
    assert_eq!(first.token().refresh_token().unwrap().expose(), "r1");
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_inside_a_fetch_then_fail_fast_until_the_next_step() {
    let issuer = AuthServer::new();
    issuer.fail_with(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>");
    let cache = issuer.cache();

    let started = Instant::now();
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::BAD_GATEWAY));
    assert_eq!(issuer.grants(), 3, "three attempts per fetch");
    assert!(started.elapsed() < secs(1), "{:?}", started.elapsed());

    // Inside the backoff step: the same error at once, and nothing sent.
    let again = Instant::now();
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::BAD_GATEWAY));
    assert_eq!(again.elapsed(), Duration::ZERO);
    assert_eq!(issuer.grants(), 3);

    issuer.heal();
    tokio::time::sleep(secs(2)).await;
    assert_eq!(access(&cache).await, "token-4");
}

#[tokio::test(start_paused = true)]
async fn retry_after_from_the_server_is_honoured() {
    let http = tower::service_fn(|_: http::Request<Body>| async {
        let mut response = http::Response::new(Body::from("busy"));
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        response
            .headers_mut()
            .insert("retry-after", http::HeaderValue::from_static("20"));
        Ok::<_, std::convert::Infallible>(response)
    });
    let endpoint = tower_oauth2::TokenClient::new("https://auth.test/token", http).unwrap();
    let grant = tower_oauth2::grant::ClientCredentials::new(
        endpoint,
        tower_oauth2::ClientAuth::none("client"),
    );
    let cache = TokenCache::new(grant);
    let started = Instant::now();
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.retry_after(), Some(secs(20)));
    // Three attempts, each twenty seconds apart.
    assert_eq!(started.elapsed(), secs(40));
    assert_eq!(cache.stats().failed_fetches, 3);
}

#[tokio::test(start_paused = true)]
async fn every_new_token_is_saved_before_use_and_a_valid_saved_one_needs_no_grant() {
    let issuer = AuthServer::new();
    let store = Arc::new(tower_oauth2::MemoryStore::new());
    let cache = TokenCache::builder(issuer.grant())
        .store(Arc::clone(&store))
        .build();
    assert_eq!(access(&cache).await, "token-1");
    assert_eq!(store.get().unwrap().access_token().expose(), "token-1");

    let restarted = TokenCache::builder(issuer.grant())
        .store(Arc::clone(&store))
        .build();
    assert_eq!(access(&restarted).await, "token-1");
    assert_eq!(issuer.grants(), 1);
}

struct BrokenStore;

impl tower_oauth2::TokenStore for BrokenStore {
    async fn load(&self) -> Result<Option<Token>, Error> {
        Err(Error::store_failed("disk on fire"))
    }

    async fn save(&self, _token: &Token) -> Result<(), Error> {
        Err(Error::store_failed("disk on fire"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_save_keeps_the_token_and_is_reported() {
    let issuer = AuthServer::new();
    let cache = TokenCache::builder(issuer.grant())
        .store(BrokenStore)
        .build();
    assert_eq!(access(&cache).await, "token-1");
    assert_eq!(cache.stats().failed_saves, 1);
    assert_eq!(cache.store_error().unwrap().kind(), ErrorKind::Store);
}

#[tokio::test(start_paused = true)]
async fn a_saved_token_that_cannot_be_sent_falls_through_to_the_source() {
    let issuer = AuthServer::new();
    let store = Arc::new(tower_oauth2::MemoryStore::new());
    tower_oauth2::TokenStore::save(&*store, &Token::bearer("bad\ntoken"))
        .await
        .unwrap();
    let cache = TokenCache::builder(issuer.grant()).store(store).build();
    assert_eq!(access(&cache).await, "token-1");
}

#[tokio::test]
async fn every_new_token_set_descends_from_the_one_it_replaces() {
    let issuer = AuthServer::new();
    let cache = issuer.cache();
    let first = cache.token().await.unwrap();
    let second = cache.refresh().await.unwrap();
    let seeded = cache.seed(Token::bearer("seeded")).await.unwrap();
    assert!(first.token().lineage() > tower_oauth2::Lineage::UNKNOWN);
    assert!(second.token().lineage() > first.token().lineage());
    assert!(seeded.token().lineage() > second.token().lineage());
}
