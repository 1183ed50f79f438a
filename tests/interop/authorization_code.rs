//! The authorization-code flow with PKCE, driven without a person, and how the server refuses
//! what is wrong.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::oneshot,
};
use tower::{ServiceExt, service_fn};
use tower_oauth2::{
    ClientAuth, ErrorKind, TokenCache, TokenClient, TokenRequest,
    grant::{AuthorizationCode, Callback, LoopbackRedirect, PendingAuthorization, PkceVerifier},
};

use crate::support::{
    REDIRECT, api, authorize, counter, follow, get, http, issuer, native_grant, sign_in,
    token_client,
};

#[tokio::test]
async fn a_public_client_signs_in_with_pkce_and_opens_the_api() {
    let grant = native_grant("native-pkce", &["openid", "api:read"]);
    let token = authorize(&grant).await;
    assert!(token.refresh_token().is_some());
    assert!(token.id_token().is_some());
    assert_eq!(token.scopes().unwrap(), ["api:read"]);

    let cache = TokenCache::new(grant);
    cache.seed(token).await.unwrap();
    let (status, body) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""sub":"user-1""#), "{body}");
}

#[tokio::test]
async fn a_confidential_client_exchanges_and_refreshes_with_http_basic() {
    let grant = AuthorizationCode::new(
        token_client(),
        ClientAuth::basic("web-basic", "web-basic-secret"),
        &format!("{}/auth", issuer()),
        REDIRECT,
    )
    .unwrap()
    .scopes(["api:read"]);
    let cache = TokenCache::new(grant.clone());
    let first = cache.seed(authorize(&grant).await).await.unwrap();
    let renewed = cache.refresh().await.unwrap();
    assert_ne!(renewed.token().access_token(), first.token().access_token());
    let (status, _) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(counter("web-basic", "success:refresh_token").await, 1);
    assert_eq!(counter("web-basic", "wrong_auth_method").await, 0);
}

#[tokio::test]
async fn a_wrong_verifier_is_refused_as_invalid_grant() {
    let grant = native_grant("native-pkce", &["api:read"]);
    let pending = grant.authorize_url();
    let callback = sign_in(pending.url()).await;
    let wrong = PendingAuthorization::resume(pending.state(), PkceVerifier::generate());

    let error = grant.exchange(wrong, callback).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_grant"));
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
}

#[tokio::test]
async fn a_missing_verifier_is_refused() {
    let grant = native_grant("native-pkce", &["api:read"]);
    let pending = grant.authorize_url();
    let code = code_from(&follow(pending.url()).await);
    // What a client without PKCE would send.
    let request = TokenRequest::new("authorization_code")
        .secret_param("code", code)
        .param("redirect_uri", REDIRECT);
    let error = token_client()
        .request(&request, &ClientAuth::none("native-pkce"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_grant"));
}

#[tokio::test]
async fn a_state_mismatch_sends_nothing_and_leaves_the_code_usable() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&sent);
    let inner = http();
    let counting = service_fn(move |request: Request<Full<Bytes>>| {
        counted.fetch_add(1, Ordering::SeqCst);
        inner.clone().oneshot(request)
    });
    let endpoint = TokenClient::new(&format!("{}/token", issuer()), counting).unwrap();
    let grant = AuthorizationCode::new(
        endpoint,
        ClientAuth::none("native-pkce"),
        &format!("{}/auth", issuer()),
        REDIRECT,
    )
    .unwrap()
    .scopes(["api:read"]);
    let pending = grant.authorize_url();
    let (state, verifier) = (
        pending.state().to_owned(),
        pending.verifier().expose().to_owned(),
    );
    let code = code_from(&follow(pending.url()).await);

    let forged = Callback::new(code.clone(), "forged");
    let error = grant.exchange(pending, forged).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StateMismatch);
    assert_eq!(sent.load(Ordering::SeqCst), 0);

    // Codes are single use: that this one still works shows the server never saw it.
    let resumed =
        PendingAuthorization::resume(state.clone(), PkceVerifier::from_string(verifier).unwrap());
    let token = grant
        .exchange(resumed, Callback::new(code, state))
        .await
        .unwrap();
    assert!(token.refresh_token().is_some());
    assert_eq!(sent.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_response_from_another_issuer_sends_nothing_and_leaves_the_code_usable() {
    let expects_another = native_grant("native-pkce", &["api:read"]).issuer("https://other.test");
    let pending = expects_another.authorize_url();
    let (state, verifier) = (
        pending.state().to_owned(),
        pending.verifier().expose().to_owned(),
    );
    let back = follow(pending.url()).await;
    let query = back.query().unwrap().to_owned();
    let callback = Callback::from_query(&query).unwrap();
    assert_eq!(callback.issuer(), Some(issuer().as_str()));

    let error = expects_another
        .exchange(pending, callback)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::IssuerMismatch);

    // Codes are single use: that this one still works shows the server never saw it.
    let resumed = PendingAuthorization::resume(state, PkceVerifier::from_string(verifier).unwrap());
    let token = native_grant("native-pkce", &["api:read"])
        .exchange(resumed, Callback::from_query(&query).unwrap())
        .await
        .unwrap();
    assert!(token.refresh_token().is_some());
}

#[tokio::test]
async fn a_replayed_code_is_refused() {
    let grant = native_grant("native-pkce", &["api:read"]);
    let pending = grant.authorize_url();
    let (state, verifier) = (
        pending.state().to_owned(),
        pending.verifier().expose().to_owned(),
    );
    let back = follow(pending.url()).await;
    let query = back.query().unwrap().to_owned();
    grant
        .exchange(pending, Callback::from_query(&query).unwrap())
        .await
        .unwrap();

    let again = PendingAuthorization::resume(state, PkceVerifier::from_string(verifier).unwrap());
    let error = grant
        .exchange(again, Callback::from_query(&query).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_grant"));
}

#[tokio::test]
async fn the_loopback_receiver_completes_a_real_sign_in() {
    let grant = native_grant("native-loopback", &["openid", "api:read"]);
    let (report, page) = oneshot::channel();
    let report = std::sync::Mutex::new(Some(report));
    let token = LoopbackRedirect::new()
        // If the browser task fails, fail soon rather than after the default five minutes.
        .timeout(Duration::from_secs(30))
        .on_url(move |url| {
            let url = url.to_owned();
            let report = report.lock().unwrap().take().unwrap();
            // The browser: the server's redirects, then the app's loopback port.
            tokio::spawn(async move {
                let back = follow(&url).await;
                let _ = report.send(fetch_page(&back).await);
            });
        })
        .authorize(&grant)
        .await
        .unwrap();
    assert!(token.refresh_token().is_some());

    let page = page.await.unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("close this window"), "{page}");
    let cache = TokenCache::new(grant);
    cache.seed(token).await.unwrap();
    let (status, _) = get(&api(&cache), "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

/// The `code` of the redirect back to the app.
fn code_from(back: &url::Url) -> String {
    let (_, code) = back.query_pairs().find(|(name, _)| name == "code").unwrap();
    code.into_owned()
}

async fn fetch_page(url: &url::Url) -> String {
    let authority = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let mut stream = TcpStream::connect(authority).await.unwrap();
    let target = format!("{}?{}", url.path(), url.query().unwrap_or(""));
    let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).await.unwrap();
    page
}
