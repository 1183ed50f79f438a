//! Token revocation (RFC 7009) at the server's revocation endpoint.

use http::StatusCode;
use tower_oauth2::{
    ClientAuth, ErrorKind, Revocation, Secret, TokenCache, TokenTypeHint, grant::AuthorizationCode,
};

use crate::support::{REDIRECT, authorize, counter, issuer, status_with, token_client};

const CLIENT: &str = "web-signout";

fn revocation(secret: &str) -> Revocation {
    let url = format!("{}/token/revocation", issuer());
    Revocation::new(&url, &token_client(), ClientAuth::basic(CLIENT, secret)).unwrap()
}

#[tokio::test]
async fn signing_out_revokes_the_grant_at_the_server() {
    let auth = ClientAuth::basic(CLIENT, "web-signout-secret");
    let grant = AuthorizationCode::new(
        token_client(),
        auth,
        &format!("{}/auth", issuer()),
        REDIRECT,
    )
    .unwrap()
    .scopes(["api:read"])
    .issuer(issuer());
    let cache = TokenCache::new(grant.clone());
    let signed_in = cache.seed(authorize(&grant).await).await.unwrap();
    let access = signed_in.token().access_token().expose().to_owned();
    assert_eq!(status_with(&access, "/read").await, StatusCode::OK);

    revocation("web-signout-secret")
        .revoke_token(signed_in.token())
        .await
        .unwrap();

    assert_eq!(
        status_with(&access, "/read").await,
        StatusCode::UNAUTHORIZED
    );
    let error = cache.refresh().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ReauthorizationRequired);
    assert_eq!(error.oauth_error(), Some("invalid_grant"));
    assert_eq!(counter(CLIENT, "wrong_auth_method").await, 0);
}

#[tokio::test]
async fn a_token_the_server_never_issued_counts_as_revoked() {
    revocation("web-signout-secret")
        .revoke(&Secret::new("never-issued"), TokenTypeHint::RefreshToken)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_secret_is_refused_as_invalid_client() {
    let error = revocation("wrong-secret")
        .revoke(&Secret::new("never-issued"), TokenTypeHint::AccessToken)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_client"));
    assert!(!error.to_string().contains("wrong-secret"), "{error}");
}
