//! client_secret_jwt and private_key_jwt (RFC 7523 section 2.2) against oidc-provider, which
//! checks signature, `iss`, `aud`, `exp` and each `jti` once, and a server pre-check that the
//! client used the method it is registered for.
//!
//! oidc-provider 9 accepts as `aud` the issuer, the token endpoint URL or the URL of the
//! endpoint the assertion is posted to; the crate's default (the token endpoint URL) and the
//! issuer both pass, anything else is `invalid_client`.

use std::sync::{Arc, Mutex};

use http::StatusCode;
use tower_oauth2::{
    ClientAuth, ErrorKind, SigningAlgorithm, SigningKey, TokenCache, TokenClient,
    grant::ClientCredentials,
};
use tower_oauth2_testkit::keys;

use crate::support::{api, get, issuer, post_token_form, recording, token_client};

const SECRET: &str = "cc-secret-jwt-secret-of-32-bytes-or-more";

fn grant(auth: ClientAuth) -> ClientCredentials {
    ClientCredentials::new(token_client(), auth).scopes(["api:read"])
}

async fn opens_the_api(auth: ClientAuth, client_id: &str) {
    let cache = TokenCache::new(grant(auth));
    let (status, body) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains(&format!(r#""client_id":"{client_id}""#)),
        "{body}"
    );
}

#[tokio::test]
async fn client_secret_jwt_gets_a_token_that_opens_the_api() {
    let auth = ClientAuth::client_secret_jwt("cc-secret-jwt", SECRET).unwrap();
    opens_the_api(auth, "cc-secret-jwt").await;
}

#[tokio::test]
async fn private_key_jwt_gets_tokens_with_rsa_ec_and_ed25519_keys_from_pem_and_jwk() {
    let cases = [
        (
            "cc-key-rsa",
            SigningKey::from_pkcs8_pem(keys::RSA_PRIVATE_PEM).unwrap(),
        ),
        (
            "cc-key-rsa",
            SigningKey::from_pkcs8_pem(keys::RSA_PRIVATE_PEM)
                .unwrap()
                .with_algorithm(SigningAlgorithm::Ps256)
                .unwrap(),
        ),
        (
            "cc-key-ec",
            SigningKey::from_jwk(keys::EC_PRIVATE_JWK).unwrap(),
        ),
        (
            "cc-key-ed",
            SigningKey::from_pkcs8_pem(keys::ED_PRIVATE_PEM).unwrap(),
        ),
    ];
    for (client_id, key) in cases {
        let key = key.with_key_id(keys::KEY_ID);
        opens_the_api(ClientAuth::private_key_jwt(client_id, key), client_id).await;
    }
}

#[tokio::test]
async fn the_issuer_as_audience_is_accepted_too() {
    let key = SigningKey::from_pkcs8_pem(keys::EC_PRIVATE_PEM).unwrap();
    let auth = ClientAuth::private_key_jwt("cc-key-ec", key).assertion_audience(issuer());
    opens_the_api(auth, "cc-key-ec").await;
}

async fn refused(auth: ClientAuth) -> tower_oauth2::Error {
    let error = TokenCache::new(grant(auth)).token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_client"), "{error}");
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    error
}

#[tokio::test]
async fn the_server_refuses_an_assertion_signed_with_another_key() {
    let key = SigningKey::from_pkcs8_pem(keys::OTHER_RSA_PRIVATE_PEM).unwrap();
    refused(ClientAuth::private_key_jwt("cc-key-rsa", key)).await;
    let auth = ClientAuth::client_secret_jwt("cc-secret-jwt", "sentinel-wrong-secret-0123456789ab")
        .unwrap();
    let error = refused(auth).await;
    assert!(!format!("{error} {error:?}").contains("sentinel"));
}

#[tokio::test]
async fn the_server_refuses_an_assertion_for_another_audience() {
    let key = SigningKey::from_pkcs8_pem(keys::RSA_PRIVATE_PEM).unwrap();
    let auth = ClientAuth::private_key_jwt("cc-key-rsa", key)
        .assertion_audience("https://elsewhere.example/token");
    refused(auth).await;
}

#[tokio::test]
async fn the_server_refuses_a_replayed_assertion_so_each_request_needs_a_new_one() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let endpoint =
        TokenClient::new(&format!("{}/token", issuer()), recording(log.clone())).unwrap();
    let key = SigningKey::from_pkcs8_pem(keys::ED_PRIVATE_PEM).unwrap();
    let auth = ClientAuth::private_key_jwt("cc-key-ed", key);
    let cache = TokenCache::new(ClientCredentials::new(endpoint, auth).scopes(["api:read"]));
    cache.token().await.unwrap();
    cache.refresh().await.unwrap();
    let sent = log.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0], sent[1], "two requests carried the same assertion");

    let (status, body) = post_token_form(sent[0].clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("invalid_client"), "{body}");
}

#[tokio::test]
async fn the_server_refuses_the_secret_method_for_a_key_client() {
    // What makes the tests above proof that the crate sends the configured method.
    let auth = ClientAuth::client_secret_jwt("cc-key-rsa", SECRET).unwrap();
    let error = refused(auth).await;
    assert!(
        error.description().unwrap().contains("private_key_jwt"),
        "{error}"
    );
}
