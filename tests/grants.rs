//! The authorization-code and refresh-token grants against a fake token endpoint that records
//! every request.

mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use http::StatusCode;
use tower_oauth2::{
    ClientAuth, ErrorKind, MemoryStore, Secret, Token, TokenCache,
    grant::{AuthorizationCode, Callback, PendingAuthorization, PkceVerifier, RefreshToken},
};

use common::AuthServerExt;
use tower_oauth2_testkit::AuthServer;

const AUTHORIZE: &str = "https://auth.test/authorize?tenant=t1";
const REDIRECT: &str = "https://app.test/callback";

fn public_grant(endpoint: &AuthServer) -> AuthorizationCode {
    AuthorizationCode::new(
        endpoint.token_client(),
        ClientAuth::none("app"),
        AUTHORIZE,
        REDIRECT,
    )
    .unwrap()
    .scopes(["openid", "orders:read"])
}

fn query(url: &str) -> HashMap<String, String> {
    let (_, query) = url.split_once('?').unwrap();
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// The callback the server would send for `pending`.
fn callback_for(pending: &PendingAuthorization, code: &str) -> Callback {
    Callback::new(code, pending.state())
}

#[test]
fn the_authorization_url_carries_every_parameter_and_an_s256_challenge() {
    let endpoint = AuthServer::new();
    let grant = public_grant(&endpoint).param("audience", "https://api.test");
    let pending = grant.authorize_url();
    assert!(
        pending
            .url()
            .starts_with("https://auth.test/authorize?tenant=t1&")
    );
    let params = query(pending.url());
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], "app");
    assert_eq!(params["redirect_uri"], REDIRECT);
    assert_eq!(params["scope"], "openid orders:read");
    assert_eq!(params["state"], pending.state());
    assert_eq!(params["code_challenge"], pending.verifier().challenge());
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["audience"], "https://api.test");
    assert_eq!(params["tenant"], "t1");
    assert_eq!(pending.state().len(), 43);
    assert!(!pending.url().contains(pending.verifier().expose()));
    assert!(endpoint.received().is_empty());
}

#[test]
fn each_authorization_url_has_its_own_state_and_verifier() {
    let grant = public_grant(&AuthServer::new());
    let first = grant.authorize_url();
    let second = grant.authorize_url();
    assert_ne!(first.state(), second.state());
    assert_ne!(first.verifier().expose(), second.verifier().expose());
}

#[test]
fn authorization_endpoints_must_be_https_unless_loopback() {
    let endpoint = AuthServer::new();
    let new = |authorize: &str, redirect: &str| {
        AuthorizationCode::new(
            endpoint.token_client(),
            ClientAuth::none("app"),
            authorize,
            redirect,
        )
    };
    assert!(new("http://127.0.0.1:8080/auth", "http://127.0.0.1/callback").is_ok());
    assert!(new("https://auth.test/auth", "com.example.app:/callback").is_ok());
    for (authorize, redirect) in [
        ("http://auth.test/auth", REDIRECT),
        ("not a url", REDIRECT),
        ("https://auth.test/auth", "/relative"),
        (
            "https://auth.test/auth",
            "https://app.test/callback#fragment",
        ),
    ] {
        let error = new(authorize, redirect).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config, "{authorize} {redirect}");
    }
}

#[tokio::test]
async fn a_public_client_exchanges_code_redirect_uri_client_id_and_verifier() {
    let endpoint = AuthServer::new();
    let grant = public_grant(&endpoint);
    let pending = grant.authorize_url();
    let verifier = pending.verifier().expose().to_owned();
    let callback = callback_for(&pending, "c0de");

    let token = grant.exchange(pending, callback).await.unwrap();
    assert_eq!(token.access_token().expose(), "token-1");
    assert_eq!(token.refresh_token().unwrap().expose(), "refresh-1");

    let sent = endpoint.received();
    assert_eq!(sent.len(), 1);
    let form = &sent[0].form;
    assert_eq!(form["grant_type"], "authorization_code");
    assert_eq!(form["code"], "c0de");
    assert_eq!(form["redirect_uri"], REDIRECT);
    assert_eq!(form["client_id"], "app");
    assert_eq!(form["code_verifier"], verifier);
    assert!(!form.contains_key("client_secret"));
    assert_eq!(sent[0].authorization, None);
}

