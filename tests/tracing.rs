//! Everything the crate and the HTTP stack under it log at `TRACE`, through a whole flow (a cold
//! fetch, a 401 answered by a refresh and a retry, a request that cannot be replayed, a failed
//! fetch whose error echoes the secret), is captured, and no secret appears in it.

use std::{
    io::Write,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{any, post},
};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{Layer, ServiceExt};
use tower_oauth2::{ClientAuth, OAuth2Layer, TokenCache, TokenClient, grant::ClientCredentials};
use tracing_subscriber::fmt::{MakeWriter, format::FmtSpan};

const CLIENT_SECRET: &str = "SENTINEL-client-secret-5b1f";
const ACCESS_TOKEN: &str = "SENTINEL-access-token-";
const REFRESH_TOKEN: &str = "SENTINEL-refresh-token-a77c";
const ID_TOKEN: &str = "SENTINEL-id-token-0d3e";
const QUERY_VALUE: &str = "SENTINEL-query-value-91c2";

/// Every sentinel, as it would appear in a log line or a header.
fn sentinels() -> Vec<String> {
    vec![
        CLIENT_SECRET.into(),
        ACCESS_TOKEN.into(),
        REFRESH_TOKEN.into(),
        ID_TOKEN.into(),
        QUERY_VALUE.into(),
        // The Basic credentials as they go over the wire.
        base64_basic(),
    ]
}

fn base64_basic() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("client:{CLIENT_SECRET}"))
}

/// A token endpoint and an API on loopback. Tokens are numbered; the API rejects token 1 as
/// if it had been revoked. `failing` turns the endpoint into one that answers 400 and quotes
/// the secrets it received.
#[derive(Clone, Default)]
struct Server {
    grants: Arc<AtomicUsize>,
    failing: Arc<Mutex<bool>>,
}

async fn token(State(server): State<Server>, body: Bytes) -> Response {
    let form = String::from_utf8_lossy(&body).into_owned();
    if *server.failing.lock().unwrap() {
        let body = format!(
            r#"{{"error":"invalid_client","error_description":"secret {CLIENT_SECRET} and form {form} refused"}}"#
        );
        return (StatusCode::BAD_REQUEST, body).into_response();
    }
    let n = server.grants.fetch_add(1, Ordering::SeqCst) + 1;
    format!(
        r#"{{"access_token":"{ACCESS_TOKEN}{n}","token_type":"Bearer","expires_in":3600,"refresh_token":"{REFRESH_TOKEN}","id_token":"{ID_TOKEN}"}}"#
    )
    .into_response()
}

/// Rejects token 1, as if revoked, and every `POST`.
async fn api(method: http::Method, headers: HeaderMap) -> StatusCode {
    let first = format!("Bearer {ACCESS_TOKEN}1");
    match headers.get("authorization") {
        Some(value) if value.as_bytes() != first.as_bytes() && method != "POST" => StatusCode::OK,
        _ => StatusCode::UNAUTHORIZED,
    }
}

async fn start(server: Server) -> SocketAddr {
    let router = Router::new()
        .route("/token", post(token))
        .route("/api", any(api))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Collects everything written to it.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_secret_appears_in_any_trace_output_of_a_whole_flow() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Server::default();
    let addr = start(server.clone()).await;
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let endpoint = TokenClient::new(&format!("http://{addr}/token"), http.clone()).unwrap();
    let grant = ClientCredentials::new(endpoint, ClientAuth::basic("client", CLIENT_SECRET))
        .param("audience", "orders");
    let cache = TokenCache::builder(grant)
        .attempts_per_fetch(1)
        .min_refresh_interval(Duration::from_millis(10))
        .build();
    let client = OAuth2Layer::new(cache.clone()).layer(http);
    let url = format!("http://{addr}/api?api_key={QUERY_VALUE}");

    // A cold fetch, a 401 for token 1, a refresh and a retry.
    let request = Request::get(&url).body(Full::default()).unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);

    // A request with a body the default policy cannot replay, answered 401: returned as is.
    let request = Request::post(&url)
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 401);

    // A forced fetch the endpoint refuses, quoting the secret back.
    *server.failing.lock().unwrap() = true;
    let error = cache.refresh().await.unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_client"));

    drop(_guard);
    let output = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();

    // The capture saw the flow: fetch spans with reason and outcome, the retry, the skipped
    // replay, the failure, and the HTTP stack's own trace output.
    for expected in [
        "token_fetch",
        r#"grant_type="client_credentials""#,
        r#"reason="cold""#,
        r#"reason="unauthorized""#,
        r#"reason="forced""#,
        r#"outcome="ok""#,
        r#"outcome="error""#,
        "elapsed_ms=",
        "token fetched",
        "token fetch failed",
        "retrying once with a new token",
        "could not be replayed",
        "hyper",
    ] {
        assert!(
            output.contains(expected),
            "missing {expected:?} in:\n{output}"
        );
    }
    for sentinel in sentinels() {
        assert!(
            !output.contains(&sentinel),
            "{sentinel:?} appears in the trace output:\n{output}"
        );
    }
}

#[tokio::test]
async fn a_default_subscriber_at_info_shows_each_fetch_with_its_reason_and_duration_and_each_401_retry()
 {
    let capture = Capture::default();
    // `tracing_subscriber::fmt()` as an application sets it up: INFO, no span events.
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let addr = start(Server::default()).await;
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let endpoint = TokenClient::new(&format!("http://{addr}/token"), http.clone()).unwrap();
    let grant = ClientCredentials::new(endpoint, ClientAuth::basic("client", CLIENT_SECRET));
    let client = OAuth2Layer::new(grant).layer(http);
    // A cold fetch, a 401 for token 1, a refresh and a retry; then a request from the cache.
    for _ in 0..2 {
        let request = Request::get(format!("http://{addr}/api"))
            .body(Full::default())
            .unwrap();
        assert_eq!(client.clone().oneshot(request).await.unwrap().status(), 200);
    }

    drop(_guard);
    let output = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = output.lines().collect();
    let fetched: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("token fetched"))
        .collect();
    assert_eq!(fetched.len(), 2, "{output}");
    for (line, reason) in fetched.iter().zip(["cold", "unauthorized"]) {
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains(&format!("reason=\"{reason}\"")), "{line}");
        assert!(line.contains("elapsed_ms="), "{line}");
    }
    let retries = lines.iter().filter(|l| l.contains("retrying once")).count();
    assert_eq!(retries, 1, "{output}");
    assert!(!output.contains("DEBUG"), "{output}");
}
