//! Token exchange against the fake server.

use std::time::Duration;

use http::StatusCode;
use tower_oauth2_testkit::AuthServer;

use super::*;
use crate::{BoxError, FetchReason, Secret, TokenCache, grant::ClientCredentials};

fn endpoint(server: &AuthServer) -> TokenClient {
    TokenClient::new("https://auth.test/token", server.token_endpoint()).unwrap()
}

fn fetch(grant: &TokenExchange) -> impl Future<Output = Result<Token, Error>> + '_ {
    grant.fetch(FetchContext::new(None, FetchReason::Cold))
}

/// A source of one fixed token that lives `lifetime`.
struct Fixed(&'static str, Duration);

impl TokenSource for Fixed {
    async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
        Ok(Token::bearer(self.0).with_expires_in(self.1))
    }
}

#[tokio::test]
async fn every_request_presents_subject_and_actor_with_their_types_and_targets() {
    let server = AuthServer::new().access_token("caller-token");
    let grant = TokenExchange::new(
        endpoint(&server),
        ClientAuth::basic("svc", "svc-secret"),
        SecurityToken::from_fn(|| Ok::<_, BoxError>("caller-token")),
    )
    .actor(SecurityToken::from_fn(|| Ok::<_, BoxError>("actor-jwt")).token_type(SecurityToken::JWT))
    .audience("inventory")
    .resource("https://a.test")
    .resource("https://b.test")
    .scopes(["read", "write"])
    .requested_token_type(SecurityToken::ACCESS_TOKEN);
    let token = fetch(&grant).await.unwrap();
    assert_eq!(token.access_token().expose(), "token-1");

    let received = server.received();
    let form = &received[0].form;
    assert_eq!(form["grant_type"], GRANT_TYPE);
    assert_eq!(form["subject_token"], "caller-token");
    assert_eq!(form["subject_token_type"], SecurityToken::ACCESS_TOKEN);
    assert_eq!(form["actor_token"], "actor-jwt");
    assert_eq!(form["actor_token_type"], SecurityToken::JWT);
    assert_eq!(form["audience"], "inventory");
    assert_eq!(form["scope"], "read write");
    assert_eq!(form["requested_token_type"], SecurityToken::ACCESS_TOKEN);
    assert!(
        received[0]
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Basic ")
    );
    // The fake keeps the last of a repeated field.
    assert_eq!(form["resource"], "https://b.test");
}

#[tokio::test]
async fn a_rotated_subject_file_is_read_again_for_every_request() {
    let server = AuthServer::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "first\n").unwrap();
    let subject = SecurityToken::from_file(&path).token_type(SecurityToken::JWT);
    let grant = TokenExchange::new(endpoint(&server), ClientAuth::none("wl"), subject);
    fetch(&grant).await.unwrap();
    std::fs::write(&path, "second").unwrap();
    fetch(&grant).await.unwrap();
    let presented: Vec<String> = server
        .received()
        .iter()
        .map(|r| r.form["subject_token"].clone())
        .collect();
    assert_eq!(presented, ["first", "second"]);
}

