//! DPoP nonces belong to the origin a proof was made for: a nonce resend uses the nonce its
//! own origin sent even when the key has forgotten that origin meanwhile, and redirects
//! neither carry a proof on nor bring back another origin's nonce.

mod common;

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use common::AuthServerExt;
use http::{HeaderValue, Request, Response, StatusCode, header::LOCATION};
use serde_json::Value;
use tokio::sync::Notify;
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn};
use tower_http::follow_redirect::{
    FollowRedirectLayer,
    policy::{Policy, Standard},
};
use tower_oauth2::{DpopKey, OAuth2Layer, WithoutDpopOnRedirect};
use tower_oauth2_testkit::{AuthServer, Body};

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::default()).unwrap()
}

/// The claims of the request's DPoP proof, if it has one.
fn proof(request: &Request<Body>) -> Option<Value> {
    let jwt = request.headers().get("dpop")?.to_str().unwrap();
    let claims = jwt.split('.').nth(1).unwrap();
    Some(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap())
}

fn status(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = status;
    response
}

/// A 401 that demands the nonce `nonce` (RFC 9449 section 9).
fn nonce_demand(nonce: &'static str) -> Response<Body> {
    let mut response = status(StatusCode::UNAUTHORIZED);
    let headers = response.headers_mut();
    headers.insert(
        "www-authenticate",
        HeaderValue::from_static(r#"DPoP error="use_dpop_nonce""#),
    );
    headers.insert("dpop-nonce", HeaderValue::from_static(nonce));
    response
}

/// What reached each host: its path and the proof's nonce claim (`Null` without one, and
/// `"no proof"` when the request had no proof at all).
type Seen = Arc<Mutex<Vec<(String, Value)>>>;

fn record(seen: &Seen, request: &Request<Body>) {
    let nonce = proof(request).map_or(Value::from("no proof"), |claims| claims["nonce"].clone());
    let at = format!(
        "{}{}",
        request.uri().host().unwrap_or_default(),
        request.uri().path()
    );
    seen.lock().unwrap().push((at, nonce));
}

#[tokio::test]
async fn a_nonce_resend_carries_its_origins_nonce_though_the_origin_was_forgotten_meanwhile() {
    // The first request to api.test is held at the server while 300 requests to other origins
    // go out, more than the 256 origins a key keeps nonces for: api.test's place is taken
    // before its answer demands a nonce.
    let issuer = AuthServer::new().dpop();
    let key = DpopKey::generate().unwrap();
    let seen = Seen::default();
    let held = Arc::new(Notify::new());
    let api = {
        let (seen, held) = (seen.clone(), held.clone());
        service_fn(move |request: Request<Body>| {
            let (seen, held) = (seen.clone(), held.clone());
            async move {
                if request.uri().host() != Some("api.test") {
                    return Ok::<_, Infallible>(status(StatusCode::OK));
                }
                record(&seen, &request);
                let first = seen.lock().unwrap().len() == 1;
                if first {
                    held.notified().await;
                    return Ok(nonce_demand("api-nonce"));
                }
                let nonce = proof(&request).unwrap()["nonce"].clone();
                Ok(status(if nonce == "api-nonce" {
                    StatusCode::OK
                } else {
                    StatusCode::UNAUTHORIZED
                }))
            }
        })
    };
    let client = OAuth2Layer::new(issuer.dpop_cache(&key)).layer(api);
    let held_request = tokio::spawn(client.clone().oneshot(get("https://api.test/orders")));
    while seen.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    for n in 0..300 {
        let uri = format!("https://origin-{n}.test/");
        let response = client.clone().oneshot(get(&uri)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    held.notify_one();

    let response = held_request.await.unwrap().unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{:?}",
        seen.lock().unwrap()
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("api.test/orders".to_owned(), Value::Null),
            ("api.test/orders".to_owned(), Value::from("api-nonce")),
        ]
    );
}

/// A fake network: `a.test/start` redirects to `b.test/elsewhere`, which demands a nonce of
/// its own; `a.test/after` answers 200.
fn redirecting_network(
    seen: &Seen,
) -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    let seen = seen.clone();
    service_fn(move |request: Request<Body>| {
        record(&seen, &request);
        let response = match (request.uri().host(), request.uri().path()) {
            (Some("a.test"), "/start") => {
                let mut response = status(StatusCode::TEMPORARY_REDIRECT);
                response.headers_mut().insert(
                    LOCATION,
                    HeaderValue::from_static("https://b.test/elsewhere"),
                );
                response
            }
            (Some("b.test"), _) => nonce_demand("b-nonce"),
            _ => status(StatusCode::OK),
        };
        async move { Ok::<_, Infallible>(response) }
    })
}

/// A DPoP-bound client: the layer above tower-http's `FollowRedirect` with `policy`, over
/// [`redirecting_network`].
fn through_redirects<P>(
    policy: P,
    seen: &Seen,
) -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = tower::BoxError,
    Future = impl Send,
> + Clone
where
    P: Policy<Body, Infallible> + Clone + Send + Sync + 'static,
{
    let issuer = AuthServer::new().dpop();
    let key = DpopKey::generate().unwrap();
    ServiceBuilder::new()
        .layer(OAuth2Layer::new(issuer.dpop_cache(&key)))
        .layer(FollowRedirectLayer::with_policy(policy))
        .service(redirecting_network(seen))
}

#[tokio::test]
async fn a_nonce_from_the_end_of_a_redirect_is_neither_kept_for_the_first_origin_nor_resent() {
    let seen = Seen::default();
    let client = through_redirects(Standard::default(), &seen);

    let response = client
        .clone()
        .oneshot(get("https://a.test/start"))
        .await
        .unwrap();
    // b.test's demand is about b.test: the caller gets it as it came, after one trip.
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = client
        .clone()
        .oneshot(get("https://a.test/after"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let seen = seen.lock().unwrap();
    let hosts: Vec<&str> = seen.iter().map(|(at, _)| at.as_str()).collect();
    assert_eq!(hosts, ["a.test/start", "b.test/elsewhere", "a.test/after"]);
    assert_eq!(seen[2].1, Value::Null, "a.test never sent a nonce");
}

#[tokio::test]
async fn without_dpop_on_redirect_keeps_the_proof_off_every_redirected_hop() {
    let seen = Seen::default();
    let client = through_redirects(WithoutDpopOnRedirect::default(), &seen);

    client.oneshot(get("https://a.test/start")).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], ("a.test/start".to_owned(), Value::Null));
    assert_eq!(
        seen[1],
        ("b.test/elsewhere".to_owned(), Value::from("no proof"))
    );
}

#[tokio::test]
async fn tower_https_own_policy_alone_lets_the_proof_follow_a_redirect() {
    // Why `WithoutDpopOnRedirect` exists: were this to fail, tower-http would strip proofs
    // itself and the wrapper could go.
    let seen = Seen::default();
    let client = through_redirects(Standard::default(), &seen);

    client.oneshot(get("https://a.test/start")).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[1], ("b.test/elsewhere".to_owned(), Value::Null));
}
