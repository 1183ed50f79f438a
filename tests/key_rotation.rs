//! Signing keys that change under `private_key_jwt`: a key file replaced between token
//! requests signs the next one with its new `kid`; `invalid_client` reads the key once more
//! and resends once only if it changed; a bad file sends nothing. The fake server holds the
//! client's keys by `kid` and says which one each assertion verified with.

mod common;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tower_oauth2::{
    ClientAuth, Error, ErrorKind, KeySource, SigningKey, Token, TokenCache, TokenRequest,
    grant::ClientCredentials,
};

use common::AuthServerExt;
use tower_oauth2_testkit::{AuthServer, keys};

/// The first key: RSA in PEM, named by the configured key id.
const OLD_KID: &str = "old-rsa";
/// The second: EC P-256 as a JWK, whose own `kid` is this.
const NEW_KID: &str = keys::KEY_ID;

fn replace(path: &Path, contents: &str) {
    // As secret managers do: a new file renamed over the old one.
    let next = path.with_extension("next");
    std::fs::write(&next, contents).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// A key file holding the old key, and a source reading it with the old key id.
fn old_key_file() -> (tempfile::TempDir, std::path::PathBuf, KeySource) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client-key");
    std::fs::write(&path, keys::RSA_PRIVATE_PEM).unwrap();
    let source = KeySource::file(&path).with_key_id(OLD_KID);
    (dir, path, source)
}

async fn token_request(issuer: &AuthServer, auth: &ClientAuth) -> Result<Token, Error> {
    issuer
        .token_client()
        .request(&TokenRequest::new("client_credentials"), auth)
        .await
}

fn kid_sent(received: &tower_oauth2_testkit::Received) -> Option<String> {
    jsonwebtoken::decode_header(&received.form["client_assertion"])
        .unwrap()
        .kid
}

#[tokio::test]
async fn a_key_file_replaced_between_token_requests_signs_the_next_with_the_new_key_and_kid() {
    let issuer = AuthServer::new().assertion_client_keys(
        "app",
        &[
            (OLD_KID, keys::RSA_PUBLIC_PEM),
            (NEW_KID, keys::EC_PUBLIC_PEM),
        ],
    );
    let (_dir, path, source) = old_key_file();
    let auth = ClientAuth::private_key_jwt("app", source.clone());

    token_request(&issuer, &auth).await.unwrap();
    replace(&path, keys::EC_PRIVATE_JWK);
    token_request(&issuer, &auth).await.unwrap();

    // The server checked each signature with the public key of the kid it named.
    assert_eq!(
        issuer.verified_key_ids(),
        [Some(OLD_KID.to_owned()), Some(NEW_KID.to_owned())]
    );
    let second = &issuer.received()[1];
    let header = jsonwebtoken::decode_header(&second.form["client_assertion"]).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(source.reloads(), 1);
    assert_eq!(
        auth.credential_reloads(),
        1,
        "the client counts its key's reloads"
    );
}

#[tokio::test]
async fn invalid_client_after_rotation_at_the_server_reads_the_key_again_and_resends_once() {
    // The server already holds only the new key; the client's file changes while its first
    // request, signed with the old key, is at the server.
    let issuer = AuthServer::new()
        .assertion_client_keys("app", &[(NEW_KID, keys::EC_PUBLIC_PEM)])
        .token_delay(Duration::from_millis(200));
    let (_dir, path, source) = old_key_file();
    let auth = ClientAuth::private_key_jwt("app", source.clone());
    let pending = {
        let issuer = issuer.clone();
        tokio::spawn(async move { token_request(&issuer, &auth).await })
    };
    while issuer.token_requests_started() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    replace(&path, keys::EC_PRIVATE_JWK);

    let token = pending.await.unwrap().unwrap();

    assert_eq!(token.access_token().expose(), "token-2");
    let sent: Vec<_> = issuer.received().iter().map(kid_sent).collect();
    assert_eq!(sent, [Some(OLD_KID.to_owned()), Some(NEW_KID.to_owned())]);
    assert_eq!(issuer.verified_key_ids(), [Some(NEW_KID.to_owned())]);
    assert_eq!(source.reloads(), 1);
}

