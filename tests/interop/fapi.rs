//! FAPI 2.0 against oidc-provider's profile (`interop/fapi.mjs`): private_key_jwt, DPoP and a
//! pushed request, and a refusal for each one dropped. The profile itself forced only the
//! assertion's `aud` (the issuer); PAR, DPoP and the key come from the clients' registration.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneSyncService;
use tower_oauth2::{
    BoxError, ClientAuth, Discovery, DpopKey, ErrorKind, Revocation, SigningKey, TokenCache,
    TokenClient,
    grant::{AuthorizationCode, Callback, PendingAuthorization, PkceVerifier},
};
use tower_oauth2_testkit::keys;
use url::Url;

use crate::support::{REDIRECT, api, counter, expire, follow, get, http, issuer, sign_in};

/// How a FAPI 2.0 client authenticates: a private_key_jwt assertion whose audience is the
/// issuer. The crate's default audience, the token endpoint, is refused by the profile.
fn key_auth(client_id: &str) -> ClientAuth {
    let key = SigningKey::from_pkcs8_pem(keys::EC_PRIVATE_PEM).unwrap();
    ClientAuth::private_key_jwt(client_id, key).assertion_audience(issuer())
}

/// The grant of a FAPI 2.0 client, from the server's metadata: its token endpoint through
/// `endpoint` (with or without DPoP), its authorization requests pushed, and `iss` checked.
async fn fapi_grant(endpoint: TokenClient, auth: ClientAuth) -> AuthorizationCode {
    let metadata = Discovery::new(&issuer(), http())
        .unwrap()
        .metadata()
        .await
        .unwrap();
    assert!(metadata.authorization_response_iss_parameter_supported());
    AuthorizationCode::new(
        endpoint,
        auth,
        metadata.authorization_endpoint().unwrap(),
        REDIRECT,
    )
    .unwrap()
    .scopes(["openid", "api:read"])
    .issuer(metadata.issuer())
    .pushed_authorization_request_endpoint(
        metadata.pushed_authorization_request_endpoint().unwrap(),
    )
    .unwrap()
}

