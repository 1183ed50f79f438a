//! Credentials that change: secrets and external client assertions from a file or a function,
//! read on the token-request path only, taken up from the next token request when they
//! change, and read once more when the server answers `invalid_client`.

mod common;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tower::{Layer, ServiceExt};
use tower_oauth2::{
    BoxError, ClientAuth, CredentialSource, Error, ErrorKind, OAuth2Layer, Revocation, Secret,
    Token, TokenCache, TokenClient, TokenRequest, TokenTypeHint, grant::ClientCredentials,
};

use common::AuthServerExt;
use tower_oauth2_testkit::{AuthServer, Body, get};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A JWT for `sub` that expires `lifetime` seconds from now (or ago, when negative), with a
/// signature nobody checks: the fake server takes external assertions on trust.
fn assertion(sub: &str, lifetime: i64, marker: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let payload = format!(
        r#"{{"iss":"https://issuer.example","sub":"{sub}","exp":{},"marker":"{marker}"}}"#,
        now + lifetime
    );
    format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2VudGluZWwtc2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(payload)
    )
}

fn replace(path: &Path, contents: &str) {
    // As secret managers do: a new file renamed over the old one.
    let next = path.with_extension("next");
    std::fs::write(&next, contents).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// A client-credentials token request through `client` as `auth`.
async fn client_credentials(client: &TokenClient, auth: &ClientAuth) -> Result<Token, Error> {
    client
        .request(&TokenRequest::new("client_credentials"), auth)
        .await
}

fn cache_for(issuer: &AuthServer, auth: ClientAuth) -> TokenCache {
    TokenCache::new(ClientCredentials::new(issuer.token_client(), auth))
}

#[tokio::test]
async fn an_external_assertion_is_sent_with_its_type_and_the_client_id() {
    let issuer = AuthServer::new().external_assertion_client("workload");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let jwt = assertion("workload", 600, "first");
    std::fs::write(&path, format!("{jwt}\n")).unwrap();
    let auth = ClientAuth::client_assertion("workload", CredentialSource::file(&path));

    cache_for(&issuer, auth).token().await.unwrap();

    let form = &issuer.received()[0].form;
    assert_eq!(form["client_assertion"], jwt);
    assert_eq!(form["client_assertion_type"], ASSERTION_TYPE);
    assert_eq!(form["client_id"], "workload");
    assert!(issuer.received()[0].authorization.is_none());
}

#[tokio::test]
async fn the_revocation_endpoint_gets_the_external_assertion_too() {
    let issuer = AuthServer::new().external_assertion_client("workload");
    let jwt = assertion("workload", 600, "revoke");
    let auth = ClientAuth::client_assertion("workload", jwt.as_str());
    let revocation = Revocation::new(
        "https://auth.test/revoke",
        &issuer.revocation_client(),
        auth,
    )
    .unwrap();

    revocation
        .revoke(&Secret::new("token-1"), TokenTypeHint::AccessToken)
        .await
        .unwrap();

    let form = &issuer.received()[0].form;
    assert_eq!(form["client_assertion"], jwt);
    assert_eq!(form["client_assertion_type"], ASSERTION_TYPE);
}

#[tokio::test]
async fn an_assertion_file_replaced_between_token_requests_is_used_from_the_next_one() {
    let issuer = AuthServer::new().external_assertion_client("workload");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let (first, second) = (
        assertion("workload", 600, "first"),
        assertion("workload", 600, "second"),
    );
    std::fs::write(&path, &first).unwrap();
    let cache = cache_for(
        &issuer,
        ClientAuth::client_assertion("workload", CredentialSource::file(&path)),
    );

    cache.token().await.unwrap();
    replace(&path, &second);
    cache.refresh().await.unwrap();

    let sent: Vec<String> = issuer
        .received()
        .iter()
        .map(|received| received.form["client_assertion"].clone())
        .collect();
    assert_eq!(sent, [first, second]);
}

#[tokio::test]
async fn a_source_is_read_once_per_token_request_and_never_per_api_request() {
    let issuer = AuthServer::new().client("app", "s3cret");
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&reads);
    let source = CredentialSource::from_fn(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, BoxError>("s3cret") }
    });
    let cache = cache_for(&issuer, ClientAuth::basic("app", source));
    let client = OAuth2Layer::new(cache.clone()).layer(issuer.api::<Body>());

    for _ in 0..20 {
        client.clone().oneshot(get("/")).await.unwrap();
    }
    assert_eq!((issuer.grants(), reads.load(Ordering::SeqCst)), (1, 1));
    cache.refresh().await.unwrap();
    assert_eq!((issuer.grants(), reads.load(Ordering::SeqCst)), (2, 2));
}

