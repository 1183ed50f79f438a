//! The `metrics` feature: token fetches (by outcome), loads from the store and retries after a
//! 401 reach the `metrics` facade, and agree with `TokenCache::stats`.

mod common;

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use http::StatusCode;
use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use tower::{Layer, ServiceExt};
use tower_oauth2::{MemoryStore, OAuth2Layer, TokenCache};

use common::AuthServerExt;
use tower_oauth2_testkit::{AuthServer, Body, get};

/// Counts every counter by its name and labels, such as
/// `tower_oauth2_token_fetches_total{outcome=ok}`.
#[derive(Default)]
struct Counting(Mutex<BTreeMap<String, Arc<Count>>>);

#[derive(Default)]
struct Count(AtomicU64);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }

    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl Counting {
    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |count| count.0.load(Ordering::SeqCst))
    }
}

impl Recorder for Counting {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        let name = if labels.is_empty() {
            key.name().to_owned()
        } else {
            format!("{}{{{}}}", key.name(), labels.join(","))
        };
        let count = Arc::clone(self.0.lock().unwrap().entry(name).or_default());
        Counter::from_arc(count)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

// A current-thread runtime runs the spawned fetches on this thread, where the local recorder
// is installed.
#[tokio::test(start_paused = true)]
async fn fetches_failures_and_retries_are_counted() {
    let recorder = Counting::default();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let issuer = AuthServer::new();
    let cache = TokenCache::builder(issuer.grant())
        .attempts_per_fetch(1)
        .build();
    let client = OAuth2Layer::new(cache.clone()).layer(issuer.api::<Body>());

    // A cold fetch; then a 401, a refresh and a retry.
    client.clone().oneshot(get("/")).await.unwrap();
    issuer.revoke("token-1");
    let response = client.clone().oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // A forced fetch that the endpoint refuses.
    issuer.fail_with(StatusCode::BAD_REQUEST, r#"{"error":"invalid_client"}"#);
    cache.refresh().await.unwrap_err();

    assert_eq!(
        recorder.get("tower_oauth2_token_fetches_total{outcome=ok}"),
        2
    );
    assert_eq!(
        recorder.get("tower_oauth2_token_fetches_total{outcome=error}"),
        1
    );
    assert_eq!(recorder.get("tower_oauth2_retries_total"), 1);

    let stats = cache.stats();
    assert_eq!(
        (stats.fetches, stats.failed_fetches, stats.retries_after_401),
        (3, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_read_back_from_the_store_is_counted_as_a_load_not_a_fetch() {
    let recorder = Counting::default();
    let _guard = metrics::set_default_local_recorder(&recorder);

    let issuer = AuthServer::new();
    let store = Arc::new(MemoryStore::default());
    let first = TokenCache::builder(issuer.grant())
        .store(Arc::clone(&store))
        .build();
    first.token().await.unwrap();
    let restarted = TokenCache::builder(issuer.grant())
        .store(Arc::clone(&store))
        .build();
    restarted.token().await.unwrap();

    assert_eq!(issuer.grants(), 1);
    assert_eq!(recorder.get("tower_oauth2_token_loads_total"), 1);
    assert_eq!(
        recorder.get("tower_oauth2_token_fetches_total{outcome=ok}"),
        1
    );
}
