//! `OAuth2Layer` over `reqwest::Client`, and the token endpoint reached through reqwest, against
//! servers on loopback.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{Router, http::StatusCode, response::IntoResponse, routing::post};
use bytes::Bytes;
use http_body_util::Full;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_oauth2::{
    ClientAuth, CloneBodies, ErrorKind, NoReplay, OAuth2Layer, TokenClient,
    grant::ClientCredentials,
};

use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET, Loopback};

/// The examples' server, on loopback.
async fn demo() -> (AuthServer, Loopback) {
    let server = AuthServer::demo();
    let loopback = server.serve().await.unwrap();
    (server, loopback)
}

fn grant(loopback: &Loopback) -> ClientCredentials {
    let endpoint = TokenClient::reqwest(&loopback.token_url(), reqwest::Client::builder()).unwrap();
    ClientCredentials::new(endpoint, ClientAuth::basic(CLIENT_ID, CLIENT_SECRET))
}

#[tokio::test]
async fn concurrent_reqwest_requests_share_one_grant() {
    let (server, loopback) = demo().await;
    let http = reqwest::Client::new();
    let client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(grant(&loopback)))
        .service(http.clone());

    let mut calls = tokio::task::JoinSet::new();
    for n in 0..20 {
        let request = http
            .get(loopback.api_url(&format!("/orders/{n}")))
            .build()
            .unwrap();
        calls.spawn(client.clone().oneshot(request));
    }
    for response in calls.join_all().await {
        assert_eq!(response.unwrap().status(), 200);
    }
    assert_eq!(server.grants(), 1);
}

#[tokio::test]
async fn a_401_is_retried_with_a_copy_made_by_try_clone() {
    let (server, loopback) = demo().await;
    let http = reqwest::Client::new();
    let mut client = OAuth2Layer::new(grant(&loopback))
        .replay(CloneBodies)
        .layer(http.clone());

    let first = http.get(loopback.api_url("/orders")).build().unwrap();
    assert_eq!(
        client
            .ready()
            .await
            .unwrap()
            .call(first)
            .await
            .unwrap()
            .status(),
        200
    );
    server.revoke_all();

    let request = http
        .post(loopback.api_url("/orders"))
        .header("x-request-id", "7")
        .body("item=book")
        .build()
        .unwrap();
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"method":"POST","bytes":9}"#
    );
    assert_eq!(server.rejected(), 1);
    assert_eq!(server.grants(), 2);
    assert_eq!(client.cache().stats().retries_after_401, 1);
}

#[tokio::test]
async fn by_default_only_requests_without_a_body_are_retried() {
    let (server, loopback) = demo().await;
    let http = reqwest::Client::new();
    let client = OAuth2Layer::new(grant(&loopback)).layer(http.clone());

    let warm = http.get(loopback.api_url("/orders")).build().unwrap();
    client.clone().oneshot(warm).await.unwrap();
    server.revoke_all();
    let with_body = http
        .post(loopback.api_url("/orders"))
        .body("item=book")
        .build()
        .unwrap();
    let response = client.clone().oneshot(with_body).await.unwrap();
    assert_eq!(response.status(), 401);

    // The 401 invalidated the token; a GET gets a new one.
    let get = http.get(loopback.api_url("/orders")).build().unwrap();
    assert_eq!(client.clone().oneshot(get).await.unwrap().status(), 200);
    assert_eq!(server.grants(), 2);
}

#[tokio::test]
async fn a_streaming_body_is_never_replayed() {
    let (server, loopback) = demo().await;
    let http = reqwest::Client::new();
    let client = OAuth2Layer::new(grant(&loopback))
        .replay(CloneBodies)
        .layer(http.clone());
    let warm = http.get(loopback.api_url("/orders")).build().unwrap();
    client.clone().oneshot(warm).await.unwrap();
    server.revoke_all();

    let stream = reqwest::Body::wrap(Full::new(Bytes::from_static(b"item=book")));
    let request = http
        .post(loopback.api_url("/orders"))
        .body(stream)
        .build()
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(server.api_tokens().len(), 2);
}

#[tokio::test]
async fn no_replay_returns_every_401() {
    let (server, loopback) = demo().await;
    let http = reqwest::Client::new();
    let client = OAuth2Layer::new(grant(&loopback))
        .replay(NoReplay)
        .layer(http.clone());
    let warm = http.get(loopback.api_url("/orders")).build().unwrap();
    client.clone().oneshot(warm).await.unwrap();
    server.revoke_all();
    let get = http.get(loopback.api_url("/orders")).build().unwrap();
    assert_eq!(client.clone().oneshot(get).await.unwrap().status(), 401);
}

#[tokio::test]
async fn an_authorization_header_the_caller_set_is_sent_as_it_is() {
    let (server, loopback) = demo().await;
    let http = reqwest::Client::new();
    let client = OAuth2Layer::new(grant(&loopback)).layer(http.clone());
    let request = http
        .get(loopback.api_url("/orders"))
        .bearer_auth("not-a-token")
        .build()
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(server.grants(), 0);
}

#[tokio::test]
async fn plain_http_beyond_loopback_is_refused() {
    let (server, loopback) = demo().await;
    let http = reqwest::Client::new();
    let client = OAuth2Layer::new(grant(&loopback)).layer(http.clone());
    let request = http.get("http://api.invalid/orders").build().unwrap();
    let error = client.oneshot(request).await.unwrap_err();
    let error = error.downcast_ref::<tower_oauth2::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::OriginNotAllowed);
    assert_eq!(server.grants(), 0);
}

#[tokio::test]
async fn the_reqwest_token_client_never_follows_a_redirect() {
    // A token endpoint that redirects, with 307 so a client that followed would re-send the
    // form with the client secret, and the place it points to.
    let followed = Arc::new(AtomicUsize::new(0));
    let target = {
        let followed = Arc::clone(&followed);
        Router::new().route(
            "/token",
            post(move || {
                followed.fetch_add(1, Ordering::SeqCst);
                async { r#"{"access_token":"stolen","token_type":"Bearer"}"# }
            }),
        )
    };
    let target_addr = serve(target).await;
    let redirecting = Router::new().route(
        "/token",
        post(move || async move {
            (
                StatusCode::TEMPORARY_REDIRECT,
                [("location", format!("http://{target_addr}/token"))],
            )
                .into_response()
        }),
    );
    let addr = serve(redirecting).await;

    // The builder asked to follow redirects; the token client overrides it.
    let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(5));
    let endpoint = TokenClient::reqwest(&format!("http://{addr}/token"), builder).unwrap();
    let request = tower_oauth2::TokenRequest::new("client_credentials");
    let error = endpoint
        .request(&request, &ClientAuth::post(CLIENT_ID, CLIENT_SECRET))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
    assert_eq!(error.status(), Some(StatusCode::TEMPORARY_REDIRECT));
    assert_eq!(followed.load(Ordering::SeqCst), 0);
}

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}
