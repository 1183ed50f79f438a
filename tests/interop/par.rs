//! Pushed authorization requests (RFC 9126) against oidc-provider: its PAR endpoint takes the
//! request with the client's authentication (a secret, an assertion, a certificate) and
//! answers a `request_uri`; `par-required` is registered with
//! `require_pushed_authorization_requests`, so the server refuses its requests that were not
//! pushed.

use http::StatusCode;
use tower::ServiceBuilder;
use tower_oauth2::{
    ClientAuth, Discovery, ErrorKind, OAuth2Layer, SigningKey, TokenCache, TokenClient,
    grant::{AuthorizationCode, Callback},
};
use tower_oauth2_testkit::keys;

use crate::{
    mtls::{Certificate, api_tls_url, https_client, mtls_discovery},
    support::{REDIRECT, api, follow, get, http, issuer, sign_in, token_client},
};

/// The server's PAR endpoint, from its metadata.
async fn par_endpoint() -> String {
    let discovery = Discovery::new(&issuer(), http()).unwrap();
    let metadata = discovery.metadata().await.unwrap();
    assert!(!metadata.require_pushed_authorization_requests());
    metadata
        .pushed_authorization_request_endpoint()
        .unwrap()
        .to_owned()
}

async fn pushing(auth: ClientAuth) -> AuthorizationCode {
    AuthorizationCode::new(
        token_client(),
        auth,
        &format!("{}/auth", issuer()),
        REDIRECT,
    )
    .unwrap()
    .scopes(["openid", "api:read"])
    .issuer(issuer())
    .pushed_authorization_request_endpoint(&par_endpoint().await)
    .unwrap()
}

/// Pushes, signs in with the URL that carries only the `request_uri`, exchanges the code and
/// calls the API with the token.
async fn signs_in(grant: AuthorizationCode) {
    let pending = grant.authorization_request().await.unwrap();
    let url = url::Url::parse(pending.url()).unwrap();
    let names: Vec<String> = url
        .query_pairs()
        .map(|(name, _)| name.into_owned())
        .collect();
    assert_eq!(names, ["client_id", "request_uri"], "{url}");
    assert!(pending.expires_in().is_some());

    let callback = sign_in(pending.url()).await;
    let token = grant.exchange(pending, callback).await.unwrap();
    let cache = TokenCache::new(grant);
    cache.seed(token).await.unwrap();
    let (status, body) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""sub":"user-1""#), "{body}");
}

#[tokio::test]
async fn a_client_that_requires_pushed_requests_signs_in_through_one() {
    signs_in(pushing(ClientAuth::none("par-required")).await).await;
}

#[tokio::test]
async fn the_server_refuses_a_request_that_was_not_pushed_for_a_client_that_requires_it() {
    let grant = pushing(ClientAuth::none("par-required")).await;
    // `authorize_url` never pushes: every parameter rides in the URL.
    let pending = grant.authorize_url();
    let back = follow(pending.url()).await;
    let callback = Callback::from_query(back.query().unwrap()).unwrap();
    let error = callback
        .error()
        .expect("the server redirects back an error");
    assert_eq!(error.oauth_error(), Some("invalid_request"), "{error}");
    // Believed only once its state and issuer are checked: they are the request's.
    let error = grant.exchange(pending, callback).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthorizationFailed);
    assert_eq!(error.oauth_error(), Some("invalid_request"));
}

#[tokio::test]
async fn a_confidential_client_pushes_with_http_basic() {
    signs_in(pushing(ClientAuth::basic("par-basic", "par-basic-secret")).await).await;
}

#[tokio::test]
async fn the_server_refuses_a_push_with_a_wrong_client_secret() {
    let grant = pushing(ClientAuth::basic("par-basic", "sentinel-wrong-secret")).await;
    let error = grant.authorization_request().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_client"), "{error}");
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    let shown = format!("{error} {error:?}");
    assert!(
        shown.starts_with("pushed authorization request endpoint rejected the request"),
        "{shown}"
    );
    assert!(!shown.contains("sentinel"), "{shown}");
}

#[tokio::test]
async fn a_client_pushes_with_a_private_key_jwt_assertion() {
    let key = SigningKey::from_pkcs8_pem(keys::EC_PRIVATE_PEM).unwrap();
    signs_in(pushing(ClientAuth::private_key_jwt("par-key", key)).await).await;
}

#[tokio::test]
async fn the_server_refuses_a_push_signed_with_another_key() {
    let key = SigningKey::from_pkcs8_pem(keys::ED_PRIVATE_PEM).unwrap();
    let grant = pushing(ClientAuth::private_key_jwt("par-key", key)).await;
    let error = grant.authorization_request().await.unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_client"), "{error}");
}

#[tokio::test]
async fn a_client_pushes_over_mutual_tls_and_gets_a_bound_token() {
    let http = https_client(Some(Certificate::Client));
    let discovery = mtls_discovery(&http);
    let metadata = discovery.metadata().await.unwrap();
    let par = metadata.pushed_authorization_request_endpoint().unwrap();
    assert!(par.starts_with("https://"), "{par}");
    let grant = AuthorizationCode::discover(
        &discovery,
        ClientAuth::tls_client_auth("mtls-web"),
        REDIRECT,
    )
    .await
    .unwrap()
    .scopes(["openid", "api:read"])
    .pushed_authorization_request_endpoint(par)
    .unwrap();

    let pending = grant.authorization_request().await.unwrap();
    let callback = sign_in(pending.url()).await;
    let token = grant.exchange(pending, callback).await.unwrap();
    let cache = TokenCache::new(grant);
    cache.seed(token).await.unwrap();
    let client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(cache.clone()))
        .service(http);
    let request = http::Request::get(api_tls_url("/read"))
        .body(http_body_util::Full::default())
        .unwrap();
    let response = tower::ServiceExt::oneshot(client, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Bound to the certificate: the same token over plain http is refused.
    let token = cache.token().await.unwrap();
    let access_token = token.token().access_token().expose();
    assert_eq!(
        crate::support::status_with(access_token, "/read").await,
        StatusCode::UNAUTHORIZED
    );
    // And the token endpoint it used was the alias, with the certificate.
    let endpoint = TokenClient::discover(&discovery).await.unwrap();
    assert!(endpoint.url().to_string().starts_with("https://"));
}
