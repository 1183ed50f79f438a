//! The fleet as users reach it: `TokenCacheBuilder::fleet`, with requests through
//! `OAuth2Layer` against the test kit's server in process. Each `TokenCache` has a
//! `RedisFleet` of its own, as each replica of a service would.

use std::{sync::Arc, time::Duration};

use http::StatusCode;
use tower::{Layer, ServiceExt};
use tower_oauth2::{
    CacheStats, ClientAuth, OAuth2, OAuth2Layer, TokenCache, TokenClient, fleet::RedisFleet,
    grant::ClientCredentials,
};
use tower_oauth2_testkit::{AuthServer, Body, Endpoint, accepted_token, get};

use crate::support::{Mode, key, random_hex, replica};

/// One replica: its cache, its fleet and its client.
struct Replica {
    cache: TokenCache,
    fleet: Arc<RedisFleet>,
    client: OAuth2<Endpoint<Body>>,
}

/// `count` replicas of one service (one client id no other test uses) on `server`.
fn replicas(server: &AuthServer, mode: Mode, count: usize) -> Vec<Replica> {
    replicas_of(&format!("client-{}", random_hex()), server, mode, count)
}

fn replicas_of(client_id: &str, server: &AuthServer, mode: Mode, count: usize) -> Vec<Replica> {
    (0..count)
        .map(|_| replica_with(server, client_id, Arc::new(replica(mode, key()))))
        .collect()
}

fn replica_with(server: &AuthServer, client_id: &str, fleet: Arc<RedisFleet>) -> Replica {
    let endpoint = TokenClient::new("https://auth.test/token", server.token_endpoint()).unwrap();
    let grant = ClientCredentials::new(endpoint, ClientAuth::basic(client_id, "secret"))
        .scopes(["orders:read"]);
    let cache = TokenCache::builder(grant)
        .fleet(Arc::clone(&fleet))
        .unwrap()
        .build();
    let client = OAuth2Layer::new(cache.clone()).layer(server.api::<Body>());
    Replica {
        cache,
        fleet,
        client,
    }
}

/// `per_replica` concurrent requests on every replica at once; the tokens the API accepted.
async fn requests(replicas: &[Replica], per_replica: usize) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for replica in replicas {
        for _ in 0..per_replica {
            tasks.spawn(replica.client.clone().oneshot(get("/")));
        }
    }
    let mut accepted = Vec::new();
    for response in tasks.join_all().await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        accepted.push(accepted_token(&response).unwrap().to_owned());
    }
    accepted
}

fn total(replicas: &[Replica]) -> CacheStats {
    let mut sum = CacheStats::default();
    for stats in replicas.iter().map(|replica| replica.cache.stats()) {
        sum.fetches += stats.fetches;
        sum.shared += stats.shared;
        sum.retries_after_401 += stats.retries_after_401;
        sum.failed_fetches += stats.failed_fetches;
    }
    sum
}

fn distinct(mut tokens: Vec<String>) -> Vec<String> {
    tokens.sort();
    tokens.dedup();
    tokens
}

async fn a_cold_fleet_runs_one_grant(mode: Mode) {
    let server = AuthServer::new().token_delay(Duration::from_millis(100));
    let replicas = replicas(&server, mode, 8);

    let accepted = requests(&replicas, 50).await;

    assert_eq!(server.grants(), 1);
    assert_eq!(distinct(accepted), ["token-1"]);
    let stats = total(&replicas);
    assert_eq!((stats.fetches, stats.shared), (1, 7), "{stats:?}");
    // Later requests touch neither Redis nor the server.
    let reads_before: u64 = replicas.iter().map(|r| r.fleet.stats().reads).sum();
    requests(&replicas, 20).await;
    let reads_after: u64 = replicas.iter().map(|r| r.fleet.stats().reads).sum();
    assert_eq!((server.grants(), reads_after), (1, reads_before));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_caches_of_fifty_requests_run_one_grant_through_the_layer() {
    a_cold_fleet_runs_one_grant(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_caches_of_fifty_requests_run_one_grant_through_the_layer_on_a_cluster() {
    a_cold_fleet_runs_one_grant(Mode::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_wide_401_causes_exactly_one_more_grant() {
    let server = AuthServer::new().token_delay(Duration::from_millis(50));
    let replicas = replicas(&server, Mode::Standalone, 8);
    requests(&replicas, 10).await;
    assert_eq!(server.grants(), 1);

    server.revoke_all();
    let accepted = requests(&replicas, 50).await;

    assert_eq!(server.grants(), 2);
    assert_eq!(distinct(accepted), ["token-2"]);
    let stats = total(&replicas);
    assert_eq!((stats.fetches, stats.shared), (2, 14), "{stats:?}");
    // Every replica met the 401 itself, and retried.
    for replica in &replicas {
        assert!(replica.cache.stats().retries_after_401 >= 1);
    }
    let retired: u64 = replicas.iter().map(|r| r.fleet.stats().retired).sum();
    assert!(retired >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_token_refreshed_by_one_replica_is_taken_by_the_others() {
    // Stale after half its life (the default margin is capped there): 2 seconds.
    let server = AuthServer::new().lifetime(Duration::from_secs(4));
    let replicas = replicas(&server, Mode::Standalone, 6);
    requests(&replicas, 5).await;
    assert_eq!(server.grants(), 1);

    tokio::time::sleep(Duration::from_millis(2300)).await;
    // Each replica serves its stale token and refreshes it in the background.
    let stale = requests(&replicas, 5).await;
    assert_eq!(distinct(stale), ["token-1"]);
    for replica in &replicas {
        let mut waited = Duration::ZERO;
        while replica
            .cache
            .current()
            .unwrap()
            .token()
            .access_token()
            .expose()
            == "token-1"
        {
            assert!(waited < Duration::from_secs(5), "no refresh");
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += Duration::from_millis(20);
        }
    }

    assert_eq!(server.grants(), 2);
    assert_eq!(distinct(requests(&replicas, 5).await), ["token-2"]);
    let stats = total(&replicas);
    assert_eq!((stats.fetches, stats.shared), (2, 10), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_redis_is_down_still_serves_and_the_others_still_share() {
    let server = AuthServer::new().token_delay(Duration::from_millis(50));
    let client_id = format!("client-{}", random_hex());
    let mut replicas = replicas_of(&client_id, &server, Mode::Standalone, 4);
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = Arc::new(
        RedisFleet::new(&format!("redis://127.0.0.1:{port}"), key())
            .unwrap()
            .timeout(Duration::from_millis(200)),
    );
    replicas.push(replica_with(&server, &client_id, Arc::clone(&down)));

    let accepted = requests(&replicas, 30).await;

    assert_eq!(accepted.len(), 150);
    // One grant for the four that share, one for the replica alone.
    assert_eq!(server.grants(), 2);
    let alone = replicas[4].cache.stats();
    assert_eq!((alone.fetches, alone.shared), (1, 0), "{alone:?}");
    assert_eq!(down.stats().fallbacks, 1);
    let shared = total(&replicas[..4]);
    assert_eq!((shared.fetches, shared.shared), (1, 3), "{shared:?}");
}
