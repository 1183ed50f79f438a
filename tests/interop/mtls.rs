//! Mutual TLS (RFC 8705) against oidc-provider: `tls_client_auth` and
//! `self_signed_tls_client_auth` at the `mtls_endpoint_aliases` the metadata names (HTTPS
//! listeners that ask for a certificate), certificate-bound access tokens that the API accepts
//! only over a connection with the same certificate, and what the server refuses.
//!
//! The server's HTTPS listeners use certificates the test CA issued (`testkit/keys`); the
//! client trusts that CA beside Mozilla's roots and presents one of the client certificates.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2::{
    ClientAuth, Discovery, ErrorKind, OAuth2Layer, Revocation, TokenCache, TokenClient,
    grant::ClientCredentials,
    https::{self, ClientIdentity, HttpsClient},
};
use tower_oauth2_testkit::keys;

use crate::support::{issuer, status_with};

/// The protected API on the HTTPS listener that asks for a client certificate.
pub(crate) fn api_tls_url(path: &str) -> String {
    let base = std::env::var("INTEROP_API_TLS")
        .expect("INTEROP_API_TLS is not set: run the interop tests with interop/run.sh");
    format!("{base}{path}")
}

/// The client certificates of `testkit/keys`.
#[derive(Clone, Copy)]
pub(crate) enum Certificate {
    /// `CN=interop-mtls-client`, from the test CA: the one the `tls_client_auth` clients are
    /// registered with.
    Client,
    /// `CN=interop-other-client`, from the same CA: the wrong one.
    Other,
    /// Self-signed, registered (as `x5c`) by `mtls-self-signed`.
    SelfSigned,
}

pub(crate) fn identity(certificate: Certificate) -> ClientIdentity {
    let (cert, key) = match certificate {
        Certificate::Client => (keys::MTLS_CLIENT_CERT_PEM, keys::MTLS_CLIENT_KEY_PEM),
        Certificate::Other => (keys::MTLS_OTHER_CERT_PEM, keys::MTLS_OTHER_KEY_PEM),
        Certificate::SelfSigned => (
            keys::MTLS_SELF_SIGNED_CERT_PEM,
            keys::MTLS_SELF_SIGNED_KEY_PEM,
        ),
    };
    ClientIdentity::from_pem(cert.as_bytes(), key.as_bytes()).unwrap()
}

/// The `https` feature's client, trusting the test CA, presenting `certificate` if any.
pub(crate) fn https_client(certificate: Option<Certificate>) -> HttpsClient {
    let builder = https::builder()
        .extra_roots(keys::TLS_CA_PEM.as_bytes())
        .unwrap();
    match certificate {
        Some(certificate) => builder.client_identity(identity(certificate)),
        None => builder,
    }
    .build()
    .unwrap()
}

/// Discovery through `http`, which presents a certificate: the aliases are used.
pub(crate) fn mtls_discovery(http: &HttpsClient) -> Discovery {
    Discovery::new(&issuer(), http.clone())
        .unwrap()
        .mutual_tls()
}

async fn grant(auth: ClientAuth, http: &HttpsClient) -> ClientCredentials {
    let endpoint = TokenClient::discover(&mtls_discovery(http)).await.unwrap();
    ClientCredentials::new(endpoint, auth).scopes(["api:read"])
}

