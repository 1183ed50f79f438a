//! DPoP (RFC 9449) against oidc-provider's token endpoint and an API that checks proofs (see
//! `interop/dpop.mjs`): bound tokens, nonces at both ends, expiry and 401s, and the refusals
//! of proofs that do not match their request.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt, util::BoxCloneSyncService};
use tower_oauth2::{
    BoxError, ClientAuth, DpopKey, ErrorKind, OAuth2Layer, TokenCache, grant::ClientCredentials,
};

use crate::support::{api_url, authorize, expire, get, http, token_client};

/// A client-credentials cache for `client` whose token requests carry proofs by `key`.
fn dpop_cache(client: &str, key: &DpopKey) -> TokenCache {
    let auth = ClientAuth::basic(client, format!("{client}-secret"));
    TokenCache::new(ClientCredentials::new(token_client().dpop(key), auth).scopes(["api:read"]))
}

/// What went out to the API: each request's `Authorization` and `DPoP` headers and URL.
type Sent = Arc<Mutex<Vec<(String, String, String)>>>;

type Api = tower_oauth2::OAuth2<
    BoxCloneSyncService<Request<Full<Bytes>>, http::Response<hyper::body::Incoming>, BoxError>,
>;

/// The API through the layer over an HTTP client that notes what it sends.
fn recorded_api(cache: &TokenCache) -> (Api, Sent) {
    let sent: Sent = Arc::default();
    let log = sent.clone();
    let client =
        BoxCloneSyncService::new(tower::service_fn(move |request: Request<Full<Bytes>>| {
            let header = |name: &str| {
                request
                    .headers()
                    .get(name)
                    .map_or("", |value| value.to_str().unwrap())
                    .to_owned()
            };
            log.lock().unwrap().push((
                header("authorization"),
                header("dpop"),
                request.uri().to_string(),
            ));
            async move { http().request(request).await.map_err(BoxError::from) }
        }));
    let api = ServiceBuilder::new()
        .layer(OAuth2Layer::new(cache.clone()))
        .service(client);
    (api, sent)
}

/// `GET url` without the layer, with exactly these `Authorization` and `DPoP` headers.
async fn raw_get(url: &str, authorization: &str, proof: &str) -> StatusCode {
    let request = Request::get(url)
        .header("authorization", authorization)
        .header("dpop", proof)
        .body(Full::default())
        .unwrap();
    http().request(request).await.unwrap().status()
}

