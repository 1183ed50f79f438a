//! Refreshing against a server that rotates refresh tokens and revokes the whole grant the
//! first time one is sent twice.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use http::StatusCode;
use tokio::task::JoinSet;
use tower_oauth2::{
    ClientAuth, ErrorKind, FileStore, Secret, TokenCache, TokenStore, grant::RefreshToken,
};

use crate::support::{
    api, authorize, counter, counters, expire, get, native_grant, status_with, token_client,
};

#[tokio::test]
async fn a_token_the_server_invalidated_is_refreshed_and_the_request_retried() {
    let grant = native_grant("native-revoke", &["api:read"]);
    let cache = TokenCache::new(grant.clone());
    let first = cache.seed(authorize(&grant).await).await.unwrap();
    let client = api(&cache);
    assert_eq!(get(&client, "/read").await.unwrap().0, StatusCode::OK);

    let revoked = first.token().access_token().expose().to_owned();
    expire(&revoked).await;
    assert_eq!(
        status_with(&revoked, "/read").await,
        StatusCode::UNAUTHORIZED
    );

    let (status, body) = get(&client, "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let stats = cache.stats();
    assert_eq!(stats.retries_after_401, 1);
    assert_eq!(stats.fetches, 1);
    assert_ne!(
        cache.current().unwrap().token().access_token().expose(),
        revoked
    );
    assert_eq!(counter("native-revoke", "success:refresh_token").await, 1);
    assert_eq!(counter("native-revoke", "grant_revoked").await, 0);
}

/// 200 tasks send requests without pause for 10 seconds with access tokens that live 2: the
/// cache refreshes about once a second while requests are in flight. Each refresh rotates the
/// refresh token, and the server revokes the grant the first time one is sent twice, so a
/// single flight that ever lets two refreshes race fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_never_sends_a_refresh_token_twice() {
    const TASKS: usize = 200;
    const RUN: Duration = Duration::from_secs(10);
    let grant = native_grant("native-rotation", &["api:read"]);
    let token = authorize(&grant).await;
    assert_eq!(token.expires_in(), Some(Duration::from_secs(2)));
    let cache = TokenCache::new(grant);
    cache.seed(token).await.unwrap();
    let client = api(&cache);

    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let client = client.clone();
        tasks.spawn(async move {
            let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
            while started.elapsed() < RUN {
                let outcome = match get(&client, "/read").await {
                    Ok((status, _)) => status.as_u16().to_string(),
                    Err(error) => match error.downcast_ref::<tower_oauth2::Error>() {
                        Some(error) => format!("{:?}/{:?}", error.kind(), error.oauth_error()),
                        None => format!("transport: {error}"),
                    },
                };
                *outcomes.entry(outcome).or_default() += 1;
            }
            outcomes
        });
    }
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    while let Some(finished) = tasks.join_next().await {
        for (outcome, count) in finished.unwrap() {
            *outcomes.entry(outcome).or_default() += count;
        }
    }
    let elapsed = started.elapsed();

    let server = counters("native-rotation").await;
    let stats = cache.stats();
    let requests: u64 = outcomes.values().sum();
    eprintln!(
        "rotation under load: {requests} requests by {TASKS} tasks in {:.1} s, outcomes {outcomes:?}; \
         cache {stats:?}; server {server:?}",
        elapsed.as_secs_f64()
    );
    assert_eq!(outcomes.keys().collect::<Vec<_>>(), ["200"], "{outcomes:?}");
    assert_eq!(server.get("invalid_grant"), None, "{server:?}");
    assert_eq!(server.get("grant_revoked"), None, "{server:?}");
    assert_eq!(stats.failed_fetches, 0);
    // The run crossed many expiries, each with a refresh the server accepted.
    let refreshes = server.get("success:refresh_token").copied().unwrap_or(0);
    assert!(refreshes >= 5, "{server:?}");
    assert_eq!(refreshes, stats.fetches);
}

#[tokio::test]
async fn a_refresh_token_saved_to_a_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    let rotated = {
        let grant = native_grant("native-persist", &["api:read"]);
        let cache = TokenCache::builder(grant.clone())
            .store(FileStore::new(&path))
            .build();
        cache.seed(authorize(&grant).await).await.unwrap();
        assert_eq!(get(&api(&cache), "/read").await.unwrap().0, StatusCode::OK);
        // Rotate once, so the file must hold the second refresh token, not the first.
        let renewed = cache.refresh().await.unwrap();
        renewed.token().refresh_token().unwrap().clone()
    };
    let saved = FileStore::new(&path).load().await.unwrap().unwrap();
    assert_eq!(saved.refresh_token(), Some(&rotated));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Past the access token's two seconds: only the refresh token is still good.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // A new process: a new grant and a new cache, knowing nothing but the file.
    let grant = native_grant("native-persist", &["api:read"]);
    let restarted = TokenCache::builder(grant)
        .store(FileStore::new(&path))
        .build();
    let (status, body) = get(&api(&restarted), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(restarted.stats().fetches, 1);

    let server = counters("native-persist").await;
    assert_eq!(server.get("success:refresh_token"), Some(&2), "{server:?}");
    assert_eq!(server.get("invalid_grant"), None, "{server:?}");
    assert_eq!(server.get("grant_revoked"), None, "{server:?}");
    let resaved = FileStore::new(&path).load().await.unwrap().unwrap();
    assert_ne!(resaved.refresh_token(), Some(&rotated));
}

#[tokio::test]
async fn a_refresh_token_source_narrows_the_scope_and_follows_rotation() {
    let grant = native_grant("native-refresh", &["api:read", "api:write"]);
    let token = authorize(&grant).await;
    assert_eq!(token.scopes().unwrap(), ["api:read", "api:write"]);
    let stored = token.refresh_token().unwrap().expose().to_owned();

    let source = RefreshToken::new(token_client(), ClientAuth::none("native-refresh"), stored)
        .scopes(["api:read"]);
    let cache = TokenCache::new(source);
    let client = api(&cache);
    assert_eq!(get(&client, "/read").await.unwrap().0, StatusCode::OK);
    // Narrowed: the write scope is gone, and a 403 is not retried.
    assert_eq!(
        get(&client, "/write").await.unwrap().0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(cache.stats().retries_after_401, 0);

    let mut seen: Vec<Secret> = Vec::new();
    for _ in 0..2 {
        let renewed = cache.refresh().await.unwrap();
        assert_eq!(renewed.token().scopes().unwrap(), ["api:read"]);
        seen.push(renewed.token().refresh_token().unwrap().clone());
    }
    assert_ne!(seen[0], seen[1]);
    assert_eq!(get(&client, "/read").await.unwrap().0, StatusCode::OK);

    let server = counters("native-refresh").await;
    assert_eq!(server.get("success:refresh_token"), Some(&3), "{server:?}");
    assert_eq!(server.get("invalid_grant"), None, "{server:?}");
}

#[tokio::test]
async fn an_unknown_refresh_token_asks_for_reauthorization() {
    let source = RefreshToken::new(token_client(), ClientAuth::none("native-pkce"), "bogus");
    let error = TokenCache::new(source).token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ReauthorizationRequired);
    assert_eq!(error.oauth_error(), Some("invalid_grant"));
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
}
