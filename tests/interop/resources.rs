//! Resource indicators (RFC 8707): oidc-provider issues a token whose audience is the resource
//! asked for, and the test API refuses a token for the other resource.

use http::StatusCode;
use tower_oauth2::{ClientAuth, TokenCache, grant::ClientCredentials};

use crate::support::{api, get, status_with, token_client};

const API_B: &str = "urn:interop:api-b";

fn grant() -> ClientCredentials {
    ClientCredentials::new(
        token_client(),
        ClientAuth::basic("cc-resource", "cc-resource-secret"),
    )
    .scopes(["api:read"])
}

#[tokio::test]
async fn a_token_for_resource_b_opens_api_b_and_not_api_a() {
    let cache = TokenCache::new(grant().resource(API_B));
    let (status, body) = get(&api(&cache), "/b/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(API_B), "{body}");
    let token = cache.token().await.unwrap();
    let access = token.token().access_token().expose();
    assert_eq!(status_with(access, "/read").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_for_resource_a_is_refused_by_api_b() {
    let cache = TokenCache::new(grant().resource("urn:interop:api"));
    let (status, body) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = cache.token().await.unwrap();
    let access = token.token().access_token().expose();
    assert_eq!(
        status_with(access, "/b/read").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_unknown_resource_is_refused_by_the_server() {
    let error = TokenCache::new(grant().resource("urn:interop:unknown"))
        .token()
        .await
        .unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_target"), "{error}");
}
