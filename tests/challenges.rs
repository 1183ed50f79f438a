//! A 401 answer whose `WWW-Authenticate` a new bearer token cannot meet is returned as it came:
//! no token is thrown away and no grant runs for it.

mod common;

use std::convert::Infallible;

use http::{HeaderValue, Request, Response, StatusCode, header::WWW_AUTHENTICATE};
use tower::{Layer, ServiceExt, service_fn};
use tower_oauth2::OAuth2Layer;

use common::AuthServerExt;
use tower_oauth2_testkit::{AuthServer, Body, get};

/// An API that answers 401 with `challenge` on `/guarded` and 200 elsewhere.
fn api_with_challenge(
    challenge: &'static str,
) -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone {
    service_fn(move |request: Request<Body>| async move {
        let mut response = Response::new(Body::default());
        if request.uri().path() == "/guarded" {
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        Ok(response)
    })
}

#[tokio::test(start_paused = true)]
async fn a_401_that_asks_for_another_scheme_or_more_scope_is_returned_without_a_new_grant() {
    for challenge in [
        r#"Basic realm="admin""#,
        "Negotiate",
        r#"DPoP algs="ES256", error="invalid_token""#,
        r#"Bearer error="insufficient_scope", scope="admin""#,
    ] {
        let issuer = AuthServer::new();
        let cache = issuer.cache();
        let client = OAuth2Layer::new(cache.clone()).layer(api_with_challenge(challenge));
        for _ in 0..5 {
            let response = client.clone().oneshot(get("/guarded")).await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{challenge}");
            assert_eq!(response.headers()[WWW_AUTHENTICATE], challenge);
        }
        let response = client.oneshot(get("/open")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(issuer.grants(), 1, "{challenge}");
        assert_eq!(cache.stats().retries_after_401, 0, "{challenge}");
        assert!(
            cache.current().is_some(),
            "{challenge}: the token was thrown away"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_401_with_a_bearer_challenge_or_none_still_refreshes_and_retries_once() {
    for challenge in [
        r#"Bearer error="invalid_token""#,
        r#"Basic realm="x", Bearer realm="y""#,
        "Bearer",
        r#"Bearer error="unterminated"#,
    ] {
        let issuer = AuthServer::new();
        let cache = issuer.cache();
        let client = OAuth2Layer::new(cache.clone()).layer(api_with_challenge(challenge));
        let response = client.oneshot(get("/guarded")).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(issuer.grants(), 2, "{challenge}");
        assert_eq!(cache.stats().retries_after_401, 1, "{challenge}");
    }
}
