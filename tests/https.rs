//! The `https` feature's client over real TLS on loopback: HTTP/2 or HTTP/1.1 by ALPN, a token
//! endpoint and an API behind a certificate the client trusts, and one it does not trust.

use std::{convert::Infallible, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2::{
    ClientAuth, ErrorKind, OAuth2Layer, TokenClient,
    grant::ClientCredentials,
    https::{self, rustls},
};

/// A self-signed certificate for `localhost` and its key.
struct Identity {
    cert: rustls::pki_types::CertificateDer<'static>,
    key: Vec<u8>,
}

fn identity() -> Identity {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Identity {
        cert: certified.cert.der().clone(),
        key: certified.signing_key.serialize_der(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    tower_oauth2::https::crypto_provider()
}

/// Serves `POST /token` (a token) and anything else (the HTTP version and the bearer token
/// seen) over TLS, offering `alpn`.
async fn serve(identity: &Identity, alpn: &[&[u8]]) -> SocketAddr {
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(identity.key.clone().into());
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.clone()], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(respond);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

async fn respond(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = if request.uri().path() == "/token" {
        r#"{"access_token":"tls-token","token_type":"Bearer","expires_in":3600}"#.to_owned()
    } else {
        let bearer = request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        format!("{:?} {bearer}", request.version())
    };
    Ok(Response::new(Full::from(body)))
}

fn trusting(identity: &Identity) -> https::HttpsClient {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(identity.cert.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    https::client_with_tls_config(config)
}

async fn get(client: &https::HttpsClient, url: String) -> (Version, String) {
    let request = Request::get(url).body(Full::default()).unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    let version = response.version();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (version, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_client_speaks_http2_when_the_server_offers_it() {
    let identity = identity();
    let addr = serve(&identity, &[b"h2", b"http/1.1"]).await;
    let url = format!("https://localhost:{}/api", addr.port());
    let (version, body) = get(&trusting(&identity), url).await;
    assert_eq!(version, Version::HTTP_2);
    assert_eq!(body, "HTTP/2.0 none");
}

#[tokio::test]
async fn the_client_speaks_http11_when_the_server_offers_only_that() {
    let identity = identity();
    let addr = serve(&identity, &[b"http/1.1"]).await;
    let url = format!("https://localhost:{}/api", addr.port());
    let (version, body) = get(&trusting(&identity), url).await;
    assert_eq!(version, Version::HTTP_11);
    assert_eq!(body, "HTTP/1.1 none");
}

#[tokio::test]
async fn a_token_from_a_tls_endpoint_is_attached_to_tls_requests() {
    let identity = identity();
    let addr = serve(&identity, &[b"h2", b"http/1.1"]).await;
    let port = addr.port();
    let http = trusting(&identity);
    let endpoint =
        TokenClient::new(&format!("https://localhost:{port}/token"), http.clone()).unwrap();
    let grant = ClientCredentials::new(endpoint, ClientAuth::basic("client", "secret"));
    let client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(grant))
        .service(http);

    let request = Request::get(format!("https://localhost:{port}/api"))
        .body(Full::default())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "HTTP/2.0 Bearer tls-token");
}

#[tokio::test]
async fn a_certificate_outside_the_trusted_roots_is_refused() {
    let identity = identity();
    let addr = serve(&identity, &[b"h2", b"http/1.1"]).await;
    let url = format!("https://localhost:{}/token", addr.port());

    // `TokenClient::https` trusts Mozilla's roots, which did not sign this certificate.
    let endpoint = TokenClient::https(&url).unwrap();
    let request = tower_oauth2::TokenRequest::new("client_credentials");
    let error = endpoint
        .request(&request, &ClientAuth::basic("client", "secret"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert_eq!(
        error.to_string(),
        "could not reach token endpoint: TLS handshake failed"
    );

    let http = https::client().unwrap();
    let request = Request::get(url).body(Full::default()).unwrap();
    assert!(http.oneshot(request).await.is_err());
}

#[tokio::test]
async fn a_closed_port_is_reported_as_a_refused_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let endpoint =
        TokenClient::https(&format!("http://127.0.0.1:{port}/token?key=sentinel")).unwrap();
    let error = endpoint
        .request(
            &tower_oauth2::TokenRequest::new("client_credentials"),
            &ClientAuth::basic("client", "secret"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert_eq!(
        error.to_string(),
        "could not reach token endpoint: connection refused"
    );
}

#[tokio::test]
async fn extra_roots_from_pem_are_trusted_beside_mozillas() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let identity = Identity {
        cert: certified.cert.der().clone(),
        key: certified.signing_key.serialize_der(),
    };
    let addr = serve(&identity, &[b"h2", b"http/1.1"]).await;
    let url = format!("https://localhost:{}/api", addr.port());
    // PEM by hand: rcgen's `pem` feature is off here.
    let encoded = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        certified.cert.der(),
    );
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    );
    let http: https::HttpsClient = https::client_with_extra_roots(pem.as_bytes()).unwrap();
    let (_, body) = get(&http, url).await;
    assert_eq!(body, "HTTP/2.0 none");

    for bad in [&b""[..], b"not a certificate"] {
        let error = https::client_with_extra_roots::<Full<Bytes>>(bad).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
    }
}
