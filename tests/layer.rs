//! `OAuth2Layer`: attaching tokens, 401 refresh-and-retry, replay policies, readiness.

mod common;

use std::{convert::Infallible, time::Duration};

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use tokio::task::JoinSet;
use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_oauth2::{CloneBodies, ErrorKind, OAuth2Layer};
use tower_test::mock;

use common::AuthServerExt;
use tower_oauth2_testkit::{AuthServer, Body, accepted_token, get};

#[tokio::test(start_paused = true)]
async fn each_request_carries_the_cached_bearer_token() {
    let issuer = AuthServer::new();
    let mut client = OAuth2Layer::new(issuer.grant()).layer(issuer.api::<Body>());
    for _ in 0..3 {
        let response = client.ready().await.unwrap().call(get("/")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(accepted_token(&response), Some("token-1"));
    }
    assert_eq!(issuer.grants(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_401_with_the_current_token_refreshes_once_and_retries_once() {
    let issuer = AuthServer::new();
    let client = OAuth2Layer::new(issuer.grant()).layer(issuer.api::<Body>());
    client.clone().oneshot(get("/")).await.unwrap();
    issuer.revoke("token-1");

    let response = client.oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(issuer.grants(), 2);
    let seen = issuer.api_tokens();
    let seen: Vec<&str> = seen.iter().map(|token| token.as_deref().unwrap()).collect();
    assert_eq!(seen, ["token-1", "token-1", "token-2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_401s_for_one_token_cause_one_refresh() {
    let issuer = AuthServer::new().token_delay(Duration::from_millis(20));
    let cache = issuer.cache();
    let client = OAuth2Layer::new(cache.clone()).layer(issuer.api::<Body>());
    cache.token().await.unwrap();
    issuer.revoke("token-1");

    let mut requests = JoinSet::new();
    for _ in 0..50 {
        requests.spawn(client.clone().oneshot(get("/")));
    }
    for response in requests.join_all().await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(accepted_token(&response), Some("token-2"));
    }
    assert_eq!(issuer.grants(), 2);
}

type Mock = mock::Mock<Request<Body>, Response<Body>>;

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = code;
    response
}

fn bearer(request: &Request<Body>) -> &str {
    request.headers()[AUTHORIZATION].to_str().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_401_for_an_older_token_retries_with_the_current_one_and_no_new_grant() {
    let issuer = AuthServer::new();
    let cache = issuer.cache();
    let (api, mut handle): (Mock, _) = mock::pair();
    let client = OAuth2Layer::new(cache.clone()).layer(api);

    let pending = tokio::spawn(client.oneshot(get("/")));
    let (first, respond) = handle.next_request().await.unwrap();
    assert_eq!(bearer(&first), "Bearer token-1");

    // Another request rotated the token while this one was out.
    cache.refresh().await.unwrap();
    respond.send_response(status(StatusCode::UNAUTHORIZED));

    let (retry, respond) = handle.next_request().await.unwrap();
    assert_eq!(bearer(&retry), "Bearer token-2");
    respond.send_response(status(StatusCode::OK));
    assert_eq!(pending.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(issuer.grants(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_401_on_the_retry_is_returned() {
    let issuer = AuthServer::new();
    let (api, mut handle): (Mock, _) = mock::pair();
    let client = OAuth2Layer::new(issuer.grant()).layer(api);

    let pending = tokio::spawn(client.oneshot(get("/")));
    for _ in 0..2 {
        let (_, respond) = handle.next_request().await.unwrap();
        respond.send_response(status(StatusCode::UNAUTHORIZED));
    }
    let response = pending.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(issuer.grants(), 2);
    // The service is gone with the finished request; nothing else was sent through it.
    assert!(
        handle.next_request().await.is_none(),
        "a third attempt was sent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_403_is_never_retried() {
    let issuer = AuthServer::new();
    let (api, mut handle): (Mock, _) = mock::pair();
    let client = OAuth2Layer::new(issuer.grant()).layer(api);

    let pending = tokio::spawn(client.oneshot(get("/")));
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(status(StatusCode::FORBIDDEN));
    assert_eq!(
        pending.await.unwrap().unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(issuer.grants(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_request_with_a_body_gets_its_401_back_as_it_came() {
    let issuer = AuthServer::new();
    let client = OAuth2Layer::new(issuer.grant()).layer(issuer.api::<Body>());
    client.clone().oneshot(get("/")).await.unwrap();
    issuer.revoke("token-1");

    let request = Request::post("/").body(Full::from("payload")).unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().contains_key("www-authenticate"));
    assert_eq!(issuer.grants(), 1);
}

type Streaming = UnsyncBoxBody<Bytes, Infallible>;

#[tokio::test(start_paused = true)]
async fn a_streaming_request_gets_its_401_back_as_it_came() {
    let issuer = AuthServer::new();
    let cache = issuer.cache();
    let client = OAuth2Layer::new(cache.clone()).layer(issuer.api::<Streaming>());
    cache.token().await.unwrap();
    let chunks = stream::iter([Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(
        "a",
    )))]);
    let body = StreamBody::new(chunks).boxed_unsync();
    issuer.revoke("token-1");

    let response = client
        .oneshot(Request::post("/").body(body).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(issuer.api_tokens().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn clone_bodies_replays_a_request_with_content() {
    let issuer = AuthServer::new();
    let (api, mut handle): (Mock, _) = mock::pair();
    let client = OAuth2Layer::new(issuer.grant())
        .replay(CloneBodies)
        .layer(api);

    let request = Request::put("/item").body(Full::from("payload")).unwrap();
    let pending = tokio::spawn(client.oneshot(request));
    let (_, respond) = handle.next_request().await.unwrap();
    respond.send_response(status(StatusCode::UNAUTHORIZED));
    let (retry, respond) = handle.next_request().await.unwrap();
    assert_eq!(retry.method(), "PUT");
    assert_eq!(bearer(&retry), "Bearer token-2");
    let body = retry.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "payload");
    respond.send_response(status(StatusCode::OK));
    assert_eq!(pending.await.unwrap().unwrap().status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_callers_own_authorization_header_is_left_alone() {
    let issuer = AuthServer::new();
    let client = OAuth2Layer::new(issuer.grant()).layer(issuer.api::<Body>());
    let request = Request::get("/")
        .header(AUTHORIZATION, "Bearer mine")
        .body(Body::default())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(issuer.api_tokens(), [Some("mine".to_owned())]);
    assert_eq!(issuer.grants(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_after_a_401_returns_the_token_error() {
    let issuer = AuthServer::new();
    let client = OAuth2Layer::new(issuer.grant()).layer(issuer.api::<Body>());
    client.clone().oneshot(get("/")).await.unwrap();
    issuer.revoke("token-1");
    issuer.fail_with(StatusCode::BAD_REQUEST, r#"{"error":"invalid_client"}"#);

    let error = client.oneshot(get("/")).await.unwrap_err();
    let error = error.downcast_ref::<tower_oauth2::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_client"));
}

#[tokio::test(start_paused = true)]
async fn a_cold_cache_that_cannot_get_a_token_never_calls_the_inner_service() {
    let issuer = AuthServer::new();
    issuer.fail_with(StatusCode::FORBIDDEN, r#"{"meta":{"pagination":{"limit":0,"offset":0,"total_count":0}},"errors":[{"httpcode":403,"message":"client disabled"}]}"#);
    let client = OAuth2Layer::new(issuer.grant()).layer(issuer.api::<Body>());
    let error = client.oneshot(get("/")).await.unwrap_err();
    let error = error.downcast_ref::<tower_oauth2::Error>().unwrap();
    assert_eq!(error.description(), Some("client disabled"));
    assert_eq!(error.status(), Some(StatusCode::FORBIDDEN));
    assert!(issuer.api_tokens().is_empty());
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused")
    }
}

impl std::error::Error for Refused {}

#[tokio::test(start_paused = true)]
async fn errors_of_the_inner_service_pass_through_unchanged() {
    let issuer = AuthServer::new();
    let failing = service_fn(|_: Request<Body>| async { Err::<Response<Body>, _>(Refused) });
    let client = OAuth2Layer::new(issuer.grant()).layer(failing);
    let error: BoxError = client.oneshot(get("/")).await.unwrap_err();
    assert!(error.downcast_ref::<Refused>().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_buffer_of_one_requests_neither_panic_nor_stall() {
    let issuer = AuthServer::new().token_delay(Duration::from_millis(5));
    let client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(issuer.grant()))
        .buffer(1)
        .service(issuer.api::<Body>());
    run_with_a_revocation_midway(&issuer, client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_concurrency_limit_of_one_requests_neither_panic_nor_stall() {
    let issuer = AuthServer::new().token_delay(Duration::from_millis(5));
    let client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(issuer.grant()))
        .concurrency_limit(1)
        .service(issuer.api::<Body>());
    run_with_a_revocation_midway(&issuer, client).await;
}

/// 200 requests, 100 before and 100 after the first token is revoked, must all succeed well
/// within a deadline.
async fn run_with_a_revocation_midway<S>(issuer: &AuthServer, client: S)
where
    S: Service<Request<Body>, Response = Response<Body>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    let run = async {
        for round in 0..2 {
            if round == 1 {
                issuer.revoke("token-1");
            }
            let mut requests = JoinSet::new();
            for _ in 0..100 {
                requests.spawn(client.clone().oneshot(get("/")));
            }
            for response in requests.join_all().await {
                assert_eq!(response.unwrap().status(), StatusCode::OK);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("requests stalled");
    assert_eq!(issuer.grants(), 2);
}

#[tokio::test(start_paused = true)]
async fn tokens_go_only_to_allowed_origins() {
    let issuer = AuthServer::new();
    let client = OAuth2Layer::new(issuer.grant())
        .allow_origin("https://api.test")
        .unwrap()
        .send_others_without_token()
        .layer(issuer.api::<Body>());
    let allowed = client
        .clone()
        .oneshot(get("https://api.test/x"))
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    let other = client
        .oneshot(get("https://elsewhere.test/x"))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(issuer.api_tokens(), [Some("token-1".to_owned()), None]);
}

#[tokio::test(start_paused = true)]
async fn plain_http_to_a_remote_host_fails_unless_allowed_naming_the_setting() {
    let issuer = AuthServer::new();
    let client = OAuth2Layer::new(issuer.grant()).layer(issuer.api::<Body>());
    let error = client.oneshot(get("http://api.test/x")).await.unwrap_err();
    let error = error.downcast_ref::<tower_oauth2::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::OriginNotAllowed);
    assert!(error.to_string().contains("allow_plain_http"), "{error}");
    assert!(
        issuer.api_tokens().is_empty(),
        "a refused request reached the API"
    );

    let client = OAuth2Layer::new(issuer.grant())
        .send_others_without_token()
        .layer(issuer.api::<Body>());
    client.oneshot(get("http://api.test/x")).await.unwrap();
    let client = OAuth2Layer::new(issuer.grant())
        .allow_plain_http()
        .layer(issuer.api::<Body>());
    client.oneshot(get("http://api.test/x")).await.unwrap();
    assert_eq!(issuer.api_tokens(), [None, Some("token-1".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn requests_to_other_origins_are_refused() {
    let issuer = AuthServer::new();
    let client = OAuth2Layer::new(issuer.grant())
        .allow_origin("https://api.test")
        .unwrap()
        .layer(issuer.api::<Body>());
    let error = client
        .oneshot(get("https://elsewhere.test/"))
        .await
        .unwrap_err();
    let error = error.downcast_ref::<tower_oauth2::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::OriginNotAllowed);
    assert!(issuer.api_tokens().is_empty());
    assert_eq!(issuer.grants(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_cache_counts_fetches_and_retries() {
    let issuer = AuthServer::new();
    let cache = issuer.cache();
    let client = OAuth2Layer::new(cache.clone()).layer(issuer.api::<Body>());
    client.clone().oneshot(get("/")).await.unwrap();
    issuer.revoke("token-1");
    client.oneshot(get("/")).await.unwrap();
    let stats = cache.stats();
    assert_eq!(stats.fetches, 2);
    assert_eq!(stats.failed_fetches, 0);
    assert_eq!(stats.retries_after_401, 1);
}

#[tokio::test(start_paused = true)]
async fn a_long_lived_clone_keeps_working_across_token_rotations() {
    let issuer = AuthServer::new();
    let cache = issuer.cache();
    let mut client = OAuth2Layer::new(cache.clone()).layer(issuer.api::<Body>());
    for round in 1..=3 {
        for _ in 0..3 {
            let response = client.ready().await.unwrap().call(get("/")).await.unwrap();
            let token = format!("token-{round}");
            assert_eq!(accepted_token(&response), Some(token.as_str()));
        }
        cache.refresh().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_revoked_right_after_its_fetch_is_replaced_at_once() {
    let issuer = AuthServer::new();
    let client = OAuth2Layer::new(issuer.grant()).layer(issuer.api::<Body>());
    client.clone().oneshot(get("/")).await.unwrap();
    issuer.revoke("token-1");

    // The default minimum refresh interval is one second; the 401 must not wait it out.
    let started = tokio::time::Instant::now();
    let response = client.clone().oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(accepted_token(&response), Some("token-2"));
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn an_api_that_rejects_every_new_token_is_given_new_ones_less_and_less_often() {
    let issuer = AuthServer::new();
    let api = service_fn(|_: Request<Body>| async {
        Ok::<_, Infallible>(status(StatusCode::UNAUTHORIZED))
    });
    let client = OAuth2Layer::new(issuer.grant()).layer(api);
    let mut waits = Vec::new();
    for _ in 0..4 {
        let started = tokio::time::Instant::now();
        let response = client.clone().oneshot(get("/")).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        waits.push(started.elapsed());
    }
    // The first 401 is answered at once; each later one waits a step of the backoff (250 ms
    // doubling, each a random point in the upper half of its step).
    assert!(waits[0] < Duration::from_millis(50), "{waits:?}");
    assert!(waits[1] >= Duration::from_millis(125), "{waits:?}");
    assert!(waits[2] >= Duration::from_millis(250), "{waits:?}");
    assert!(waits[3] >= Duration::from_millis(500), "{waits:?}");
    assert_eq!(issuer.grants(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_clone_used_as_the_last_handle_still_retries_after_a_401() {
    let issuer = AuthServer::new();
    let client = OAuth2Layer::new(issuer.grant()).layer(issuer.api::<Body>());
    client.clone().oneshot(get("/")).await.unwrap();
    issuer.revoke("token-1");

    // A task that owns its clone: once the request is out, `oneshot` drops the last handle.
    let owned = client.clone();
    drop(client);
    let response = owned.oneshot(get("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(accepted_token(&response), Some("token-2"));
    assert_eq!(issuer.grants(), 2);
}

/// An API that refuses `/refused` whatever the token, and takes any token elsewhere; its
/// answers name the token they saw.
fn refusing_api()
-> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = impl Send>
+ Clone
+ Send {
    service_fn(|request: Request<Body>| async move {
        let token = request.headers().get(AUTHORIZATION).cloned();
        let mut response = if request.uri().path() == "/refused" {
            status(StatusCode::UNAUTHORIZED)
        } else {
            status(StatusCode::OK)
        };
        if let Some(token) = token {
            response.headers_mut().insert("x-token", token);
        }
        Ok::<_, Infallible>(response)
    })
}

fn carried(response: &Response<Body>) -> &str {
    response.headers()["x-token"].to_str().unwrap()
}

#[tokio::test(start_paused = true)]
async fn repeated_401s_for_one_token_never_make_a_request_that_was_not_refused_wait() {
    let issuer = AuthServer::new();
    let cache = issuer.cache();
    let client = OAuth2Layer::new(cache.clone()).layer(refusing_api());
    client.clone().oneshot(get("/")).await.unwrap();
    // Every round refuses the token it carries and the new one of its retry: from the second
    // on, the API looks as if it rejects every new token, and each refresh is held back longer.
    for _ in 0..4 {
        let response = client.clone().oneshot(get("/refused")).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = tokio::spawn(client.clone().oneshot(get("/refused")));
    // The refused request now waits for a refresh that is held back.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!refused.is_finished());
    let (fetches, current) = (cache.stats().fetches, cache.current());
    assert!(current.is_none(), "the token was refused");

    let unrelated =
        tokio::time::timeout(Duration::from_millis(1), client.clone().oneshot(get("/")))
            .await
            .expect("a request that was not refused waits for no refresh")
            .unwrap();
    assert_eq!(unrelated.status(), StatusCode::OK);
    assert_eq!(cache.stats().fetches, fetches, "and starts none");
    let (previous, last) = (format!("Bearer token-{fetches}"), carried(&unrelated));
    assert_eq!(
        last, previous,
        "it carried the token the others were refused with"
    );

    // The refused request still gets its refresh and its retry, once the delay has passed.
    let response = refused.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(cache.stats().fetches, fetches + 1);
}

#[cfg(feature = "tower-http")]
mod redirected {
    use super::*;
    use tower_http::follow_redirect::RequestUri;

    /// An API whose 401 answers say, as tower-http's `FollowRedirect` does, that they came
    /// from `landed_at`.
    fn redirected_to(
        landed_at: &'static str,
    ) -> impl Service<
        Request<Body>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send {
        service_fn(move |request: Request<Body>| async move {
            let mut response = if request.uri().path() == "/away" {
                status(StatusCode::UNAUTHORIZED)
            } else {
                status(StatusCode::OK)
            };
            let uri = match request.uri().path() {
                "/away" => landed_at.parse().unwrap(),
                _ => request.uri().clone(),
            };
            response.extensions_mut().insert(RequestUri(uri));
            Ok::<_, Infallible>(response)
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_401_from_another_uri_than_the_token_went_to_keeps_the_token_and_fetches_nothing() {
        let issuer = AuthServer::new();
        let cache = issuer.cache();
        let client =
            OAuth2Layer::new(cache.clone()).layer(redirected_to("https://elsewhere.test/landing"));
        client
            .clone()
            .oneshot(get("https://api.test/"))
            .await
            .unwrap();
        for _ in 0..5 {
            let response = client
                .clone()
                .oneshot(get("https://api.test/away"))
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(cache.stats().fetches, 1);
        assert_eq!(cache.stats().retries_after_401, 0);
        assert!(cache.current().is_some(), "the token was never refused");
    }

    #[tokio::test(start_paused = true)]
    async fn a_401_from_the_uri_the_token_went_to_still_retires_it() {
        let issuer = AuthServer::new();
        let cache = issuer.cache();
        let client = OAuth2Layer::new(cache.clone()).layer(redirected_to("https://api.test/away"));
        client
            .clone()
            .oneshot(get("https://api.test/"))
            .await
            .unwrap();
        let response = client
            .clone()
            .oneshot(get("https://api.test/away"))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(cache.stats().fetches, 2);
        assert_eq!(cache.stats().retries_after_401, 1);
    }
}
