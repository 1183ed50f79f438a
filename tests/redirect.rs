//! The documented middleware order keeps the token on its origin: `OAuth2Layer` above
//! tower-http's `FollowRedirectLayer`, whose default policy strips `Authorization` when a
//! redirect leaves the origin. Real HTTP between servers on loopback (two ports, two origins).

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::get,
};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::follow_redirect::FollowRedirectLayer;
use tower_oauth2::OAuth2Layer;

use common::AuthServerExt;
use tower_oauth2_testkit::AuthServer;

/// The `Authorization` header each path received, in order.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// An origin with `/landing`, which records what it received, and `/to?url`, which redirects.
async fn origin(seen: Seen) -> SocketAddr {
    async fn landing(State(seen): State<Seen>, headers: HeaderMap) -> &'static str {
        let authorization = headers
            .get("authorization")
            .map(|value| value.to_str().unwrap().to_owned());
        seen.lock().unwrap().push(("landing".into(), authorization));
        "landed"
    }
    async fn to(State(seen): State<Seen>, headers: HeaderMap, uri: http::Uri) -> impl IntoResponse {
        let authorization = headers
            .get("authorization")
            .map(|value| value.to_str().unwrap().to_owned());
        seen.lock().unwrap().push(("to".into(), authorization));
        let target = uri.query().unwrap_or_default().to_owned();
        (StatusCode::TEMPORARY_REDIRECT, [("location", target)])
    }
    let router = Router::new()
        .route("/landing", get(landing))
        .route("/to", get(to))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn http() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn seen() -> Seen {
    Arc::new(Mutex::new(Vec::new()))
}

fn entries(seen: &Seen) -> Vec<(String, Option<String>)> {
    seen.lock().unwrap().clone()
}

fn redirect_via(first: SocketAddr, target: SocketAddr) -> Request<Full<Bytes>> {
    let uri = format!("http://{first}/to?http://{target}/landing");
    Request::get(uri).body(Full::default()).unwrap()
}

#[tokio::test]
async fn a_redirect_to_another_origin_does_not_carry_the_token() {
    let issuer = AuthServer::new();
    let (seen_a, seen_b) = (seen(), seen());
    let a = origin(seen_a.clone()).await;
    let b = origin(seen_b.clone()).await;
    let client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(issuer.cache()))
        .layer(FollowRedirectLayer::new())
        .service(http());

    let response = client.oneshot(redirect_via(a, b)).await.unwrap();
    assert_eq!(response.status(), 200);
    let bearer = Some("Bearer token-1".to_owned());
    assert_eq!(entries(&seen_a), [("to".to_owned(), bearer)]);
    assert_eq!(entries(&seen_b), [("landing".to_owned(), None)]);
}

#[tokio::test]
async fn a_redirect_within_the_origin_keeps_the_token() {
    let issuer = AuthServer::new();
    let seen_a = seen();
    let a = origin(seen_a.clone()).await;
    let client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(issuer.cache()))
        .layer(FollowRedirectLayer::new())
        .service(http());

    let response = client.oneshot(redirect_via(a, a)).await.unwrap();
    assert_eq!(response.status(), 200);
    let bearer = Some("Bearer token-1".to_owned());
    assert_eq!(
        entries(&seen_a),
        [
            ("to".to_owned(), bearer.clone()),
            ("landing".to_owned(), bearer)
        ]
    );
}

/// Why the order matters: below `FollowRedirect`, the layer sees every hop as a new request
/// and hands the token to whatever origin a redirect names, when that origin qualifies
/// (loopback http does, as would any https origin by default).
#[tokio::test]
async fn the_wrong_order_hands_the_token_to_the_redirect_target() {
    let issuer = AuthServer::new();
    let (seen_a, seen_b) = (seen(), seen());
    let a = origin(seen_a.clone()).await;
    let b = origin(seen_b.clone()).await;
    let client = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(OAuth2Layer::new(issuer.cache()))
        .service(http());

    client.oneshot(redirect_via(a, b)).await.unwrap();
    let bearer = Some("Bearer token-1".to_owned());
    assert_eq!(entries(&seen_b), [("landing".to_owned(), bearer)]);
}

#[tokio::test]
async fn an_allow_list_keeps_the_token_home_even_in_the_wrong_order() {
    let issuer = AuthServer::new();
    let (seen_a, seen_b) = (seen(), seen());
    let a = origin(seen_a.clone()).await;
    let b = origin(seen_b.clone()).await;
    let layer = OAuth2Layer::new(issuer.cache())
        .allow_origin(&format!("http://{a}"))
        .unwrap();
    // By default the hop to the other origin is refused before it is sent.
    let client = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(layer.clone())
        .service(http());
    let error = client.oneshot(redirect_via(a, b)).await.unwrap_err();
    let error = error.downcast_ref::<tower_oauth2::Error>().unwrap();
    assert_eq!(error.kind(), tower_oauth2::ErrorKind::OriginNotAllowed);
    assert!(entries(&seen_b).is_empty());

    // Sent without a token when the layer is told to.
    let client = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(layer.send_others_without_token())
        .service(http());
    client.oneshot(redirect_via(a, b)).await.unwrap();
    assert_eq!(entries(&seen_b), [("landing".to_owned(), None)]);
}