#[tokio::test]
async fn a_confidential_client_exchanges_with_http_basic() {
    let endpoint = AuthServer::new();
    let grant = AuthorizationCode::new(
        endpoint.token_client(),
        ClientAuth::basic("web", "s3cret"),
        AUTHORIZE,
        REDIRECT,
    )
    .unwrap();
    let pending = grant.authorize_url();
    let callback = callback_for(&pending, "c0de");
    grant.exchange(pending, callback).await.unwrap();

    let sent = endpoint.received();
    assert!(
        sent[0]
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Basic ")
    );
    assert!(!sent[0].form.contains_key("client_secret"));
    assert!(sent[0].form.contains_key("code_verifier"));
}

#[tokio::test]
async fn a_state_mismatch_is_refused_before_anything_is_sent() {
    let endpoint = AuthServer::new();
    let grant = public_grant(&endpoint);
    let pending = grant.authorize_url();
    let forged = Callback::new("c0de", "another-state");

    let error = grant.exchange(pending, forged).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StateMismatch);
    assert!(endpoint.received().is_empty());
}

#[tokio::test]
async fn a_callback_from_the_expected_issuer_is_exchanged() {
    let endpoint = AuthServer::new();
    let grant = public_grant(&endpoint).issuer("https://auth.test");
    let pending = grant.authorize_url();
    let query = format!(
        "code=c0de&state={}&iss=https%3A%2F%2Fauth.test",
        pending.state()
    );
    let callback = Callback::from_query(&query).unwrap();

    grant.exchange(pending, callback).await.unwrap();
    assert_eq!(endpoint.received()[0].form["code"], "c0de");
}

#[tokio::test]
async fn a_callback_naming_another_issuer_is_refused_before_anything_is_sent() {
    let endpoint = AuthServer::new();
    let grant = public_grant(&endpoint).issuer("https://auth.test");
    // Only the exact identifier counts: a trailing slash or another case is another server.
    for other in [
        "https://evil.test",
        "https://auth.test/",
        "https://AUTH.test",
    ] {
        let pending = grant.authorize_url();
        let callback = callback_for(&pending, "c0de").with_issuer(other);

        let error = grant.exchange(pending, callback).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::IssuerMismatch, "{other}");
    }
    assert!(endpoint.received().is_empty());
}

#[tokio::test]
async fn a_callback_without_iss_is_refused_when_the_grant_expects_one() {
    let endpoint = AuthServer::new();
    let grant = public_grant(&endpoint).issuer("https://auth.test");
    let pending = grant.authorize_url();
    let callback = callback_for(&pending, "c0de");

    let error = grant.exchange(pending, callback).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::IssuerMismatch);
    assert!(endpoint.received().is_empty());
}

#[tokio::test]
async fn an_error_callback_gives_the_servers_error_once_its_state_matches() {
    let endpoint = AuthServer::new();
    let grant = public_grant(&endpoint);
    let pending = grant.authorize_url();
    let query = format!("error=access_denied&state={}", pending.state());
    let callback = Callback::from_query(&query).unwrap();

    let error = grant.exchange(pending, callback).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthorizationFailed);
    assert_eq!(error.oauth_error(), Some("access_denied"));

    let pending = grant.authorize_url();
    let forged = Callback::from_query("error=access_denied&state=forged").unwrap();
    let error = grant.exchange(pending, forged).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StateMismatch);
    assert!(endpoint.received().is_empty());
}

#[tokio::test]
async fn without_an_expected_issuer_the_callbacks_iss_is_not_checked() {
    let endpoint = AuthServer::new();
    let grant = public_grant(&endpoint);
    let pending = grant.authorize_url();
    let callback = callback_for(&pending, "c0de").with_issuer("https://anyone.test");

    grant.exchange(pending, callback).await.unwrap();
    assert_eq!(endpoint.received().len(), 1);
}

