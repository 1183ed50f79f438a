//! Edge cases of the layer: readiness while waiting, 401s that cannot be replayed, retry counts.

mod common;

use std::time::Duration;

use http::{Request, StatusCode};
use tower::{Layer, Service, ServiceExt, limit::ConcurrencyLimitLayer, service_fn};
use tower_oauth2::{ClientAuth, OAuth2Layer, TokenClient, grant::ClientCredentials};

use common::{Body, Issuer, get};

#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_a_token_does_not_hold_the_permit_the_token_fetch_needs() {
    // One HTTP client, limited to one request at a time, reaches both the token endpoint and
    // the API, as in the crate's own example plus a `ConcurrencyLimitLayer`.
    let issuer = Issuer::new();
    let (endpoint, api) = (issuer.token_endpoint(), issuer.api::<Body>());
    let http = ConcurrencyLimitLayer::new(1).layer(service_fn(move |request: Request<Body>| {
        let (mut endpoint, mut api) = (endpoint.clone(), api.clone());
        async move {
            if request.uri().path() == "/token" {
                endpoint.call(request).await
            } else {
                api.call(request).await
            }
        }
    }));
    let grant = ClientCredentials::new(
        TokenClient::new("https://auth.test/token", http.clone()).unwrap(),
        ClientAuth::basic("client", "secret"),
    );
    let client = OAuth2Layer::new(grant).layer(http);

    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.oneshot(get("https://api.test/orders")),
    )
    .await
    .expect("the request held the only permit while the token fetch waited for it")
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(issuer.grants(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_401_whose_refresh_fails_is_not_counted_as_a_retry() {
    let issuer = Issuer::new();
    let cache = issuer.cache();
    let client = OAuth2Layer::new(cache.clone()).layer(issuer.api::<Body>());
    client.clone().oneshot(get("/")).await.unwrap();
    issuer.revoke("token-1");
    issuer.fail_with(StatusCode::BAD_REQUEST, r#"{"error":"invalid_client"}"#);

    client.oneshot(get("/")).await.unwrap_err();
    assert_eq!(issuer.seen().len(), 2, "the request was not sent again");
    assert_eq!(cache.stats().retries_after_401, 0);
}

#[tokio::test(start_paused = true)]
async fn a_401_to_a_request_that_cannot_be_replayed_still_retires_the_token() {
    let issuer = Issuer::new();
    let client = OAuth2Layer::new(issuer.grant()).layer(issuer.api::<Body>());
    client.clone().oneshot(get("/")).await.unwrap();
    issuer.revoke("token-1");

    let post = || Request::post("/").body(Body::from("payload")).unwrap();
    let response = client.clone().oneshot(post()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The 401 said token-1 is dead: the next request must not carry it again (until it
    // expires an hour later, every request with a body would fail).
    let response = client.oneshot(post()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        issuer.seen(),
        [
            Some("token-1".to_owned()),
            Some("token-1".to_owned()),
            Some("token-2".to_owned())
        ]
    );
}