/// `GET path` on the recorded API: its status and body.
async fn get_recorded(api: &Api, path: &str) -> (StatusCode, String) {
    let request = Request::get(api_url(path)).body(Full::default()).unwrap();
    let response = api.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Gives the API a new nonce for `client`'s requests.
async fn rotate_api_nonce(client: &str) {
    let request = Request::post(api_url(&format!("/dpop/rotate-nonce?client={client}")))
        .body(Full::default())
        .unwrap();
    assert_eq!(
        http().request(request).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_dpop_bound_token_opens_the_api_that_demands_its_own_nonce() {
    let key = DpopKey::generate().unwrap();
    let cache = dpop_cache("cc-dpop", &key);
    let (api, sent) = recorded_api(&cache);

    for _ in 0..2 {
        let (status, body) = get_recorded(&api, "/read").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains(r#""token_type":"DPoP""#), "{body}");
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.fetches, stats.retries_after_401),
        (1, 0),
        "{stats:?}"
    );
    // The first request learns the API's nonce and is sent again; the second has it.
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|(authorization, proof, _)| {
        authorization.starts_with("DPoP ") && !proof.is_empty()
    }));
}

#[tokio::test]
async fn a_nonce_demanded_by_the_token_endpoint_costs_one_fetch() {
    let key = DpopKey::generate().unwrap();
    let cache = dpop_cache("cc-dpop-nonce", &key);
    let token = cache.token().await.unwrap();
    assert_eq!(token.token().scheme(), "DPoP");
    assert_eq!(cache.stats().fetches, 1);

    let (status, body) = get(&crate::support::api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_client_that_must_use_dpop_is_refused_a_token_without_a_proof() {
    let auth = ClientAuth::basic("cc-dpop", "cc-dpop-secret");
    let grant = ClientCredentials::new(token_client(), auth).scopes(["api:read"]);
    let error = TokenCache::new(grant).token().await.unwrap_err();
    // oidc-provider says `invalid_grant` ("DPoP proof JWT not provided"), not
    // `invalid_dpop_proof`: the proof is not invalid, it is missing.
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_grant"), "{error}");
}

#[tokio::test]
async fn bound_tokens_are_renewed_across_expiry_and_after_a_401() {
    let key = DpopKey::generate().unwrap();
    let cache = dpop_cache("cc-dpop-short", &key);
    let api = crate::support::api(&cache);
    assert_eq!(get(&api, "/read").await.unwrap().0, StatusCode::OK);

    // The token lives two seconds.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get(&api, "/read").await.unwrap().0, StatusCode::OK);
    assert_eq!(cache.stats().fetches, 2);

    let current = cache.token().await.unwrap();
    expire(current.token().access_token().expose()).await;
    rotate_api_nonce("cc-dpop-short").await;
    let (status, body) = get(&api, "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let stats = cache.stats();
    assert_eq!(stats.retries_after_401, 1, "{stats:?}");
}

#[tokio::test]
async fn the_api_refuses_a_bound_token_without_a_matching_proof() {
    let key = DpopKey::generate().unwrap();
    let cache = dpop_cache("cc-dpop", &key);
    let (api, sent) = recorded_api(&cache);
    assert_eq!(get_recorded(&api, "/read").await.0, StatusCode::OK);
    let (authorization, proof, url) = sent.lock().unwrap().last().unwrap().clone();
    let token = authorization.strip_prefix("DPoP ").unwrap().to_owned();

    // As a bearer token, with no proof, with the proof again (its jti is spent), and with the
    // proof for another URL.
    assert_eq!(
        raw_get(&url, &format!("Bearer {token}"), &proof).await,
        StatusCode::UNAUTHORIZED
    );
    let request = Request::get(&url)
        .header("authorization", &authorization)
        .body(Full::default())
        .unwrap();
    assert_eq!(
        http().request(request).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        raw_get(&url, &authorization, &proof).await,
        StatusCode::UNAUTHORIZED
    );
    let elsewhere = api_url("/other/read");
    assert_eq!(
        raw_get(&elsewhere, &authorization, &proof).await,
        StatusCode::UNAUTHORIZED
    );

    // A proof by another key, for this very URL, with the right nonce.
    let other = DpopKey::generate().unwrap();
    let status = get_with_foreign_proof(&cache, &other).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// `GET /read` with `cache`'s token and a proof signed by `other`: the layer over another
/// cache signs it, and the token is swapped in on the way out.
async fn get_with_foreign_proof(cache: &TokenCache, other: &DpopKey) -> StatusCode {
    let token = cache.token().await.unwrap();
    let authorization = token.header_value().clone();
    let swap = BoxCloneSyncService::new(tower::service_fn(
        move |mut request: Request<Full<Bytes>>| {
            request
                .headers_mut()
                .insert("authorization", authorization.clone());
            async move { http().request(request).await.map_err(BoxError::from) }
        },
    ));
    let api = ServiceBuilder::new()
        .layer(OAuth2Layer::new(dpop_cache("cc-dpop", other)))
        .service(swap);
    let request = Request::get(api_url("/read"))
        .body(Full::default())
        .unwrap();
    let response = api.oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("invalid_token"));
    status
}

#[tokio::test]
async fn a_signed_in_user_gets_a_bound_token_and_a_bound_refresh() {
    let key = DpopKey::generate().unwrap();
    let grant = tower_oauth2::grant::AuthorizationCode::new(
        token_client().dpop(&key),
        ClientAuth::none("native-dpop"),
        &format!("{}/auth", crate::support::issuer()),
        crate::support::REDIRECT,
    )
    .unwrap()
    .scopes(["openid", "api:read"])
    .issuer(crate::support::issuer());
    let token = authorize(&grant).await;
    assert_eq!(token.scheme(), "DPoP");
    let cache = TokenCache::new(grant);
    cache.seed(token).await.unwrap();
    let api = crate::support::api(&cache);
    assert_eq!(get(&api, "/read").await.unwrap().0, StatusCode::OK);

    // Past the two-second lifetime the refresh token, bound to the key, gets a new one.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = get(&api, "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cache.stats().fetches, 1);
}
