//! Mutual TLS (RFC 8705) through the `https` feature's client, against a rustls server on
//! loopback that asks every client for a certificate from the test CA: the certificate goes to
//! the token endpoint and to the API alike, `tls_client_auth` sends the client id and no
//! secret, and identities that cannot work are refused with errors that show no key.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2::{
    ClientAuth, ErrorKind, OAuth2Layer, TokenClient, TokenRequest,
    grant::ClientCredentials,
    https::{self, ClientIdentity, HttpsClient, rustls},
};
use tower_oauth2_testkit::keys;

/// What the server saw: per request, its path, the thumbprint of the client's certificate
/// (if any) and its body.
type Seen = Arc<Mutex<Vec<(String, Option<String>, String)>>>;

/// SHA-256 of a certificate's DER, base64url: the `x5t#S256` of RFC 8705.
fn thumbprint_of(der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

fn pem_certificates(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(Result::unwrap)
        .collect()
}

/// A server for 127.0.0.1 that asks for a client certificate the test CA issued: it must
/// have one when `required`, else the handshake goes on without. `/token` answers a token,
/// anything else the thumbprint of the certificate it saw.
async fn serve(required: bool) -> (SocketAddr, Seen) {
    use rustls::pki_types::{PrivateKeyDer, pem::PemObject};

    let provider = tower_oauth2::https::crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for certificate in pem_certificates(keys::TLS_CA_PEM) {
        roots.add(certificate).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    );
    let verifier = if required {
        verifier.build().unwrap()
    } else {
        verifier.allow_unauthenticated().build().unwrap()
    };
    let key = PrivateKeyDer::from_pem_slice(keys::TLS_SERVER_KEY_PEM.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem_certificates(keys::TLS_SERVER_CERT_PEM), key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let presented = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|leaf| thumbprint_of(leaf));
                let service = hyper::service::service_fn(move |request| {
                    respond(request, presented.clone(), log.clone())
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

async fn respond(
    request: Request<Incoming>,
    presented: Option<String>,
    seen: Seen,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    seen.lock()
        .unwrap()
        .push((path.clone(), presented.clone(), body));
    let answer = if path == "/token" {
        r#"{"access_token":"bound-token","token_type":"Bearer","expires_in":3600}"#.to_owned()
    } else {
        presented.unwrap_or_else(|| "no certificate".to_owned())
    };
    Ok(Response::new(Full::from(answer)))
}

fn identity() -> ClientIdentity {
    ClientIdentity::from_pem(
        keys::MTLS_CLIENT_CERT_PEM.as_bytes(),
        keys::MTLS_CLIENT_KEY_PEM.as_bytes(),
    )
    .unwrap()
}

/// Trusts the test CA (beside Mozilla's roots), presenting `identity` if given.
fn client(identity: Option<ClientIdentity>) -> HttpsClient {
    let builder = https::builder()
        .extra_roots(keys::TLS_CA_PEM.as_bytes())
        .unwrap();
    match identity {
        Some(identity) => builder.client_identity(identity).build().unwrap(),
        None => builder.build().unwrap(),
    }
}

#[tokio::test]
async fn the_certificate_goes_to_the_token_endpoint_and_the_api_and_the_form_has_no_secret() {
    let (addr, seen) = serve(true).await;
    let identity = identity();
    let expected = thumbprint_of(&pem_certificates(keys::MTLS_CLIENT_CERT_PEM)[0]);
    assert_eq!(identity.thumbprint(), expected);

    let http = client(Some(identity));
    let endpoint = TokenClient::new(&format!("https://{addr}/token"), http.clone()).unwrap();
    let grant = ClientCredentials::new(endpoint, ClientAuth::tls_client_auth("svc"));
    let api = ServiceBuilder::new()
        .layer(OAuth2Layer::new(grant))
        .service(http);
    let request = Request::get(format!("https://{addr}/orders"))
        .body(Full::default())
        .unwrap();
    let response = api.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, expected.as_bytes());

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0],
        (
            "/token".to_owned(),
            Some(expected.clone()),
            "grant_type=client_credentials&client_id=svc".to_owned()
        )
    );
    assert_eq!(seen[1].1.as_deref(), Some(&*expected));
}

#[tokio::test]
async fn a_server_that_requires_a_certificate_refuses_a_client_without_one() {
    let (addr, seen) = serve(true).await;
    let endpoint = TokenClient::new(&format!("https://{addr}/token"), client(None)).unwrap();
    let error = endpoint
        .request(
            &TokenRequest::new("client_credentials"),
            &ClientAuth::tls_client_auth("svc"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport, "{error}");
    assert_eq!(
        error.to_string(),
        "could not reach token endpoint: TLS handshake failed"
    );
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_client_without_an_identity_presents_nothing_where_a_certificate_is_optional() {
    let (addr, seen) = serve(false).await;
    let request = Request::get(format!("https://{addr}/api"))
        .body(Full::default())
        .unwrap();
    let response = client(None).oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "no certificate");
    assert_eq!(seen.lock().unwrap()[0].1, None);
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let error = ClientIdentity::from_pem(
        keys::MTLS_CLIENT_CERT_PEM.as_bytes(),
        keys::MTLS_OTHER_KEY_PEM.as_bytes(),
    )
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert_eq!(
        error.to_string(),
        "invalid configuration: the private key does not belong to the client certificate"
    );
    // An RSA key for an EC certificate, too.
    let error = ClientIdentity::from_pem(
        keys::MTLS_CLIENT_CERT_PEM.as_bytes(),
        keys::MTLS_SELF_SIGNED_KEY_PEM.as_bytes(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("does not belong"), "{error}");
}

#[test]
fn unreadable_certificates_and_keys_are_refused_saying_which() {
    let cert = keys::MTLS_CLIENT_CERT_PEM.as_bytes();
    let key = keys::MTLS_CLIENT_KEY_PEM.as_bytes();
    let broken_cert = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
    let garbage_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let broken_key = "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n";
    let garbage_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let cases: [(&[u8], &[u8], &str); 6] = [
        (b"", key, "no certificate in the client certificate PEM"),
        (
            broken_cert.as_bytes(),
            key,
            "the client certificate is not valid PEM",
        ),
        (
            garbage_cert.as_bytes(),
            key,
            "the client certificate cannot be parsed",
        ),
        // The certificate where the key should be: a mix-up of the two files.
        (cert, cert, "no private key in the client key PEM"),
        (
            cert,
            broken_key.as_bytes(),
            "the client key is not valid PEM",
        ),
        (
            cert,
            garbage_key.as_bytes(),
            "the client key is not an RSA, ECDSA or Ed25519",
        ),
    ];
    for (cert, key, expected) in cases {
        let error = ClientIdentity::from_pem(cert, key).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        assert!(error.to_string().contains(expected), "{error} / {expected}");
    }
}

#[test]
fn files_are_read_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, keys::MTLS_CLIENT_CERT_PEM).unwrap();
    std::fs::write(&key, keys::MTLS_CLIENT_KEY_PEM).unwrap();
    let identity = ClientIdentity::from_pem_files(&cert, &key).unwrap();
    assert_eq!(identity.thumbprint(), self::identity().thumbprint());

    let missing = dir.path().join("missing.pem");
    let error = ClientIdentity::from_pem_files(&cert, &missing).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(error.to_string().contains("client key file"), "{error}");
    let error = ClientIdentity::from_pem_files(&missing, &key).unwrap_err();
    assert!(
        error.to_string().contains("client certificate file"),
        "{error}"
    );
}

#[test]
fn no_error_or_debug_output_shows_the_key() {
    // A line of the key's base64, which any quote of it would contain.
    let key_line = keys::MTLS_CLIENT_KEY_PEM.lines().nth(1).unwrap();
    let other_line = keys::MTLS_OTHER_KEY_PEM.lines().nth(1).unwrap();
    let identity = identity();
    let builder = https::builder().client_identity(identity.clone());
    let error = ClientIdentity::from_pem(
        keys::MTLS_CLIENT_CERT_PEM.as_bytes(),
        keys::MTLS_OTHER_KEY_PEM.as_bytes(),
    )
    .unwrap_err();
    let shown = format!("{identity:?} {builder:?} {error} {error:?}");
    assert!(shown.contains(&identity.thumbprint()), "{shown}");
    for secret in [key_line, other_line, "PRIVATE KEY"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

/// Writes `certificate` and `key` where a secret manager would: each file replaced by a rename.
fn replace(path: &std::path::Path, contents: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, contents).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// A folder with the first client certificate and its key, as `tls.crt` and `tls.key`.
fn identity_files() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, keys::MTLS_CLIENT_CERT_PEM).unwrap();
    std::fs::write(&key, keys::MTLS_CLIENT_KEY_PEM).unwrap();
    (dir, cert, key)
}

/// The thumbprint that a fresh server (so a fresh connection) sees from `http`.
async fn presented_on_a_new_connection(http: &HttpsClient) -> String {
    let (addr, _) = serve(true).await;
    presented_at(http, addr).await
}

async fn presented_at(http: &HttpsClient, addr: SocketAddr) -> String {
    let request = Request::get(format!("https://{addr}/whoami"))
        .body(Full::default())
        .unwrap();
    let response = http.clone().oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn a_watched_identity_presents_replaced_files_on_new_connections_and_open_ones_keep_theirs() {
    let (_dir, cert, key) = identity_files();
    let first = thumbprint_of(&pem_certificates(keys::MTLS_CLIENT_CERT_PEM)[0]);
    let second = thumbprint_of(&pem_certificates(keys::MTLS_OTHER_CERT_PEM)[0]);
    let identity = ClientIdentity::watch_pem_files(&cert, &key).unwrap();
    let http = client(Some(identity.clone()));
    let (kept, _) = serve(true).await;
    assert_eq!(presented_at(&http, kept).await, first);

    replace(&cert, keys::MTLS_OTHER_CERT_PEM);
    replace(&key, keys::MTLS_OTHER_KEY_PEM);
    assert_eq!(presented_on_a_new_connection(&http).await, second);
    assert_eq!(
        presented_at(&http, kept).await,
        first,
        "the open connection was made with the first certificate"
    );
    assert_eq!(identity.thumbprint(), second);
    assert_eq!(identity.reloads(), 1);
}

#[tokio::test]
async fn a_half_replaced_pair_is_not_taken_and_the_pair_is_taken_once_whole() {
    let (_dir, cert, key) = identity_files();
    let first = thumbprint_of(&pem_certificates(keys::MTLS_CLIENT_CERT_PEM)[0]);
    let second = thumbprint_of(&pem_certificates(keys::MTLS_OTHER_CERT_PEM)[0]);
    let identity = ClientIdentity::watch_pem_files(&cert, &key).unwrap();
    let http = client(Some(identity.clone()));

    // The certificate first, as a secret manager writing one file at a time may: its key is
    // still the old one's, so the old pair stays.
    replace(&cert, keys::MTLS_OTHER_CERT_PEM);
    assert_eq!(presented_on_a_new_connection(&http).await, first);
    assert_eq!(identity.reloads(), 0);
    replace(&key, keys::MTLS_OTHER_KEY_PEM);
    assert_eq!(presented_on_a_new_connection(&http).await, second);
    assert_eq!(identity.reloads(), 1);

    // A file gone for a moment, then garbage: the last good pair stays, and nothing shows.
    std::fs::remove_file(&key).unwrap();
    assert_eq!(presented_on_a_new_connection(&http).await, second);
    replace(&key, "not a key");
    assert_eq!(presented_on_a_new_connection(&http).await, second);
    assert_eq!(identity.reloads(), 1);
    assert!(!format!("{identity:?}").contains("not a key"));
}

#[tokio::test]
async fn an_identity_from_files_read_once_ignores_later_changes() {
    let (_dir, cert, key) = identity_files();
    let first = thumbprint_of(&pem_certificates(keys::MTLS_CLIENT_CERT_PEM)[0]);
    let identity = ClientIdentity::from_pem_files(&cert, &key).unwrap();
    let http = client(Some(identity.clone()));
    replace(&cert, keys::MTLS_OTHER_CERT_PEM);
    replace(&key, keys::MTLS_OTHER_KEY_PEM);
    assert_eq!(presented_on_a_new_connection(&http).await, first);
    assert_eq!(identity.reloads(), 0);
}
