//! Where tokens go, over real loopback sockets: two servers are two origins (one port each).
//!
//! The token goes only to the origins the layer allows; a redirect to another origin through
//! tower-http's `FollowRedirect` does not carry it; the token endpoint must be `https` unless it
//! is on loopback or plain http was asked for, and a redirect from it is never followed.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::follow_redirect::FollowRedirectLayer;
use tower_oauth2::{
    ClientAuth, Error, ErrorKind, FetchContext, OAuth2Layer, Token, TokenClient, TokenRequest,
    TokenSource,
};

type Body = Full<Bytes>;

const TOKEN: &str = "origin-test-token";

struct Fixed;

impl TokenSource for Fixed {
    async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
        Ok(Token::bearer(TOKEN))
    }
}

/// A server on its own port that records the `Authorization` header of every request and
/// redirects `/away` to `target` and `/here` to its own `/landing`.
struct Origin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The path of a request and its `Authorization` header.
type Seen = (String, Option<String>);

impl Origin {
    async fn start(target: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = Arc::clone(&record);
                let target = target.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let authorization = request
                        .headers()
                        .get(header::AUTHORIZATION)
                        .map(|value| value.to_str().unwrap().to_owned());
                    let path = request.uri().path().to_owned();
                    record.lock().unwrap().push((path.clone(), authorization));
                    let location = match path.as_str() {
                        "/away" | "/token" => target.clone(),
                        "/here" => Some("/landing".to_owned()),
                        _ => None,
                    };
                    let mut response = Response::new(Body::from("ok"));
                    if let Some(location) = location {
                        *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
                        let location = HeaderValue::from_str(&location).unwrap();
                        response.headers_mut().insert(header::LOCATION, location);
                    }
                    async move { Ok::<_, Infallible>(response) }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self { addr, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `(path, Authorization)` of every request this origin received.
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn http() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn bearer() -> Option<String> {
    Some(format!("Bearer {TOKEN}"))
}

/// `A` redirects `/away` to `B`.
async fn two_origins() -> (Origin, Origin) {
    let b = Origin::start(None).await;
    let a = Origin::start(Some(b.url("/landing"))).await;
    (a, b)
}

#[tokio::test]
async fn a_redirect_to_another_origin_through_follow_redirect_carries_no_token() {
    let (a, b) = two_origins().await;
    let client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(Fixed))
        .layer(FollowRedirectLayer::new())
        .service(http());

    let response = client
        .clone()
        .oneshot(Request::get(a.url("/away")).body(Body::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = client
        .oneshot(Request::get(a.url("/here")).body(Body::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Same origin: the token follows the redirect. Another origin: it does not.
    let expected_a = [
        ("/away".to_owned(), bearer()),
        ("/here".to_owned(), bearer()),
        ("/landing".to_owned(), bearer()),
    ];
    assert_eq!(a.seen(), expected_a);
    assert_eq!(b.seen(), [("/landing".to_owned(), None)]);
}

#[tokio::test]
async fn with_follow_redirect_outside_the_layer_only_allowed_origins_get_the_token() {
    let (a, b) = two_origins().await;
    // The wrong order: every hop passes through the layer, which decides per origin.
    let scoped = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(
            OAuth2Layer::new(Fixed)
                .allow_origin(&a.origin())
                .unwrap()
                .send_others_without_token(),
        )
        .service(http());
    let request = Request::get(a.url("/away")).body(Body::default()).unwrap();
    assert_eq!(
        scoped.oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(b.seen(), [("/landing".to_owned(), None)]);

    // With the default origins (any https, loopback http), B is allowed too: this order leaks
    // the token to wherever a redirect points, which is why the docs put the layer outside.
    let unscoped = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(OAuth2Layer::new(Fixed))
        .service(http());
    let request = Request::get(a.url("/away")).body(Body::default()).unwrap();
    assert_eq!(
        unscoped.oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(b.seen()[1], ("/landing".to_owned(), bearer()));
}

#[tokio::test]
async fn requests_to_an_origin_not_allowed_go_without_the_token_or_are_refused() {
    let (a, b) = two_origins().await;
    let layer = OAuth2Layer::new(Fixed).allow_origin(&a.origin()).unwrap();
    let skip = ServiceBuilder::new()
        .layer(layer.clone().send_others_without_token())
        .service(http());
    let request = Request::get(b.url("/direct"))
        .body(Body::default())
        .unwrap();
    assert_eq!(
        skip.oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(b.seen(), [("/direct".to_owned(), None)]);

    let refuse = ServiceBuilder::new().layer(layer).service(http());
    let request = Request::get(b.url("/refused"))
        .body(Body::default())
        .unwrap();
    let error = refuse.clone().oneshot(request).await.unwrap_err();
    let error = error.downcast_ref::<Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::OriginNotAllowed);
    assert_eq!(b.seen().len(), 1, "a refused request reached the server");

    let request = Request::get(a.url("/allowed"))
        .body(Body::default())
        .unwrap();
    assert_eq!(
        refuse.oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(a.seen(), [("/allowed".to_owned(), bearer())]);
}

#[tokio::test]
async fn a_host_header_naming_another_authority_than_the_uri_gets_no_token() {
    let (a, b) = two_origins().await;
    let client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(Fixed).allow_origin(&a.origin()).unwrap())
        .service(http());
    // hyper-util sends this Host as it is: a front end routing by it would pick `b`.
    let elsewhere = Request::get(a.url("/spoofed"))
        .header(header::HOST, b.addr.to_string())
        .body(Body::default())
        .unwrap();
    let error = client.clone().oneshot(elsewhere).await.unwrap_err();
    assert_eq!(
        error.downcast_ref::<Error>().unwrap().kind(),
        ErrorKind::OriginNotAllowed
    );
    assert!(
        a.seen().is_empty(),
        "a request with a foreign Host went out"
    );

    // The same authority written in another case, or with the default port, is the same.
    let same = Request::get(a.url("/same"))
        .header(header::HOST, a.addr.to_string().to_uppercase())
        .body(Body::default())
        .unwrap();
    assert_eq!(client.oneshot(same).await.unwrap().status(), StatusCode::OK);
    assert_eq!(a.seen(), [("/same".to_owned(), bearer())]);
}

#[tokio::test]
async fn the_token_endpoint_must_be_https_unless_loopback_or_allowed() {
    let refused = TokenClient::new("http://auth.example.com/token", http()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Config);
    assert!(!refused.to_string().contains("auth.example.com"));
    for url in [
        "https://auth.example.com/token",
        "http://127.0.0.1:8080/token",
        "http://localhost/token",
        "http://[::1]:8080/token",
    ] {
        assert!(TokenClient::new(url, http()).is_ok(), "{url}");
    }
    assert!(TokenClient::with_plain_http("http://auth.example.com/token", http()).is_ok());
    for url in ["ftp://auth.example.com/token", "auth.example.com/token"] {
        assert!(TokenClient::with_plain_http(url, http()).is_err(), "{url}");
    }
}

#[tokio::test]
async fn a_token_endpoint_that_redirects_is_not_followed_and_the_target_sees_nothing() {
    let (a, b) = two_origins().await;
    let endpoint = TokenClient::new(&a.url("/token"), http()).unwrap();
    let request = TokenRequest::new("client_credentials");
    let error = endpoint
        .request(&request, &ClientAuth::post("client", "redirect-secret"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
    assert_eq!(error.status(), Some(StatusCode::TEMPORARY_REDIRECT));
    assert!(!error.to_string().contains(&b.addr.to_string()), "{error}");
    assert!(
        b.seen().is_empty(),
        "the redirect target got the credentials"
    );
}