/// `GET url` through `client`: status and body.
async fn get<S>(client: &S, url: String) -> (StatusCode, String)
where
    S: tower::Service<Request<Full<Bytes>>, Response = http::Response<hyper::body::Incoming>>
        + Clone,
    S::Error: std::fmt::Debug,
{
    let request = Request::get(url).body(Full::default()).unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The API's verdict on `access_token` over a connection that presents `certificate`.
async fn status_over_tls(access_token: &str, certificate: Option<Certificate>) -> StatusCode {
    let request = Request::get(api_tls_url("/read"))
        .header("authorization", format!("Bearer {access_token}"))
        .body(Full::default())
        .unwrap();
    https_client(certificate)
        .request(request)
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_metadata_names_https_aliases_that_a_certificate_client_is_sent_to() {
    let http = https_client(Some(Certificate::Client));
    let plain = Discovery::new(&issuer(), http.clone()).unwrap();
    let plain = plain.metadata().await.unwrap();
    assert!(plain.has_mtls_endpoint_aliases());
    assert!(plain.tls_client_certificate_bound_access_tokens());
    assert!(plain.token_endpoint().unwrap().starts_with("http://"));

    let mtls = mtls_discovery(&http).metadata().await.unwrap();
    for endpoint in [
        mtls.token_endpoint(),
        mtls.revocation_endpoint(),
        mtls.pushed_authorization_request_endpoint(),
    ] {
        assert!(
            endpoint.unwrap().starts_with("https://127.0.0.1:"),
            "{mtls:?}"
        );
    }
    assert_eq!(
        mtls.authorization_endpoint(),
        plain.authorization_endpoint()
    );
}

#[tokio::test]
async fn tls_client_auth_gets_a_bound_token_that_opens_the_api_over_the_same_certificate() {
    let http = https_client(Some(Certificate::Client));
    let cache = TokenCache::new(grant(ClientAuth::tls_client_auth("mtls-ca"), &http).await);
    let api = ServiceBuilder::new()
        .layer(OAuth2Layer::new(cache.clone()))
        .service(http);
    let (status, body) = get(&api, api_tls_url("/read")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""client_id":"mtls-ca""#), "{body}");
    assert_eq!(cache.stats().fetches, 1);
}

#[tokio::test]
async fn self_signed_tls_client_auth_gets_a_token_with_the_registered_certificate() {
    let http = https_client(Some(Certificate::SelfSigned));
    let auth = ClientAuth::self_signed_tls_client_auth("mtls-self-signed");
    let cache = TokenCache::new(grant(auth, &http).await);
    let api = ServiceBuilder::new()
        .layer(OAuth2Layer::new(cache))
        .service(http);
    let (status, body) = get(&api, api_tls_url("/read")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""client_id":"mtls-self-signed""#), "{body}");
}

async fn refused(auth: ClientAuth, certificate: Certificate) {
    let http = https_client(Some(certificate));
    let error = TokenCache::new(grant(auth, &http).await)
        .token()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected, "{error}");
    assert_eq!(error.oauth_error(), Some("invalid_client"), "{error}");
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn the_server_refuses_a_certificate_that_is_not_the_clients() {
    // Issued by the trusted CA, for another subject.
    refused(
        ClientAuth::tls_client_auth("mtls-ca-refused"),
        Certificate::Other,
    )
    .await;
    // The right subject is not enough without the CA: a self-signed certificate.
    refused(
        ClientAuth::tls_client_auth("mtls-ca-refused"),
        Certificate::SelfSigned,
    )
    .await;
    // A certificate the self-signed client never registered.
    refused(
        ClientAuth::self_signed_tls_client_auth("mtls-self-signed"),
        Certificate::Other,
    )
    .await;
}

#[tokio::test]
async fn a_bound_token_is_refused_over_a_connection_with_another_certificate_or_none() {
    let http = https_client(Some(Certificate::Client));
    let cache = TokenCache::new(grant(ClientAuth::tls_client_auth("mtls-ca"), &http).await);
    let token = cache.token().await.unwrap();
    let access_token = token.token().access_token().expose();

    assert_eq!(
        status_over_tls(access_token, Some(Certificate::Client)).await,
        StatusCode::OK
    );
    assert_eq!(
        status_over_tls(access_token, Some(Certificate::Other)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status_over_tls(access_token, None).await,
        StatusCode::UNAUTHORIZED
    );
    // The plain http API has no certificate to compare.
    assert_eq!(
        status_with(access_token, "/read").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn revocation_goes_through_its_alias_with_the_certificate() {
    let http = https_client(Some(Certificate::Client));
    let discovery = mtls_discovery(&http);
    let metadata = discovery.metadata().await.unwrap();
    let endpoint = TokenClient::discover(&discovery).await.unwrap();
    let auth = ClientAuth::tls_client_auth("mtls-ca");
    let cache = TokenCache::new(
        ClientCredentials::new(endpoint.clone(), auth.clone()).scopes(["api:read"]),
    );
    let token = cache.token().await.unwrap();
    let access_token = token.token().access_token().expose().to_owned();

    let revocation =
        Revocation::new(metadata.revocation_endpoint().unwrap(), &endpoint, auth).unwrap();
    revocation.revoke_token(token.token()).await.unwrap();
    assert_eq!(
        status_over_tls(&access_token, Some(Certificate::Client)).await,
        StatusCode::UNAUTHORIZED
    );
}