#[tokio::test]
async fn an_expired_assertion_file_is_refused_before_anything_is_sent() {
    let issuer = AuthServer::new().external_assertion_client("workload");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let jwt = assertion("workload", -60, "expired");
    std::fs::write(&path, &jwt).unwrap();
    let cache = cache_for(
        &issuer,
        ClientAuth::client_assertion("workload", CredentialSource::file(&path)),
    );

    let error = cache.token().await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Config);
    assert_eq!(issuer.token_requests_started(), 0);
    let message = format!("{error} {error:?}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("expired"), "{message}");
    for part in jwt.split('.') {
        assert!(!message.contains(part), "{message}");
    }
}

#[tokio::test]
async fn an_assertion_that_expires_within_seconds_is_read_again() {
    let issuer = AuthServer::new().external_assertion_client("workload");
    let (soon, fresh) = (
        assertion("workload", 2, "soon"),
        assertion("workload", 600, "fresh"),
    );
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&reads);
    let source = CredentialSource::from_fn(move || {
        let value = if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            soon.clone()
        } else {
            fresh.clone()
        };
        async move { Ok::<_, BoxError>(value) }
    });
    let cache = cache_for(&issuer, ClientAuth::client_assertion("workload", source));

    cache.token().await.unwrap();

    assert_eq!(reads.load(Ordering::SeqCst), 2);
    let sent = issuer.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].form["client_assertion"],
        assertion_marked(&sent[0], "fresh")
    );
}

fn assertion_marked(received: &tower_oauth2_testkit::Received, marker: &str) -> String {
    let jwt = &received.form["client_assertion"];
    let payload = URL_SAFE_NO_PAD
        .decode(jwt.split('.').nth(1).unwrap())
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(claims["marker"], marker);
    jwt.clone()
}

#[tokio::test]
async fn a_rotated_secret_file_is_used_from_the_next_token_request() {
    let issuer = AuthServer::new().client("app", "first-secret");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "first-secret\n").unwrap();
    let cache = cache_for(
        &issuer,
        ClientAuth::post("app", CredentialSource::file(&path)),
    );
    cache.token().await.unwrap();

    replace(&path, "second-secret");
    issuer.rotate_client_secret("app", "second-secret");
    cache.refresh().await.unwrap();

    let secrets: Vec<String> = issuer
        .received()
        .iter()
        .map(|received| received.form["client_secret"].clone())
        .collect();
    assert_eq!(secrets, ["first-secret", "second-secret"]);
}

#[tokio::test]
async fn invalid_client_with_a_changed_file_is_retried_once_and_succeeds() {
    let issuer = AuthServer::new()
        .client("app", "new-secret")
        .token_delay(Duration::from_millis(200));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "old-secret").unwrap();
    let auth = ClientAuth::basic("app", CredentialSource::file(&path));
    let client = issuer.token_client();
    let pending = tokio::spawn(async move { client_credentials(&client, &auth).await });
    // The file has been read once the request is at the server: it changes under it.
    while issuer.token_requests_started() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    replace(&path, "new-secret");

    let token = pending.await.unwrap().unwrap();

    assert_eq!(token.access_token().expose(), "token-2");
    assert_eq!(issuer.received().len(), 2);
}

#[tokio::test]
async fn a_secret_rotated_at_the_server_and_in_the_file_fails_only_between_the_two_changes() {
    let issuer = AuthServer::new().client("app", "one");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "one").unwrap();
    let source = CredentialSource::file(&path);
    let auth = ClientAuth::post("app", source.clone());
    let client = issuer.token_client();
    // Five token requests: how many failed, each failure checked to be invalid_client.
    let five = async || {
        let mut failed = 0;
        for _ in 0..5 {
            if let Err(error) = client_credentials(&client, &auth).await {
                assert_eq!(error.oauth_error(), Some("invalid_client"), "{error}");
                assert!(!error.to_string().contains("two"), "{error}");
                failed += 1;
            }
        }
        failed
    };

    assert_eq!(five().await, 0);
    // The server first: the old secret is refused until the file has the new one.
    issuer.rotate_client_secret("app", "two");
    assert_eq!(five().await, 5);
    replace(&path, "two");
    assert_eq!(five().await, 0);
    // The file first: the new secret is refused until the server has it.
    replace(&path, "three");
    assert_eq!(five().await, 5);
    issuer.rotate_client_secret("app", "three");
    assert_eq!(five().await, 0);

    // An unchanged file is never sent twice: one request per failed token request.
    assert_eq!(issuer.received().len(), 25);
    assert_eq!(source.reloads(), 2);
    assert_eq!(auth.credential_reloads(), 2);
}