/// The token endpoint from discovery, without DPoP.
async fn discovered_endpoint() -> TokenClient {
    TokenClient::discover(&Discovery::new(&issuer(), http()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fapi_client_signs_in_calls_a_dpop_api_across_expiry_and_refresh_and_signs_out() {
    let discovery = Discovery::new(&issuer(), http()).unwrap();
    let key = DpopKey::generate().unwrap();
    let endpoint = TokenClient::discover(&discovery).await.unwrap().dpop(&key);
    let grant = fapi_grant(endpoint.clone(), key_auth("fapi-dpop")).await;

    // Pushed: the browser carries only the client and the request's handle.
    let pending = grant.authorization_request().await.unwrap();
    let url = Url::parse(pending.url()).unwrap();
    let names: Vec<String> = url
        .query_pairs()
        .map(|(name, _)| name.into_owned())
        .collect();
    assert_eq!(names, ["client_id", "request_uri"], "{url}");

    let callback = sign_in(pending.url()).await;
    assert_eq!(callback.issuer(), Some(issuer().as_str()));
    let token = grant.exchange(pending, callback).await.unwrap();
    assert_eq!(token.scheme(), "DPoP");
    assert!(token.refresh_token().is_some());
    let first = token.access_token().expose().to_owned();

    let cache = TokenCache::new(grant);
    cache.seed(token).await.unwrap();
    let api = api(&cache);
    let (status, body) = get(&api, "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body} {:?}", cache.stats());
    assert!(body.contains(r#""token_type":"DPoP""#), "{body}");
    assert!(body.contains(r#""client_id":"fapi-dpop""#), "{body}");
    assert!(body.contains(r#""sub":"user-1""#), "{body}");
    // Bound: as a bearer token, without a proof, it opens nothing.
    assert_eq!(
        crate::support::status_with(&first, "/read").await,
        StatusCode::UNAUTHORIZED
    );

    // The token lives two seconds: past them the cache refreshes, with a proof.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = get(&api, "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(cache.stats().fetches, 1);

    // The server drops the token early: the API's 401 makes the cache refresh again.
    let current = cache.token().await.unwrap();
    assert_ne!(current.token().access_token().expose(), first);
    expire(current.token().access_token().expose()).await;
    let (status, body) = get(&api, "/read").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let stats = cache.stats();
    assert_eq!(
        (stats.fetches, stats.retries_after_401),
        (2, 1),
        "{stats:?}"
    );
    assert_eq!(counter("fapi-dpop", "success:refresh_token").await, 2);
    assert_eq!(counter("fapi-dpop", "wrong_auth_method").await, 0);

    // Signing out: the refresh token is revoked, with the same assertion, and the grant with it.
    let metadata = discovery.metadata().await.unwrap();
    let revocation = Revocation::new(
        metadata.revocation_endpoint().unwrap(),
        &endpoint,
        key_auth("fapi-dpop"),
    )
    .unwrap();
    let signed_in = cache.token().await.unwrap();
    revocation.revoke_token(signed_in.token()).await.unwrap();
    let error = get(&api, "/read").await.unwrap_err();
    let error = error
        .downcast_ref::<tower_oauth2::Error>()
        .expect("the layer says why no token can be had");
    assert_eq!(error.kind(), ErrorKind::ReauthorizationRequired, "{error}");
    assert_eq!(error.oauth_error(), Some("invalid_grant"), "{error}");
    assert_eq!(counter("fapi-dpop", "invalid_grant").await, 1);
}

#[tokio::test]
async fn the_server_refuses_a_fapi_request_that_was_not_pushed() {
    let key = DpopKey::generate().unwrap();
    let endpoint = discovered_endpoint().await.dpop(&key);
    let grant = fapi_grant(endpoint, key_auth("fapi-no-par")).await;
    let pending = grant.authorize_url();
    let back = follow(pending.url()).await;
    let callback = Callback::from_query(back.query().unwrap()).unwrap();
    let error = grant.exchange(pending, callback).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthorizationFailed, "{error}");
    assert_eq!(error.oauth_error(), Some("invalid_request"), "{error}");
    assert!(
        error
            .description()
            .unwrap()
            .contains("Pushed Authorization Request"),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_server_refuses_a_fapi_token_request_without_a_dpop_proof() {
    let grant = fapi_grant(discovered_endpoint().await, key_auth("fapi-no-dpop")).await;
    let pending = grant.authorization_request().await.unwrap();
    let callback = sign_in(pending.url()).await;
    let error = grant.exchange(pending, callback).await.unwrap_err();
    // oidc-provider says `invalid_grant`: the proof is missing, not invalid.
    assert_eq!(error.kind(), ErrorKind::Rejected, "{error}");
    assert_eq!(error.oauth_error(), Some("invalid_grant"), "{error}");
    assert_eq!(counter("fapi-no-dpop", "invalid_grant").await, 1);
}

#[tokio::test]
async fn the_server_refuses_a_client_secret_from_a_fapi_client() {
    let key = DpopKey::generate().unwrap();
    let endpoint = discovered_endpoint().await.dpop(&key);
    let auth = ClientAuth::basic("fapi-secret", "fapi-secret-secret");
    let grant = fapi_grant(endpoint, auth).await;
    let error = grant.authorization_request().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected, "{error}");
    assert_eq!(error.oauth_error(), Some("invalid_client"), "{error}");
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(counter("fapi-secret", "wrong_auth_method").await, 1);
}

#[tokio::test]
async fn the_server_refuses_a_fapi_assertion_whose_audience_is_the_token_endpoint() {
    let key = DpopKey::generate().unwrap();
    let endpoint = discovered_endpoint().await.dpop(&key);
    // The crate's default audience, which every other private_key_jwt client here uses.
    let signing = SigningKey::from_pkcs8_pem(keys::EC_PRIVATE_PEM).unwrap();
    let auth = ClientAuth::private_key_jwt("fapi-audience", signing);
    let grant = fapi_grant(endpoint, auth).await;
    let error = grant.authorization_request().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected, "{error}");
    assert_eq!(error.oauth_error(), Some("invalid_client"), "{error}");
    assert_eq!(counter("fapi-audience", "wrong_auth_method").await, 0);

    // The same key with the issuer as audience is served.
    let endpoint = discovered_endpoint().await.dpop(&key);
    let grant = fapi_grant(endpoint, key_auth("fapi-audience")).await;
    grant.authorization_request().await.unwrap();
}

/// A change to a pushed request's form: its fields in, the fields to send out.
type Rewrite = fn(Vec<(String, String)>) -> Vec<(String, String)>;

/// An HTTP client that hands every pushed request's form to `rewrite` before sending it.
fn rewriting(
    rewrite: Rewrite,
) -> BoxCloneSyncService<Request<Full<Bytes>>, http::Response<hyper::body::Incoming>, BoxError> {
    BoxCloneSyncService::new(tower::service_fn(move |request: Request<Full<Bytes>>| {
        async move {
            let (mut parts, body) = request.into_parts();
            let mut body = body.collect().await?.to_bytes();
            if parts.uri.path() == "/request" {
                let form = form_urlencoded::parse(&body).into_owned().collect();
                let form = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(rewrite(form))
                    .finish();
                body = Bytes::from(form);
                // The client sets it again for the new body.
                parts.headers.remove(http::header::CONTENT_LENGTH);
            }
            let response = http()
                .request(Request::from_parts(parts, Full::new(body)))
                .await?;
            Ok::<_, BoxError>(response)
        }
    }))
}

/// The FAPI client's pushed request, its form changed by `rewrite` on the way to the server.
async fn push_rewritten(rewrite: Rewrite) -> Result<PendingAuthorization, tower_oauth2::Error> {
    let token_url = format!("{}/token", issuer());
    let endpoint = TokenClient::new(&token_url, rewriting(rewrite)).unwrap();
    fapi_grant(endpoint, key_auth("fapi-pkce"))
        .await
        .authorization_request()
        .await
}

/// The server's refusal of a push whose form `rewrite` changed: its description.
async fn refused_push(rewrite: Rewrite) -> String {
    let error = push_rewritten(rewrite).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected, "{error}");
    assert_eq!(error.oauth_error(), Some("invalid_request"), "{error}");
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
    error.description().unwrap().to_owned()
}

#[tokio::test]
async fn the_server_refuses_a_fapi_push_without_pkce_or_with_plain_pkce() {
    // The crate always sends S256, so the test changes the form on the wire; the assertion
    // stays the crate's, fresh and good. Untouched, the same push is served.
    push_rewritten(|form| form).await.unwrap();

    let without = refused_push(|form| {
        form.into_iter()
            .filter(|(name, _)| !name.starts_with("code_challenge"))
            .collect()
    })
    .await;
    assert!(without.contains("PKCE"), "{without}");

    let plain = refused_push(|form| {
        form.into_iter()
            .map(|(name, value)| match name.as_str() {
                "code_challenge_method" => (name, "plain".to_owned()),
                _ => (name, value),
            })
            .collect()
    })
    .await;
    assert!(plain.contains("code_challenge_method"), "{plain}");
}

#[tokio::test]
async fn the_crate_refuses_a_fapi_callback_with_a_missing_or_another_issuer() {
    let key = DpopKey::generate().unwrap();
    let grant = fapi_grant(discovered_endpoint().await.dpop(&key), key_auth("fapi-iss")).await;
    let pending = grant.authorization_request().await.unwrap();
    let (state, verifier) = (
        pending.state().to_owned(),
        pending.verifier().expose().to_owned(),
    );
    let back = follow(pending.url()).await;
    let query = back.query().unwrap().to_owned();
    let code = back
        .query_pairs()
        .find(|(name, _)| name == "code")
        .unwrap()
        .1
        .into_owned();
    let resume = || {
        PendingAuthorization::resume(
            state.clone(),
            PkceVerifier::from_string(verifier.clone()).unwrap(),
        )
    };

    let missing = Callback::new(code.clone(), state.clone());
    let error = grant.exchange(pending, missing).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::IssuerMismatch, "{error}");
    let another = Callback::new(code, state.clone()).with_issuer("https://other.test");
    let error = grant.exchange(resume(), another).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::IssuerMismatch, "{error}");
    // Refused before anything was sent: the code is still good, and the server's own
    // callback, `iss` and all, redeems it.
    assert_eq!(counter("fapi-iss", "success:authorization_code").await, 0);
    let token = grant
        .exchange(resume(), Callback::from_query(&query).unwrap())
        .await
        .unwrap();
    assert_eq!(token.scheme(), "DPoP");
}