#[tokio::test]
async fn a_resumed_authorization_exchanges_with_the_grants_redirect_uri() {
    let endpoint = AuthServer::new();
    let grant = public_grant(&endpoint);
    // What a web app keeps in its session between the redirect and the callback.
    let (state, verifier) = {
        let pending = grant.authorize_url();
        (
            pending.state().to_owned(),
            pending.verifier().expose().to_owned(),
        )
    };
    let resumed = PendingAuthorization::resume(
        state.clone(),
        PkceVerifier::from_string(verifier.clone()).unwrap(),
    );
    grant
        .exchange(resumed, Callback::new("c0de", state))
        .await
        .unwrap();

    let form = &endpoint.received()[0].form;
    assert_eq!(form["redirect_uri"], REDIRECT);
    assert_eq!(form["code_verifier"], verifier);
}

#[tokio::test(start_paused = true)]
async fn renewals_use_the_newest_refresh_token_and_keep_it_when_the_server_omits_it() {
    let endpoint = AuthServer::new();
    let grant = public_grant(&endpoint);
    let cache = TokenCache::new(grant.clone());
    let pending = grant.authorize_url();
    let callback = callback_for(&pending, "c0de");
    let seeded = cache
        .seed(grant.exchange(pending, callback).await.unwrap())
        .await
        .unwrap();
    assert_eq!(seeded.token().access_token().expose(), "token-1");

    // Rotated: refresh-1 in, refresh-2 out.
    let renewed = cache.refresh().await.unwrap();
    assert_eq!(renewed.token().access_token().expose(), "token-2");
    // A server that does not rotate leaves the refresh token out.
    endpoint.answer_next(
        StatusCode::OK,
        r#"{"access_token":"token-3","token_type":"Bearer","expires_in":3600}"#,
    );
    let kept = cache.refresh().await.unwrap();
    assert_eq!(kept.token().refresh_token().unwrap().expose(), "refresh-2");
    cache.refresh().await.unwrap();

    let sent: Vec<_> = endpoint
        .received()
        .into_iter()
        .map(|sent| sent.form)
        .collect();
    assert_eq!(sent.len(), 4);
    for (form, refresh_token) in sent[1..]
        .iter()
        .zip(["refresh-1", "refresh-2", "refresh-2"])
    {
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["refresh_token"], refresh_token);
        assert_eq!(form["client_id"], "app");
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_refresh_token_renewal_requires_reauthorization() {
    let endpoint = AuthServer::new();
    let grant = public_grant(&endpoint);

    // Nothing seeded: the grant cannot start on its own.
    let cold = TokenCache::new(grant.clone()).token().await.unwrap_err();
    assert_eq!(cold.kind(), ErrorKind::ReauthorizationRequired);
    assert!(cold.to_string().contains("seed"), "{cold}");

    let cache = TokenCache::new(grant);
    cache.seed(Token::bearer("no-refresh")).await.unwrap();
    let error = cache.refresh().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ReauthorizationRequired);
    assert!(!error.is_transient());
    assert!(endpoint.received().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_refresh_answered_invalid_grant_requires_reauthorization() {
    let endpoint = AuthServer::new();
    endpoint.answer_next(
        StatusCode::BAD_REQUEST,
        r#"{"error":"invalid_grant","error_description":"grant request is invalid"}"#,
    );
    let cache = TokenCache::new(public_grant(&endpoint));
    cache
        .seed(Token::bearer("a").with_refresh_token("revoked"))
        .await
        .unwrap();

    let error = cache.refresh().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ReauthorizationRequired);
    assert_eq!(error.oauth_error(), Some("invalid_grant"));
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(
        error.to_string(),
        "re-authorization required (HTTP 400): invalid_grant: grant request is invalid"
    );
    // Permanent: one request, no retries.
    assert_eq!(endpoint.received().len(), 1);
    // The token that is still valid keeps serving.
    assert_eq!(
        cache.current().unwrap().token().access_token().expose(),
        "a"
    );
}

#[tokio::test(start_paused = true)]
async fn other_refresh_errors_keep_their_kind() {
    let endpoint = AuthServer::new();
    endpoint.answer_next(StatusCode::UNAUTHORIZED, r#"{"error":"invalid_client"}"#);
    let cache = TokenCache::new(public_grant(&endpoint));
    cache
        .seed(Token::bearer("a").with_refresh_token("r"))
        .await
        .unwrap();
    let error = cache.refresh().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_client"));
}

#[tokio::test(start_paused = true)]
async fn a_refresh_token_source_starts_from_its_token_then_follows_rotation() {
    let endpoint = AuthServer::new().refresh_token("stored");
    let grant = RefreshToken::new(
        endpoint.token_client(),
        ClientAuth::post("cli", "s3cret"),
        "stored",
    )
    .scopes(["orders:read"]);
    let cache = TokenCache::new(grant);

    assert_eq!(
        cache.token().await.unwrap().token().access_token().expose(),
        "token-1"
    );
    cache.refresh().await.unwrap();
    endpoint.answer_next(
        StatusCode::OK,
        r#"{"access_token":"token-3","token_type":"Bearer","expires_in":3600}"#,
    );
    cache.refresh().await.unwrap();
    cache.refresh().await.unwrap();

    let sent: Vec<_> = endpoint
        .received()
        .into_iter()
        .map(|sent| sent.form)
        .collect();
    let used: Vec<&str> = sent
        .iter()
        .map(|form| form["refresh_token"].as_str())
        .collect();
    assert_eq!(used, ["stored", "refresh-1", "refresh-2", "refresh-2"]);
    for form in &sent {
        assert_eq!(form["grant_type"], "refresh_token");
        assert_eq!(form["scope"], "orders:read");
        assert_eq!(form["client_id"], "cli");
        assert_eq!(form["client_secret"], "s3cret");
    }
}

#[tokio::test(start_paused = true)]
async fn a_saved_refresh_token_wins_over_the_one_given() {
    let endpoint = AuthServer::new().refresh_token("saved");
    let store = Arc::new(MemoryStore::new());
    let expired = Token::bearer("old")
        .with_expires_in(Duration::ZERO)
        .with_refresh_token("saved");
    tower_oauth2::TokenStore::save(&*store, &expired)
        .await
        .unwrap();
    let cache = TokenCache::builder(RefreshToken::new(
        endpoint.token_client(),
        ClientAuth::none("cli"),
        "given",
    ))
    .store(Arc::clone(&store))
    .build();

    cache.token().await.unwrap();
    assert_eq!(endpoint.received()[0].form["refresh_token"], "saved");
    // The rotated token went to the store before anyone used it.
    let saved = store.get().unwrap();
    assert_eq!(saved.refresh_token().map(Secret::expose), Some("refresh-1"));
}

#[tokio::test(start_paused = true)]
async fn an_unknown_refresh_token_asks_for_reauthorization() {
    let endpoint = AuthServer::new();
    endpoint.answer_next(StatusCode::BAD_REQUEST, r#"{"error":"invalid_grant"}"#);
    let cache = TokenCache::new(RefreshToken::new(
        endpoint.token_client(),
        ClientAuth::none("cli"),
        "bogus",
    ));
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ReauthorizationRequired);
    assert_eq!(error.oauth_error(), Some("invalid_grant"));
}

#[test]
fn no_secret_shows_in_debug_output() {
    let endpoint = AuthServer::new();
    let grant = AuthorizationCode::new(
        endpoint.token_client(),
        ClientAuth::post("web", "sentinel-secret"),
        AUTHORIZE,
        REDIRECT,
    )
    .unwrap();
    let pending = grant.authorize_url();
    let verifier = pending.verifier().expose().to_owned();
    let refresh = RefreshToken::new(
        endpoint.token_client(),
        ClientAuth::basic("cli", "sentinel-secret"),
        "sentinel-refresh",
    );
    let callback = Callback::new("sentinel-code", "state");
    let debug = format!("{grant:?} {pending:?} {refresh:?} {callback:?}");
    assert!(!debug.contains("sentinel"), "{debug}");
    assert!(!debug.contains(&verifier), "{debug}");
    assert!(!debug.contains(pending.state()), "{debug}");
}