#[tokio::test]
async fn invalid_client_with_an_unchanged_file_is_not_retried() {
    let issuer = AuthServer::new().client("app", "new-secret");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "old-secret").unwrap();
    let auth = ClientAuth::basic("app", CredentialSource::file(&path));

    let error = client_credentials(&issuer.token_client(), &auth)
        .await
        .unwrap_err();

    assert_eq!(error.oauth_error(), Some("invalid_client"));
    assert_eq!(issuer.received().len(), 1);
}

#[tokio::test]
async fn invalid_client_with_a_fixed_secret_reads_nothing_and_is_not_retried() {
    let issuer = AuthServer::new().client("app", "right");
    let auth = ClientAuth::basic("app", "wrong");

    let error = client_credentials(&issuer.token_client(), &auth)
        .await
        .unwrap_err();

    assert_eq!(error.oauth_error(), Some("invalid_client"));
    assert_eq!(issuer.received().len(), 1);
}

#[tokio::test]
async fn a_missing_or_oversized_secret_file_is_a_config_error_naming_the_path() {
    let issuer = AuthServer::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    let auth = ClientAuth::basic("app", CredentialSource::file(&path));

    let missing = client_credentials(&issuer.token_client(), &auth)
        .await
        .unwrap_err();
    std::fs::write(&path, "sentinel".repeat(1024)).unwrap();
    let oversized = client_credentials(&issuer.token_client(), &auth)
        .await
        .unwrap_err();

    for error in [missing, oversized] {
        assert_eq!(error.kind(), ErrorKind::Config);
        let message = format!("{error} {error:?}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(!message.contains("sentinel"), "{message}");
    }
    assert_eq!(issuer.token_requests_started(), 0);
}

#[test]
fn debug_of_sources_and_client_auth_shows_no_secret() {
    let jwt = assertion("workload", 600, "sentinel");
    let shown = [
        format!("{:?}", CredentialSource::fixed("sentinel-secret")),
        format!("{:?}", ClientAuth::basic("app", "sentinel-secret")),
        format!("{:?}", ClientAuth::client_assertion("app", jwt.as_str())),
        format!(
            "{:?}",
            ClientAuth::post(
                "app",
                CredentialSource::from_fn(|| async { Ok::<_, BoxError>("sentinel-secret") })
            )
        ),
    ];
    for text in shown {
        assert!(!text.contains("sentinel"), "{text}");
        for part in jwt.split('.') {
            assert!(!text.contains(part), "{text}");
        }
    }
    let file = format!(
        "{:?}",
        ClientAuth::basic("app", CredentialSource::file("/run/s"))
    );
    assert!(file.contains("/run/s"), "{file}");
}

#[cfg(feature = "dpop")]
#[tokio::test]
async fn a_dpop_nonce_resend_reads_the_assertion_source_again() {
    let issuer = AuthServer::new()
        .dpop()
        .dpop_nonces(true, false)
        .external_assertion_client("workload");
    let reads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&reads);
    let source = CredentialSource::from_fn(move || {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        let value = assertion("workload", 600, &format!("read-{n}"));
        async move { Ok::<_, BoxError>(value) }
    });
    let key = tower_oauth2::DpopKey::generate().unwrap();
    let endpoint = issuer.token_client().dpop(&key);
    let grant = ClientCredentials::new(endpoint, ClientAuth::client_assertion("workload", source));

    TokenCache::new(grant).token().await.unwrap();

    let sent = issuer.received();
    assert_eq!((sent.len(), reads.load(Ordering::SeqCst)), (2, 2));
    assertion_marked(&sent[0], "read-0");
    assertion_marked(&sent[1], "read-1");
}