#[tokio::test]
async fn invalid_client_with_an_unchanged_key_file_is_not_resent() {
    let issuer = AuthServer::new().assertion_client_keys("app", &[(NEW_KID, keys::EC_PUBLIC_PEM)]);
    let (_dir, _path, source) = old_key_file();
    let auth = ClientAuth::private_key_jwt("app", source.clone());

    let error = token_request(&issuer, &auth).await.unwrap_err();

    assert_eq!(error.oauth_error(), Some("invalid_client"));
    assert_eq!(issuer.received().len(), 1);
    assert_eq!(source.reloads(), 0);
}

#[tokio::test]
async fn invalid_client_with_a_fixed_key_is_not_resent() {
    let issuer = AuthServer::new().assertion_client_keys("app", &[(NEW_KID, keys::EC_PUBLIC_PEM)]);
    let key = SigningKey::from_pkcs8_pem(keys::RSA_PRIVATE_PEM).unwrap();
    let auth = ClientAuth::private_key_jwt("app", key);

    let error = token_request(&issuer, &auth).await.unwrap_err();

    assert_eq!(error.oauth_error(), Some("invalid_client"));
    assert_eq!(issuer.received().len(), 1);
}

#[tokio::test]
async fn a_bad_key_file_is_a_config_error_naming_the_path_and_nothing_is_sent() {
    let issuer = AuthServer::new().assertion_client_keys("app", &[(OLD_KID, keys::RSA_PUBLIC_PEM)]);
    let (_dir, path, source) = old_key_file();
    let auth = ClientAuth::private_key_jwt("app", source);
    let cache = TokenCache::new(ClientCredentials::new(issuer.token_client(), auth));
    cache.token().await.unwrap();

    for bad in [
        "-----BEGIN PRIVATE KEY-----\nc2VudGluZWwta2V5\n-----END PRIVATE KEY-----\n".to_owned(),
        r#"{"kty":"RSA","kid":"sentinel-kid","n":"c2VudGluZWwta2V5"}"#.to_owned(),
        String::new(),
        "sentinel-key ".repeat(6000),
    ] {
        replace(&path, &bad);
        let error = cache.refresh().await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config, "{error}");
        let message = format!("{error} {error:?}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            !message.contains("c2VudGluZWw") && !message.contains("sentinel"),
            "{message}"
        );
    }
    assert_eq!(issuer.token_requests_started(), 1);
}

#[tokio::test]
async fn a_key_is_read_once_per_token_request_and_never_per_api_request() {
    use tower::{Layer, ServiceExt};
    use tower_oauth2::OAuth2Layer;
    use tower_oauth2_testkit::{Body, get};

    let issuer = AuthServer::new().assertion_client_keys("app", &[(NEW_KID, keys::EC_PUBLIC_PEM)]);
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&reads);
    let source = KeySource::from_fn(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { SigningKey::from_jwk(keys::EC_PRIVATE_JWK) }
    });
    let auth = ClientAuth::private_key_jwt("app", source.clone());
    let cache = TokenCache::new(ClientCredentials::new(issuer.token_client(), auth));
    let client = OAuth2Layer::new(cache.clone()).layer(issuer.api::<Body>());

    for _ in 0..20 {
        client.clone().oneshot(get("/")).await.unwrap();
    }
    assert_eq!((issuer.grants(), reads.load(Ordering::SeqCst)), (1, 1));
    cache.refresh().await.unwrap();
    assert_eq!((issuer.grants(), reads.load(Ordering::SeqCst)), (2, 2));
    // Parsed anew by the function each time, the same key is no reload.
    assert_eq!(source.reloads(), 0);
}

#[cfg(feature = "dpop")]
#[tokio::test]
async fn a_dpop_nonce_resend_signs_again_with_the_key_already_read() {
    let issuer = AuthServer::new()
        .dpop()
        .dpop_nonces(true, false)
        .assertion_client_keys("app", &[(NEW_KID, keys::EC_PUBLIC_PEM)]);
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&reads);
    let source = KeySource::from_fn(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { SigningKey::from_jwk(keys::EC_PRIVATE_JWK) }
    });
    let key = tower_oauth2::DpopKey::generate().unwrap();
    let endpoint = issuer.token_client().dpop(&key);
    let grant = ClientCredentials::new(endpoint, ClientAuth::private_key_jwt("app", source));

    TokenCache::new(grant).token().await.unwrap();

    let sent = issuer.received();
    assert_eq!((sent.len(), reads.load(Ordering::SeqCst)), (2, 1));
    // Each request carried an assertion of its own (a `jti` is good for one use).
    assert_ne!(
        sent[0].form["client_assertion"],
        sent[1].form["client_assertion"]
    );
}
