//! `TokenCacheBuilder::fleet` without a Redis: which sources may share their tokens, and a fleet
//! whose Redis cannot be reached still serving every request. Hermetic: nothing here needs a
//! Redis server (`tests/fleet/`, run by `fleet/run.sh`, proves the sharing itself).

mod common;

use std::time::Duration;

use http::StatusCode;
use tower::{Layer, ServiceExt};
use tower_oauth2::{
    ClientAuth, Error, ErrorKind, FetchContext, OAuth2Layer, Token, TokenCache, TokenSource,
    fleet::{FleetKey, RedisFleet},
    grant::{AuthorizationCode, RefreshToken},
};
use tower_oauth2_testkit::{AuthServer, Body, accepted_token, get};

use common::AuthServerExt;

/// A fleet that is never reached: nothing listens on port 1.
fn unreachable_fleet() -> RedisFleet {
    RedisFleet::new("redis://127.0.0.1:1", FleetKey::new(1, [7; 32]))
        .unwrap()
        .timeout(Duration::from_millis(200))
}

/// A source that does not say what its tokens are for.
struct Anonymous;

impl TokenSource for Anonymous {
    async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
        Ok(Token::bearer("abc"))
    }
}

#[test]
fn a_source_without_identity_cannot_join_a_fleet() {
    let error = TokenCache::builder(Anonymous)
        .fleet(unreachable_fleet())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(error.to_string().contains("identity"), "{error}");
}

#[test]
fn a_refresh_token_grant_joins_a_fleet_only_with_a_subject() {
    let issuer = AuthServer::new();
    let grant = RefreshToken::new(
        issuer.token_client(),
        ClientAuth::basic("client", "secret-sentinel"),
        "refresh-sentinel",
    );
    assert!(grant.identity().is_none());
    let error = TokenCache::builder(grant.clone())
        .fleet(unreachable_fleet())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(!error.to_string().contains("sentinel"), "{error}");

    let alice = grant.clone().subject("alice").identity().unwrap();
    let bob = grant.clone().subject("bob").identity().unwrap();
    assert_ne!(alice, bob, "tokens of different subjects are never shared");
    assert!(!format!("{alice:?}").contains("sentinel"), "{alice:?}");
    TokenCache::builder(grant.subject("alice"))
        .fleet(unreachable_fleet())
        .unwrap()
        .build();
}

#[test]
fn an_authorization_code_grant_joins_a_fleet_only_with_a_subject() {
    let issuer = AuthServer::new();
    let grant = AuthorizationCode::new(
        issuer.token_client(),
        ClientAuth::none("app"),
        "https://auth.test/authorize",
        "http://127.0.0.1/callback",
    )
    .unwrap();
    assert!(
        TokenCache::builder(grant.clone())
            .fleet(unreachable_fleet())
            .is_err()
    );
    assert!(grant.clone().subject("alice").identity().is_some());
    assert!(
        TokenCache::builder(grant.subject("alice"))
            .fleet(unreachable_fleet())
            .is_ok()
    );
}

#[test]
fn client_credentials_always_has_an_identity_that_holds_no_secret() {
    let issuer = AuthServer::new();
    let id = issuer.grant().identity().unwrap();
    assert!(!format!("{id:?}").contains("secret"), "{id:?}");
    assert!(
        TokenCache::builder(issuer.grant())
            .fleet(unreachable_fleet())
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_whose_redis_cannot_be_reached_serves_every_request() {
    let issuer = AuthServer::new();
    let fleet = std::sync::Arc::new(unreachable_fleet());
    let cache = TokenCache::builder(issuer.grant())
        .fleet(std::sync::Arc::clone(&fleet))
        .unwrap()
        .build();
    let client = OAuth2Layer::new(cache.clone()).layer(issuer.api::<Body>());

    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..50 {
        requests.spawn(client.clone().oneshot(get("/")));
    }
    for response in requests.join_all().await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(accepted_token(&response), Some("token-1"));
    }
    assert_eq!(issuer.grants(), 1);
    let stats = cache.stats();
    assert_eq!((stats.fetches, stats.shared), (1, 0), "{stats:?}");
    assert_eq!(fleet.stats().fallbacks, 1);
}

#[cfg(feature = "dpop")]
#[tokio::test]
async fn a_fleet_refuses_a_grant_whose_token_client_has_a_dpop_key_before_any_grant_runs() {
    use tower_oauth2::{DpopKey, TokenClient, grant::ClientCredentials};

    let issuer = AuthServer::new().dpop();
    let key = DpopKey::generate().unwrap();
    let endpoint = TokenClient::new("https://auth.test/token", issuer.token_endpoint())
        .unwrap()
        .dpop(&key);
    let grant = ClientCredentials::new(endpoint, ClientAuth::basic("client", "secret"));
    let error = TokenCache::builder(grant)
        .fleet(unreachable_fleet())
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(error.to_string().contains("DPoP"), "{error}");
    assert_eq!(issuer.grants(), 0);
}