#[tokio::test]
async fn a_missing_subject_file_fails_as_a_source_error_naming_the_file_only() {
    let server = AuthServer::new();
    let subject = SecurityToken::from_file("/nonexistent/subject-token");
    let grant = TokenExchange::new(endpoint(&server), ClientAuth::none("wl"), subject);
    let error = fetch(&grant).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Source);
    assert!(server.received().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_exchanged_token_expires_no_later_than_a_subject_from_a_cache() {
    let server = AuthServer::new();
    let upstream = TokenCache::new(Fixed("caller", Duration::from_secs(600)));
    let subject = SecurityToken::from_cache(upstream).token_type(SecurityToken::JWT);
    let grant = TokenExchange::new(endpoint(&server), ClientAuth::none("svc"), subject);
    let token = fetch(&grant).await.unwrap();
    assert_eq!(token.expires_in(), Some(Duration::from_secs(600)));
    tokio::time::sleep(Duration::from_secs(400)).await;
    let token = fetch(&grant).await.unwrap();
    assert_eq!(token.expires_in(), Some(Duration::from_secs(200)));
}

#[tokio::test]
async fn a_shorter_exchanged_token_keeps_its_own_lifetime() {
    let server = AuthServer::new().lifetime(Duration::from_secs(60));
    let upstream = TokenCache::new(Fixed("caller", Duration::from_secs(600)));
    let subject = SecurityToken::from_cache(upstream).token_type(SecurityToken::JWT);
    let grant = TokenExchange::new(endpoint(&server), ClientAuth::none("svc"), subject);
    let token = fetch(&grant).await.unwrap();
    assert_eq!(token.expires_in(), Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn a_refused_subject_from_a_cache_is_replaced_before_the_next_exchange() {
    let server = AuthServer::new();
    let upstream = TokenCache::new(ClientCredentials::new(
        endpoint(&server),
        ClientAuth::none("svc"),
    ));
    let grant = TokenExchange::new(
        endpoint(&server),
        ClientAuth::none("svc"),
        SecurityToken::from_cache(upstream),
    );
    fetch(&grant).await.unwrap();
    server.revoke("token-1");
    let error = fetch(&grant).await.unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_grant"));
    fetch(&grant).await.unwrap();
    let subjects: Vec<String> = server
        .received()
        .iter()
        .filter_map(|r| r.form.get("subject_token").cloned())
        .collect();
    assert_eq!(subjects, ["token-1", "token-1", "token-4"]);
}

fn jwt_grant(server: &AuthServer) -> TokenExchange {
    let subject = SecurityToken::from_fn(|| Ok::<_, BoxError>("sentinel-subject"))
        .token_type(SecurityToken::JWT);
    TokenExchange::new(endpoint(server), ClientAuth::none("svc"), subject)
}

#[tokio::test]
async fn an_answer_without_issued_token_type_is_an_invalid_response() {
    let server = AuthServer::new().exchange_answers(None, "Bearer");
    let error = fetch(&jwt_grant(&server)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    assert!(error.to_string().contains("issued_token_type"), "{error}");
}

#[tokio::test]
async fn an_issued_type_other_than_the_requested_one_is_an_invalid_response() {
    let server = AuthServer::new().exchange_answers(Some(SecurityToken::ID_TOKEN), "Bearer");
    let grant = jwt_grant(&server).requested_token_type(SecurityToken::ACCESS_TOKEN);
    let error = fetch(&grant).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    let text = error.to_string();
    assert!(text.contains(SecurityToken::ID_TOKEN), "{text}");
    assert!(text.contains(SecurityToken::ACCESS_TOKEN), "{text}");
}

#[tokio::test]
async fn token_type_n_a_is_taken_for_an_access_token_or_the_requested_type_only() {
    let access = AuthServer::new().exchange_answers(Some(SecurityToken::ACCESS_TOKEN), "N_A");
    let token = fetch(&jwt_grant(&access)).await.unwrap();
    assert_eq!(token.extra()["token_type"], "N_A");

    let jwt = AuthServer::new().exchange_answers(Some(SecurityToken::JWT), "N_A");
    let error = fetch(&jwt_grant(&jwt)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    assert!(error.to_string().contains("N_A"), "{error}");
    let asked = jwt_grant(&jwt).requested_token_type(SecurityToken::JWT);
    assert!(fetch(&asked).await.is_ok());
}

#[tokio::test]
async fn other_grants_still_refuse_token_type_n_a() {
    let server = AuthServer::new();
    server.answer_next(StatusCode::OK, r#"{"access_token":"a","token_type":"N_A"}"#);
    let grant = ClientCredentials::new(endpoint(&server), ClientAuth::none("c"));
    let error = grant
        .fetch(FetchContext::new(None, FetchReason::Cold))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
}

#[tokio::test]
async fn the_subject_token_is_scrubbed_from_errors_and_never_in_debug() {
    let server = AuthServer::new();
    server.answer_next(
        StatusCode::BAD_REQUEST,
        r#"{"error":"invalid_grant","error_description":"bad token sentinel-subject"}"#,
    );
    let grant = jwt_grant(&server);
    let error = fetch(&grant).await.unwrap_err();
    let server = AuthServer::new().exchange_answers(Some("sentinel-subject"), "Bearer");
    let other = fetch(&jwt_grant(&server).requested_token_type(SecurityToken::JWT))
        .await
        .unwrap_err();
    let shown = format!("{error} {error:?} {other} {other:?} {grant:?}");
    assert!(!shown.contains("sentinel"), "{shown}");
}

#[tokio::test]
async fn a_cache_over_the_exchange_reuses_its_token_and_exchanges_again_when_forced() {
    let server = AuthServer::new().access_token("caller");
    let grant = TokenExchange::new(
        endpoint(&server),
        ClientAuth::none("svc"),
        SecurityToken::from_fn(|| Ok::<_, BoxError>(Secret::from("caller"))),
    );
    let cache = TokenCache::new(grant);
    cache.token().await.unwrap();
    cache.token().await.unwrap();
    assert_eq!(server.grants(), 1);
    let renewed = cache.refresh().await.unwrap();
    assert_eq!(renewed.token().access_token().expose(), "token-2");
}

#[test]
fn identity_names_a_subject_only_when_it_is_safe_to_share() {
    let server = AuthServer::new();
    let from_file = TokenExchange::new(
        endpoint(&server),
        ClientAuth::none("svc"),
        SecurityToken::from_file("/var/run/token"),
    );
    assert!(from_file.identity().is_none());
    let named = from_file
        .audience("inventory")
        .subject("workload-7")
        .identity()
        .unwrap();
    let expected = TokenSetId::new("https://auth.test/token", "svc", GRANT_TYPE)
        .audience("inventory")
        .subject("workload-7")
        .param("subject_token_type", SecurityToken::ACCESS_TOKEN);
    assert_eq!(named, expected);

    let upstream = || {
        let grant = ClientCredentials::new(endpoint(&server), ClientAuth::none("svc"));
        SecurityToken::from_cache(TokenCache::new(grant))
    };
    let for_a = TokenExchange::new(endpoint(&server), ClientAuth::none("svc"), upstream())
        .audience("a")
        .identity()
        .unwrap();
    let again = TokenExchange::new(endpoint(&server), ClientAuth::none("svc"), upstream())
        .audience("a")
        .identity()
        .unwrap();
    let for_b = TokenExchange::new(endpoint(&server), ClientAuth::none("svc"), upstream())
        .audience("b")
        .identity()
        .unwrap();
    assert_eq!(for_a, again);
    assert_ne!(for_a, for_b);
    assert!(for_a.subject.as_deref().unwrap().starts_with("token-set:"));

    let with_file_actor =
        TokenExchange::new(endpoint(&server), ClientAuth::none("svc"), upstream())
            .actor(SecurityToken::from_file("/var/run/actor"));
    assert!(with_file_actor.identity().is_none());
}
