//! A small authorization server and protected API on loopback, so the examples run anywhere.
//!
//! - `POST /token` runs the client-credentials grant, and the refresh-token grant for
//!   [`REFRESH_TOKEN`], for one client (HTTP Basic or form credentials) and issues opaque tokens
//!   that live `token_lifetime`. A wrong client secret gets an RFC 6749 error body
//!   (`invalid_client`); an unknown refresh token gets a vendor error envelope.
//! - `/api/...` answers 200 for a valid token (`{"orders":[]}` to a `GET`, the method and body
//!   size to anything else) and 401 with `WWW-Authenticate: Bearer error="invalid_token"` for a
//!   missing, unknown, revoked or expired one.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub(crate) const CLIENT_ID: &str = "demo-client";
pub(crate) const CLIENT_SECRET: &str = "demo-secret";
/// The one refresh token the refresh-token grant accepts.
pub(crate) const REFRESH_TOKEN: &str = "demo-refresh-token";

/// The running demo server, and what it has seen.
pub(crate) struct DemoServer {
    pub(crate) addr: SocketAddr,
    state: Arc<State>,
}

struct State {
    token_lifetime: Duration,
    tokens: Mutex<HashMap<String, Instant>>,
    grants: AtomicUsize,
    api_calls: AtomicUsize,
    rejected: AtomicUsize,
}

impl DemoServer {
    /// Starts the server on an ephemeral loopback port.
    pub(crate) async fn start(token_lifetime: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            token_lifetime,
            tokens: Mutex::new(HashMap::new()),
            grants: AtomicUsize::new(0),
            api_calls: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
        });
        tokio::spawn(serve(listener, Arc::clone(&state)));
        Ok(Self { addr, state })
    }

    pub(crate) fn token_url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub(crate) fn api_url(&self, path: &str) -> String {
        format!("http://{}/api{path}", self.addr)
    }

    /// Token requests answered with a token.
    pub(crate) fn grants(&self) -> usize {
        self.state.grants.load(Ordering::SeqCst)
    }

    /// API requests answered 401.
    pub(crate) fn rejected(&self) -> usize {
        self.state.rejected.load(Ordering::SeqCst)
    }

    /// API requests received.
    pub(crate) fn api_calls(&self) -> usize {
        self.state.api_calls.load(Ordering::SeqCst)
    }

    /// Revokes every token issued so far, as an administrator would.
    pub(crate) fn revoke_all(&self) {
        self.state.tokens.lock().unwrap().clear();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(&state, request).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::POST, "/token") => token(state, request).await,
        (_, path) if path.starts_with("/api") => api(state, request).await,
        _ => respond(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn token(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let basic = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .and_then(|decoded| String::from_utf8(decoded).ok());
    let Ok(body) = request.into_body().collect().await else {
        return respond(StatusCode::BAD_REQUEST, "unreadable body");
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body.to_bytes())
        .into_owned()
        .collect();
    let from_form = form
        .get("client_id")
        .zip(form.get("client_secret"))
        .map(|(id, secret)| format!("{id}:{secret}"));
    let credentials = basic.or(from_form);

    let grant_type = form.get("grant_type").map(String::as_str);
    if !matches!(grant_type, Some("client_credentials" | "refresh_token")) {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    if credentials.as_deref() != Some(&format!("{CLIENT_ID}:{CLIENT_SECRET}")) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if grant_type == Some("refresh_token")
        && form.get("refresh_token").map(String::as_str) != Some(REFRESH_TOKEN)
    {
        return json(
            StatusCode::BAD_REQUEST,
            r#"{"meta":{"pagination":{"limit":0,"offset":0,"total_count":0}},"errors":[{"httpcode":400,"message":"invalid refresh token"}]}"#.to_owned(),
        );
    }
    let n = state.grants.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("demo-token-{n}-{:08x}", rand_suffix());
    let expires_at = Instant::now() + state.token_lifetime;
    state
        .tokens
        .lock()
        .unwrap()
        .insert(token.clone(), expires_at);
    let body = format!(
        r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
        state.token_lifetime.as_secs()
    );
    json(StatusCode::OK, body)
}

async fn api(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    state.api_calls.fetch_add(1, Ordering::SeqCst);
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let valid = token.is_some_and(|token| {
        let tokens = state.tokens.lock().unwrap();
        tokens
            .get(token)
            .is_some_and(|expires| *expires > Instant::now())
    });
    if valid {
        let method = request.method().clone();
        if method == Method::GET {
            return json(StatusCode::OK, r#"{"orders":[]}"#.to_owned());
        }
        let Ok(body) = request.into_body().collect().await else {
            return respond(StatusCode::BAD_REQUEST, "unreadable body");
        };
        let size = body.to_bytes().len();
        return json(
            StatusCode::OK,
            format!(r#"{{"method":"{method}","bytes":{size}}}"#),
        );
    }
    state.rejected.fetch_add(1, Ordering::SeqCst);
    let mut response = respond(StatusCode::UNAUTHORIZED, "invalid token");
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
    );
    response
}

fn oauth_error(status: StatusCode, code: &str) -> Response<Full<Bytes>> {
    json(status, format!(r#"{{"error":"{code}"}}"#))
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = respond(status, body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// Enough randomness that tokens from two runs differ; the demo needs no more.
fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) as u32
}
