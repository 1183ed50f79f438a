//! No secret ever shows in the `Debug` or `Display` of a public type.

mod common;

use http::{Request, StatusCode};
use tower::{Layer, ServiceExt};
use tower_oauth2::{
    ClientAuth, FetchContext, FetchReason, OAuth2Layer, Secret, Token, TokenCache, TokenClient,
    TokenRequest, grant::ClientCredentials,
};

use common::{Body, Issuer};

const SECRET: &str = "sentinel-client-secret";
const TOKEN: &str = "sentinel-access-token";
const REFRESH: &str = "sentinel-refresh-token";

fn assert_clean(what: &str, text: String) {
    assert_free_of(what, &text, &["sentinel"]);
}

fn assert_free_of(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

#[tokio::test(start_paused = true)]
async fn no_public_type_shows_a_secret_in_debug() {
    let issuer = Issuer::new();
    let endpoint = TokenClient::new("https://auth.test/token", issuer.token_endpoint()).unwrap();
    let token = Token::bearer(TOKEN)
        .with_refresh_token(REFRESH)
        .with_id_token(TOKEN);
    let grant = ClientCredentials::new(endpoint.clone(), ClientAuth::basic("client", SECRET));
    let cache = TokenCache::new(grant.clone());
    let cached = cache.seed(token.clone()).await.unwrap();
    let layer = OAuth2Layer::new(cache.clone());
    let service = layer.layer(tower::service_fn(|_: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Body::default()))
    }));

    assert_clean("Secret", format!("{:?}", Secret::from(SECRET)));
    assert_clean("Token", format!("{token:?}"));
    assert_clean("ClientAuth", format!("{:?}", ClientAuth::post("c", SECRET)));
    let request = TokenRequest::new("refresh_token").secret_param("refresh_token", REFRESH);
    assert_clean("TokenRequest", format!("{request:?}"));
    assert_clean("TokenClient", format!("{endpoint:?}"));
    assert_clean("ClientCredentials", format!("{grant:?}"));
    assert_clean("TokenCache", format!("{cache:?}"));
    assert_clean("CachedToken", format!("{cached:?}"));
    assert_clean("header value", format!("{:?}", cached.header_value()));
    assert_clean("OAuth2Layer", format!("{layer:?}"));
    assert_clean("OAuth2", format!("{service:?}"));
    let cx = FetchContext::new(Some(&token), FetchReason::Cold);
    assert_clean("FetchContext", format!("{cx:?}"));
    assert_clean(
        "TokenCacheBuilder",
        format!("{:?}", TokenCache::builder(grant)),
    );
}

#[tokio::test(start_paused = true)]
async fn no_error_shows_a_secret_in_display_or_debug() {
    let bodies = [
        (
            400,
            format!(
                r#"{{"error":"invalid_client","error_description":"secret {SECRET} is wrong"}}"#
            ),
        ),
        (
            403,
            format!(r#"{{"meta":{{}},"errors":[{{"httpcode":403,"message":"bad {SECRET}"}}]}}"#),
        ),
        (
            500,
            format!("<html><body>client_secret={SECRET}&refresh_token={REFRESH}</body></html>"),
        ),
        (
            200,
            format!(r#"{{"access_token":"{TOKEN}","token_type":"{SECRET}"}}"#),
        ),
        (
            200,
            format!(r#"{{"access_token":"{TOKEN}","expires_in":"{TOKEN}"}}"#),
        ),
        (200, format!(r#"{{"access_token":"{TOKEN}\n"}}"#)),
    ];
    for (status, body) in bodies {
        let issuer = Issuer::new();
        let http = tower::service_fn(move |_: Request<Body>| {
            let mut response = http::Response::new(Body::from(body.clone()));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        let endpoint = TokenClient::new("https://auth.test/token", http).unwrap();
        let request = TokenRequest::new("refresh_token").secret_param("refresh_token", REFRESH);
        let cache = TokenCache::new(ClientCredentials::new(
            endpoint.clone(),
            ClientAuth::post("client", SECRET),
        ));
        let from_endpoint = endpoint
            .request(&request, &ClientAuth::post("client", SECRET))
            .await;
        let from_cache = cache.token().await;
        let through_layer = OAuth2Layer::new(cache)
            .layer(issuer.api::<Body>())
            .oneshot(Request::new(Body::default()))
            .await;
        // Each path knows the secrets it sent, and only those can be scrubbed.
        let error = from_endpoint.unwrap_err();
        assert_free_of(
            "Error",
            &format!("{error} {error:?}"),
            &[SECRET, TOKEN, REFRESH],
        );
        let error = from_cache.unwrap_err();
        assert_free_of("Error", &format!("{error} {error:?}"), &[SECRET, TOKEN]);
        let error = through_layer.unwrap_err();
        assert_free_of("BoxError", &format!("{error} {error:?}"), &[SECRET, TOKEN]);
    }
}

/// A token endpoint that echoes what it received, as debugging pages and some gateways do:
/// the form body and the `Authorization` header, in the encodings they were sent in.
fn echoing_endpoint(status: u16, padding: usize) -> TokenClient {
    let http = tower::service_fn(move |request: Request<Body>| async move {
        use http_body_util::BodyExt;
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let page = format!(
            "<html>{}<body>authorization: {authorization} body: {}</body></html>",
            "<br>".repeat(padding),
            String::from_utf8_lossy(&body)
        );
        let mut response = http::Response::new(Body::from(page));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        Ok::<_, std::convert::Infallible>(response)
    });
    TokenClient::new("https://auth.test/token", http).unwrap()
}

/// A secret with the characters base64 secrets have, so its form encoding differs from it.
const ENCODED_SECRET: &str = "Q7+mZ/vR9=kT~sentinel";

#[tokio::test]
async fn a_secret_echoed_in_the_encoding_it_was_sent_in_is_scrubbed() {
    let encoded: String = form_urlencoded::byte_serialize(ENCODED_SECRET.as_bytes()).collect();
    let credentials = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("client:{encoded}"),
    );
    for auth in [
        ClientAuth::post("client", ENCODED_SECRET),
        ClientAuth::basic("client", ENCODED_SECRET),
    ] {
        let request = TokenRequest::new("refresh_token").secret_param("refresh_token", REFRESH);
        let error = echoing_endpoint(500, 0)
            .request(&request, &auth)
            .await
            .unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert_free_of(
            "Error",
            &shown,
            &[ENCODED_SECRET, &encoded, &credentials, REFRESH],
        );
    }
}

#[tokio::test]
async fn no_part_of_a_secret_shows_when_it_sits_where_a_long_body_is_cut() {
    // Markup collapses to nothing, so text deep in a long page is what the excerpt shows; a
    // cut through the secret must not leave its first characters behind.
    for padding in 990..1010 {
        let error = echoing_endpoint(502, padding)
            .request(
                &TokenRequest::new("client_credentials"),
                &ClientAuth::post("client", SECRET),
            )
            .await
            .unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("client_secret="), "{shown}");
        assert_clean("Error", shown);
    }
}
