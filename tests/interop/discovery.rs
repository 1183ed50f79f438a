//! Discovery against oidc-provider, which serves its metadata at both well-known URLs (RFC
//! 8414's and OpenID Connect's, the same document), and an issuer URL whose metadata, served by
//! the test server, names the real issuer instead.

use http::StatusCode;
use tower_oauth2::{
    ClientAuth, Discovery, ErrorKind, Revocation, TokenCache, TokenClient,
    grant::{AuthorizationCode, ClientCredentials},
};

use crate::support::{REDIRECT, api, api_url, authorize, get, http, issuer};

#[tokio::test]
async fn the_discovered_token_endpoint_issues_a_token_that_opens_the_api() {
    let discovery = Discovery::new(&issuer(), http()).unwrap();
    let metadata = discovery.metadata().await.unwrap();
    assert_eq!(metadata.issuer(), issuer());
    assert_eq!(
        metadata.token_endpoint(),
        Some(&*format!("{}/token", issuer()))
    );
    assert!(metadata.authorization_response_iss_parameter_supported());
    assert!(metadata.revocation_endpoint().is_some());
    assert!(
        metadata
            .token_endpoint_auth_methods_supported()
            .iter()
            .any(|method| method == "private_key_jwt")
    );

    let endpoint = TokenClient::discover(&discovery).await.unwrap();
    let auth = ClientAuth::basic("cc-discovery", "cc-discovery-secret");
    let cache = TokenCache::new(
        ClientCredentials::new(endpoint.clone(), auth.clone()).scopes(["api:read"]),
    );
    let (status, body) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    // The revocation endpoint it names works too.
    let revocation =
        Revocation::new(metadata.revocation_endpoint().unwrap(), &endpoint, auth).unwrap();
    let token = cache.token().await.unwrap();
    revocation.revoke_token(token.token()).await.unwrap();
}

#[tokio::test]
async fn an_issuer_whose_metadata_names_another_issuer_is_refused_before_any_token_request() {
    let mixup = api_url("/evil");
    let discovery = Discovery::new(&mixup, http()).unwrap();
    let error = TokenClient::discover(&discovery).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::IssuerMismatch);
    let message = error.to_string();
    assert!(
        message.contains("issuer") && message.contains(&issuer()),
        "{message}"
    );
    assert!(message.contains(&mixup), "{message}");
}

#[tokio::test]
async fn a_discovered_authorization_code_grant_signs_in_and_checks_the_issuer() {
    let discovery = Discovery::new(&issuer(), http()).unwrap();
    let grant =
        AuthorizationCode::discover(&discovery, ClientAuth::none("native-discovery"), REDIRECT)
            .await
            .unwrap()
            .scopes(["openid", "api:read"]);
    let token = authorize(&grant).await;
    let cache = TokenCache::new(grant.clone());
    cache.seed(token).await.unwrap();
    let (status, body) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");

    // The discovered issuer is the one `iss` must name: another is refused.
    let pending = grant.authorize_url();
    let callback = tower_oauth2::grant::Callback::new("code", pending.state().to_owned())
        .with_issuer("https://evil.example");
    let error = grant.exchange(pending, callback).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::IssuerMismatch);
}
