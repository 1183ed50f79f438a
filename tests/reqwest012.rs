//! reqwest 0.12 and reqwest-middleware 0.4 (features `reqwest-0.12` and `reqwest-middleware-0.4`):
//! the same layer over the older client, against the fake server on loopback.

use reqwest_middleware04 as reqwest_middleware;
use reqwest012 as reqwest;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_oauth2::{
    ClientAuth, CloneBodies, ErrorKind, OAuth2Layer, TokenCache, TokenClient,
    grant::ClientCredentials,
};
use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET, Loopback, accepted_token};

async fn demo() -> (AuthServer, Loopback) {
    let server = AuthServer::demo();
    let loopback = server.serve().await.unwrap();
    (server, loopback)
}

fn cache(loopback: &Loopback) -> TokenCache {
    let endpoint =
        TokenClient::reqwest012(&loopback.token_url(), reqwest::Client::builder()).unwrap();
    TokenCache::new(ClientCredentials::new(
        endpoint,
        ClientAuth::basic(CLIENT_ID, CLIENT_SECRET),
    ))
}

#[tokio::test]
async fn the_layer_wraps_a_reqwest_0_12_client_and_retries_a_401_with_a_new_token() {
    let (server, loopback) = demo().await;
    let http = reqwest::Client::new();
    let client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(cache(&loopback)).replay(CloneBodies))
        .service(http.clone());

    let first = http.get(loopback.api_url("/orders")).build().unwrap();
    assert_eq!(client.clone().oneshot(first).await.unwrap().status(), 200);
    server.revoke_all();

    let request = http
        .post(loopback.api_url("/orders"))
        .body("item=book")
        .build()
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.grants(), 2);
    assert_eq!(server.api_tokens().len(), 3);
}

#[tokio::test]
async fn the_reqwest_0_12_middleware_attaches_the_token_and_retries_a_401() {
    let (server, loopback) = demo().await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuth2Layer::new(cache(&loopback)))
        .build();

    let response = client
        .get(loopback.api_url("/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.revoke_all();
    let response = client
        .get(loopback.api_url("/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.grants(), 2);
}

#[tokio::test]
async fn a_refused_origin_is_a_typed_error_in_the_reqwest_0_12_middleware() {
    let (server, loopback) = demo().await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuth2Layer::new(cache(&loopback)))
        .build();
    let error = client
        .get("http://api.invalid/orders")
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(error) = error else {
        panic!("not the middleware's error: {error}");
    };
    let error = error.downcast_ref::<tower_oauth2::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::OriginNotAllowed);
    assert_eq!(server.grants(), 0);
}

#[tokio::test]
async fn a_tower_service_over_reqwest_0_12_carries_the_token_the_server_issued() {
    let (_server, loopback) = demo().await;
    let http = reqwest::Client::new();
    let mut client = OAuth2Layer::new(cache(&loopback)).layer(http.clone());
    let request = http.get(loopback.api_url("/orders")).build().unwrap();
    let response = tower::Service::call(&mut client, request).await.unwrap();
    let response = http::Response::from(response);
    assert_eq!(accepted_token(&response), Some("token-1"));
}
