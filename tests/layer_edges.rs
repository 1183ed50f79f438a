//! Edge cases of the layer: readiness while waiting, 401s that cannot be replayed, retry counts,
//! requests that waited for the first token.

mod common;

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use tower::{Layer, Service, ServiceExt, limit::ConcurrencyLimitLayer, service_fn};
use tower_oauth2::{ClientAuth, NoReplay, OAuth2Layer, TokenClient, grant::ClientCredentials};

use common::AuthServerExt;
use tower_oauth2_testkit::{AuthServer, Body, get};

#[tokio::test(start_paused = true)]
async fn a_request_waiting_for_a_token_does_not_hold_the_permit_the_token_fetch_needs() {
    // One HTTP client, limited to one request at a time, reaches both the token endpoint and
    // the API, as in the crate's own example plus a `ConcurrencyLimitLayer`.
    let issuer = AuthServer::new();
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
    let issuer = AuthServer::new();
    let cache = issuer.cache();
    let client = OAuth2Layer::new(cache.clone()).layer(issuer.api::<Body>());
    client.clone().oneshot(get("/")).await.unwrap();
    issuer.revoke("token-1");
    issuer.fail_with(StatusCode::BAD_REQUEST, r#"{"error":"invalid_client"}"#);

    client.oneshot(get("/")).await.unwrap_err();
    assert_eq!(
        issuer.api_tokens().len(),
        2,
        "the request was not sent again"
    );
    assert_eq!(cache.stats().retries_after_401, 0);
}

#[tokio::test(start_paused = true)]
async fn a_401_to_a_request_that_cannot_be_replayed_still_retires_the_token() {
    let issuer = AuthServer::new();
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
        issuer.api_tokens(),
        [
            Some("token-1".to_owned()),
            Some("token-1".to_owned()),
            Some("token-2".to_owned())
        ]
    );
}

/// An API that answers the first request with a 401 whatever its token, and the others with
/// 200; it notes the token of each.
fn first_answer_401(
    seen: Arc<Mutex<Vec<String>>>,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
    service_fn(move |request: Request<Body>| {
        let seen = Arc::clone(&seen);
        async move {
            let token = request.headers()[AUTHORIZATION]
                .to_str()
                .unwrap()
                .to_owned();
            let mut seen = seen.lock().unwrap();
            seen.push(token);
            let mut response = Response::new(Body::default());
            if seen.len() == 1 {
                *response.status_mut() = StatusCode::UNAUTHORIZED;
            }
            Ok::<_, Infallible>(response)
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_request_that_waited_for_the_first_token_retries_after_a_401_with_a_new_one() {
    // The request's ticket learns which token it carries only when the fetch it waited for
    // returns: the 401 must retire that token, or the retry would carry it again.
    let (issuer, seen) = (AuthServer::new(), Arc::default());
    let client = OAuth2Layer::new(issuer.grant()).layer(first_answer_401(Arc::clone(&seen)));

    let response = client.oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(issuer.grants(), 2);
    assert_eq!(*seen.lock().unwrap(), ["Bearer token-1", "Bearer token-2"]);
}

#[tokio::test(start_paused = true)]
async fn a_request_that_waited_and_cannot_be_replayed_still_retires_the_token_it_got() {
    let (issuer, seen) = (AuthServer::new(), Arc::default());
    let client = OAuth2Layer::new(issuer.grant())
        .replay(NoReplay)
        .layer(first_answer_401(Arc::clone(&seen)));

    let response = client.clone().oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = client.oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(*seen.lock().unwrap(), ["Bearer token-1", "Bearer token-2"]);
}

#[tokio::test(start_paused = true)]
async fn requests_released_together_all_carry_the_one_fetched_token() {
    let issuer = AuthServer::new().token_delay(Duration::from_millis(50));
    let client = OAuth2Layer::new(issuer.grant()).layer(issuer.api::<Body>());
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..100 {
        requests.spawn(client.clone().oneshot(get("/")));
    }
    for response in requests.join_all().await {
        assert_eq!(response.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(issuer.grants(), 1);
    let seen = issuer.api_tokens();
    assert_eq!(seen.len(), 100);
    assert!(seen.iter().all(|token| token.as_deref() == Some("token-1")));
}
