//! The JWT bearer grant (RFC 7523 section 2.1) against the grant type `interop/server.mjs`
//! registers with oidc-provider: it trusts ES256 assertions from `interop-workload-issuer`
//! signed with the EC test key, for the token endpoint URL, each `jti` once.

use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tower_oauth2::{
    BoxError, ClientAuth, ErrorKind, SigningKey, TokenCache, TokenClient, grant::JwtBearer,
};
use tower_oauth2_testkit::keys;

use crate::support::{api, get, issuer, token_client};

const ISSUER: &str = "interop-workload-issuer";

fn signed(key: &str) -> JwtBearer {
    let key = SigningKey::from_pkcs8_pem(key).unwrap();
    JwtBearer::signed(
        token_client(),
        ClientAuth::none("bearer-client"),
        key,
        ISSUER,
        "workload-7",
    )
    .scopes(["api:read"])
}

async fn refused(grant: JwtBearer) -> tower_oauth2::Error {
    let error = TokenCache::new(grant).token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_grant"), "{error}");
    error
}

#[tokio::test]
async fn a_self_signed_assertion_gets_a_token_for_its_subject() {
    let cache = TokenCache::new(signed(keys::EC_PRIVATE_PEM));
    let (status, body) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""sub":"workload-7""#), "{body}");
    // A new assertion for the next token: the server refuses a jti it has seen.
    cache.refresh().await.unwrap();
}

#[tokio::test]
async fn the_server_refuses_an_assertion_signed_with_another_key() {
    refused(signed(keys::RSA_PRIVATE_PEM)).await;
}

#[tokio::test]
async fn the_server_refuses_an_assertion_for_another_audience() {
    refused(signed(keys::EC_PRIVATE_PEM).assertion_audience(issuer())).await;
}

#[tokio::test]
async fn a_given_assertion_is_asked_for_per_request_and_a_replayed_one_is_refused() {
    // One assertion, made outside the crate, returned every time: the first request passes,
    // the second carries a jti the server has seen.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "workload-8", "aud": format!("{}/token", issuer()),
        "iat": now, "exp": now + 120, "jti": format!("fixed-{now}"),
    });
    let key = EncodingKey::from_ec_pem(keys::EC_PRIVATE_PEM.as_bytes()).unwrap();
    let assertion = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &key).unwrap();
    let endpoint: TokenClient = token_client();
    let grant = JwtBearer::new(endpoint, ClientAuth::none("bearer-client"), move || {
        Ok::<_, BoxError>(assertion.clone())
    })
    .scopes(["api:read"]);
    let cache = TokenCache::new(grant);
    let (status, body) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""sub":"workload-8""#), "{body}");
    let error = cache.refresh().await.unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_grant"), "{error}");
}
