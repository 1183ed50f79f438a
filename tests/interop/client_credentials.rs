//! client_credentials with both secret methods, against a server that refuses the method a
//! client is not registered for.

use http::StatusCode;
use tower_oauth2::{ClientAuth, ErrorKind, TokenCache, grant::ClientCredentials};

use crate::support::{api, counter, get, token_client};

fn grant(auth: ClientAuth) -> ClientCredentials {
    ClientCredentials::new(token_client(), auth).scopes(["api:read"])
}

#[tokio::test]
async fn client_secret_basic_gets_a_token_that_opens_the_api() {
    let cache = TokenCache::new(grant(ClientAuth::basic("cc-basic", "cc-basic-secret")));
    let (status, body) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""client_id":"cc-basic""#), "{body}");
    assert!(counter("cc-basic", "success:client_credentials").await >= 1);
}

#[tokio::test]
async fn client_secret_post_gets_a_token_that_opens_the_api() {
    let cache = TokenCache::new(grant(ClientAuth::post("cc-post", "cc-post-secret")));
    let (status, body) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""client_id":"cc-post""#), "{body}");
    assert!(counter("cc-post", "success:client_credentials").await >= 1);
}

/// What makes the two tests above proof that the crate sends the configured method.
#[tokio::test]
async fn the_server_refuses_a_method_the_client_is_not_registered_for() {
    for (auth, registered) in [
        (
            ClientAuth::post("cc-basic", "cc-basic-secret"),
            "client_secret_basic",
        ),
        (
            ClientAuth::basic("cc-post", "cc-post-secret"),
            "client_secret_post",
        ),
    ] {
        let error = TokenCache::new(grant(auth)).token().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Rejected);
        assert_eq!(error.oauth_error(), Some("invalid_client"));
        assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
        assert!(error.description().unwrap().contains(registered), "{error}");
    }
}

#[tokio::test]
async fn a_wrong_secret_is_a_typed_invalid_client_error_at_the_service_boundary() {
    let cache = TokenCache::new(grant(ClientAuth::basic("cc-basic", "sentinel-wrong")));
    let error = get(&api(&cache), "/read").await.unwrap_err();
    let error = error
        .downcast_ref::<tower_oauth2::Error>()
        .unwrap_or_else(|| panic!("not a tower_oauth2::Error: {error}"));
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_client"));
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(!error.is_transient());
    assert!(!format!("{error} {error:?}").contains("sentinel"));
}
