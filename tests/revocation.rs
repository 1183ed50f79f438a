//! Token revocation (RFC 7009) against a fake revocation endpoint that records every form and
//! answers from a script.

mod common;

use http::StatusCode;
use tower_oauth2::{ClientAuth, ErrorKind, Revocation, Secret, Token, TokenClient, TokenTypeHint};

use common::AuthServerExt;
use tower_oauth2_testkit::AuthServer;

const REVOKE: &str = "https://auth.test/revoke";

/// A revocation endpoint answering each request with the next scripted answer, then 200.
fn endpoint(script: Vec<(StatusCode, &'static str)>) -> (TokenClient, AuthServer) {
    let server = AuthServer::new();
    for (status, body) in script {
        server.answer_next(status, body);
    }
    (server.revocation_client(), server)
}

#[tokio::test]
async fn a_token_is_revoked_with_its_hint_and_the_clients_credentials() {
    let (client, sent) = endpoint(vec![]);
    let revocation = Revocation::new(REVOKE, &client, ClientAuth::basic("app", "s3cret")).unwrap();

    revocation
        .revoke(&Secret::new("refresh-1"), TokenTypeHint::RefreshToken)
        .await
        .unwrap();

    let sent = sent.received();
    let (authorization, form) = (&sent[0].authorization, &sent[0].form);
    assert!(authorization.as_deref().unwrap().starts_with("Basic "));
    assert_eq!(form["token"], "refresh-1");
    assert_eq!(form["token_type_hint"], "refresh_token");
    assert!(!form.contains_key("grant_type"), "{form:?}");
}

#[tokio::test]
async fn revoking_a_token_set_revokes_the_refresh_token_first() {
    let (client, sent) = endpoint(vec![]);
    let revocation = Revocation::new(REVOKE, &client, ClientAuth::none("cli")).unwrap();
    let token = Token::bearer("access-1").with_refresh_token("refresh-1");

    revocation.revoke_token(&token).await.unwrap();

    let sent = sent.received();
    let revoked: Vec<(&str, &str)> = sent
        .iter()
        .map(|sent| {
            (
                sent.form["token"].as_str(),
                sent.form["token_type_hint"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        revoked,
        [("refresh-1", "refresh_token"), ("access-1", "access_token")]
    );
    assert_eq!(sent[0].form["client_id"], "cli");
}

#[tokio::test]
async fn a_refused_revocation_is_a_typed_error_without_the_token_in_it() {
    let (client, sent) = endpoint(vec![(
        StatusCode::BAD_REQUEST,
        r#"{"error":"unsupported_token_type","error_description":"cannot revoke sentinel-refresh"}"#,
    )]);
    let revocation = Revocation::new(REVOKE, &client, ClientAuth::none("cli")).unwrap();
    let token = Token::bearer("sentinel-access").with_refresh_token("sentinel-refresh");

    let error = revocation.revoke_token(&token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("unsupported_token_type"));
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
    assert!(
        !format!("{error} {error:?}").contains("sentinel"),
        "{error}"
    );
    // The access token is not tried once the refresh token could not be revoked.
    assert_eq!(sent.received().len(), 1);
}

#[tokio::test]
async fn a_server_that_cannot_revoke_access_tokens_still_signs_the_user_out() {
    let (client, sent) = endpoint(vec![
        (StatusCode::OK, ""),
        (
            StatusCode::BAD_REQUEST,
            r#"{"error":"unsupported_token_type"}"#,
        ),
    ]);
    let revocation = Revocation::new(REVOKE, &client, ClientAuth::none("cli")).unwrap();
    let token = Token::bearer("access-1").with_refresh_token("refresh-1");

    revocation.revoke_token(&token).await.unwrap();
    assert_eq!(sent.received().len(), 2);

    // Without a refresh token there is nothing else to revoke: the refusal stands.
    let (client, _) = endpoint(vec![(
        StatusCode::BAD_REQUEST,
        r#"{"error":"unsupported_token_type"}"#,
    )]);
    let revocation = Revocation::new(REVOKE, &client, ClientAuth::none("cli")).unwrap();
    let error = revocation
        .revoke_token(&Token::bearer("access-1"))
        .await
        .unwrap_err();
    assert_eq!(error.oauth_error(), Some("unsupported_token_type"));
}

#[tokio::test]
async fn client_secret_post_puts_the_credentials_in_the_revocation_form() {
    let (client, sent) = endpoint(vec![]);
    let revocation = Revocation::new(REVOKE, &client, ClientAuth::post("app", "s3cret")).unwrap();

    revocation
        .revoke(&Secret::new("access-1"), TokenTypeHint::AccessToken)
        .await
        .unwrap();

    let sent = sent.received();
    let (authorization, form) = (&sent[0].authorization, &sent[0].form);
    assert_eq!(authorization, &None);
    assert_eq!(form["client_id"], "app");
    assert_eq!(form["client_secret"], "s3cret");
}

#[tokio::test]
async fn an_unavailable_server_is_a_transient_error() {
    let (client, _) = endpoint(vec![(StatusCode::SERVICE_UNAVAILABLE, "<html>down</html>")]);
    let revocation = Revocation::new(REVOKE, &client, ClientAuth::none("cli")).unwrap();

    let error = revocation
        .revoke(&Secret::new("access-1"), TokenTypeHint::AccessToken)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
    assert!(error.is_transient());
}
