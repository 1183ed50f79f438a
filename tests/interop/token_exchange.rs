//! Token exchange (RFC 8693) against the interop server's grant (interop/exchange.mjs): a
//! client trades its own access token for one for another API, which that API accepts and
//! the first refuses; the server refuses what it did not issue; and the client refuses
//! answers whose `issued_token_type` is missing or not the one asked for.

use http::StatusCode;
use tower_oauth2::{
    BoxError, ClientAuth, ErrorKind, TokenCache,
    grant::{ClientCredentials, SecurityToken, TokenExchange},
};

use crate::support::{api, counter, get, status_with, token_client};

const API_B: &str = "urn:interop:api-b";

fn auth(client_id: &str) -> ClientAuth {
    ClientAuth::basic(client_id, format!("{client_id}-secret"))
}

/// The client's own token, for API A (the server's default resource).
fn own_token(client_id: &str) -> SecurityToken {
    let grant = ClientCredentials::new(token_client(), auth(client_id)).scopes(["api:read"]);
    SecurityToken::from_cache(TokenCache::new(grant))
}

#[tokio::test]
async fn a_token_exchanged_for_resource_b_opens_api_b_and_not_api_a() {
    let grant = TokenExchange::new(token_client(), auth("exchanger"), own_token("exchanger"))
        .resource(API_B)
        .scopes(["api:read"]);
    let cache = TokenCache::new(grant);
    let (status, body) = get(&api(&cache), "/b/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(API_B), "{body}");
    let token = cache.token().await.unwrap();
    let access = token.token().access_token().expose();
    assert_eq!(status_with(access, "/read").await, StatusCode::UNAUTHORIZED);
    assert!(
        counter(
            "exchanger",
            "success:urn:ietf:params:oauth:grant-type:token-exchange"
        )
        .await
            >= 1
    );
}

#[tokio::test]
async fn an_audience_names_the_api_as_well_as_a_resource_and_an_actor_may_come_along() {
    let grant = TokenExchange::new(token_client(), auth("exchanger"), own_token("exchanger"))
        .actor(own_token("exchanger"))
        .audience(API_B)
        .requested_token_type(SecurityToken::ACCESS_TOKEN);
    let cache = TokenCache::new(grant);
    let (status, body) = get(&api(&cache), "/b/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_subject_token_the_server_never_issued_is_refused() {
    let subject = SecurityToken::from_fn(|| Ok::<_, BoxError>("made-up-token"));
    let grant = TokenExchange::new(token_client(), auth("exchanger"), subject);
    let error = TokenCache::new(grant).token().await.unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_grant"), "{error}");
}

#[tokio::test]
async fn scopes_beyond_the_subject_tokens_are_refused() {
    let grant = TokenExchange::new(token_client(), auth("exchanger"), own_token("exchanger"))
        .scopes(["api:read", "api:write"]);
    let error = TokenCache::new(grant).token().await.unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_scope"), "{error}");
}

#[tokio::test]
async fn an_issued_token_type_other_than_the_requested_one_is_refused_by_the_client() {
    // The server issues access tokens only, whatever is asked for.
    let grant = TokenExchange::new(token_client(), auth("exchanger"), own_token("exchanger"))
        .requested_token_type(SecurityToken::JWT);
    let error = TokenCache::new(grant).token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{error}");
    assert!(error.to_string().contains(SecurityToken::JWT), "{error}");
}

#[tokio::test]
async fn an_answer_without_issued_token_type_is_refused_by_the_client() {
    let grant = TokenExchange::new(
        token_client(),
        auth("exchanger-legacy"),
        own_token("exchanger-legacy"),
    );
    let error = TokenCache::new(grant).token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{error}");
    assert!(error.to_string().contains("issued_token_type"), "{error}");
}
