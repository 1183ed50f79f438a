//! Pieces every benchmark shares: a no-op inner service, the requests to send, a warm cache, and
//! a way to drive a future that is ready at once without a runtime.

#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod peers;

use std::{
    convert::Infallible,
    future::{Future, Ready, ready},
    path::PathBuf,
    pin::pin,
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Empty;
use tower::Service;
use tower_http::auth::AddAuthorization;
use tower_oauth2::{Error, FetchContext, Token, TokenCache, TokenSource};

pub type Body = Empty<Bytes>;

/// A 40-byte access token, the size of an opaque token from most servers.
pub const TOKEN_40: &str = "tok_4f1c2a9e7b3d5f60a8c1e2d3b4a5968778695a";

/// A token of about 1 KiB, the size of a JWT with a few claims and an RS256 signature.
pub fn token_1k() -> String {
    let mut token = String::from("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.");
    while token.len() < 1024 {
        token.push_str("eyJzdWIiOiJiZW5jaCJ9");
    }
    token.truncate(1024);
    token
}

/// A token source that answers at once with a fixed token that lives for an hour.
#[derive(Clone)]
pub struct Fixed(pub String);

impl TokenSource for Fixed {
    async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
        Ok(Token::bearer(self.0.clone()).with_expires_in(Duration::from_secs(3600)))
    }
}

/// A current-thread runtime, for benchmarks that drive the layer by hand.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// A runtime with one worker thread, for peers that spawn tasks of their own.
pub fn runtime_with_one_worker() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a one-worker runtime")
}

/// A cache holding `token`, warmed inside `runtime` so that its expiry timer runs there.
pub fn warm_cache(runtime: &tokio::runtime::Runtime, token: &str) -> TokenCache {
    let cache = TokenCache::new(Fixed(token.to_owned()));
    runtime
        .block_on(cache.token())
        .expect("a fixed source always answers");
    cache
}

/// The inner service: answers every request at once, touching nothing.
pub type Noop =
    tower::util::ServiceFn<fn(Request<Body>) -> Ready<Result<Response<Body>, Infallible>>>;

pub fn noop() -> Noop {
    fn answer(_: Request<Body>) -> Ready<Result<Response<Body>, Infallible>> {
        ready(Ok(Response::new(Body::new())))
    }
    tower::service_fn(answer as fn(_) -> _)
}

/// The request every hot-path benchmark builds: a `GET` to a URI parsed from a string, as
/// clients build them.
pub fn plain() -> Request<Body> {
    Request::get("https://api.example.com/v1/orders?limit=10")
        .body(Body::new())
        .expect("a valid request")
}

/// The same request with six headers, so `Authorization` is the seventh and the header map
/// must grow.
pub fn six_headers() -> Request<Body> {
    Request::get("https://api.example.com/v1/orders?limit=10")
        .header("accept", "application/json")
        .header("user-agent", "bench/1.0")
        .header("accept-encoding", "gzip, br")
        .header("x-request-id", "7f8e9d0c-1b2a-4c3d-9e8f-0a1b2c3d4e5f")
        .header("x-tenant", "acme")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(Body::new())
        .expect("a valid request")
}

/// A request that allocates nothing to build: a static URI and no headers.
pub fn static_uri() -> Request<Body> {
    let mut request = Request::new(Body::new());
    *request.uri_mut() = Uri::from_static("https://api.example.com/v1/orders?limit=10");
    request
}

/// `Bearer <token>` as a header value, the way a static header is configured.
pub fn bearer_header(token: &str) -> HeaderValue {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).expect("a valid header");
    value.set_sensitive(true);
    value
}

/// Polls `future` once, expecting it to be ready: every inner service here answers at once.
///
/// Always inlined, like `send`, so that every middleware is measured inlined into the loop
/// that drives it, whatever the size of its code.
#[inline(always)]
pub fn now<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmark's future was not ready at once"),
    }
}

/// Sends `request` through `service` the way tower does: readiness first, then the call, then
/// the response future to completion.
#[inline(always)]
pub fn send<S, B>(service: &mut S, request: Request<B>) -> S::Response
where
    S: Service<Request<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        _ => panic!("the benchmark's service was not ready"),
    }
    now(service.call(request)).expect("the no-op service never fails")
}

/// Where the benchmarks that are not plain criterion measurements write their figures, for
/// `scripts/bench-report.py`.
pub fn report_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench-report");
    std::fs::create_dir_all(&dir).expect("the target folder is writable");
    dir
}

/// A criterion configuration that keeps the whole suite to a few minutes.
pub fn quick() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .noise_threshold(0.03)
        .configure_from_args()
}

/// An inner service that hands the request back as the response body, so a benchmark can send
/// one request over and over: with its header map cleared, not rebuilt, no request allocates.
pub type Echo =
    tower::util::ServiceFn<fn(Request<Body>) -> Ready<Result<Response<Request<Body>>, Infallible>>>;

pub fn echo() -> Echo {
    fn answer(request: Request<Body>) -> Ready<Result<Response<Request<Body>>, Infallible>> {
        ready(Ok(Response::new(request)))
    }
    tower::service_fn(answer as fn(_) -> _)
}

/// Sends `request` through `service` (over [`echo`]) and returns it with its headers cleared,
/// ready to be sent again.
#[inline(always)]
pub fn recycle<S>(service: &mut S, request: Request<Body>) -> Request<Body>
where
    S: Service<Request<Body>, Response = Response<Request<Body>>>,
    S::Error: std::fmt::Debug,
{
    let mut request = send(service, request).into_body();
    request.headers_mut().clear();
    request
}

/// A static-URI request sent twice through `service` (over [`echo`]), ready to be recycled:
/// the second send makes a layered clone take its own copy of the header.
pub fn warmed_request<S>(service: &mut S) -> Request<Body>
where
    S: Service<Request<Body>, Response = Response<Request<Body>>>,
    S::Error: std::fmt::Debug,
{
    let request = recycle(service, static_uri());
    recycle(service, request)
}

/// One variant of a paired run: sends a request of shape `build` through `service`.
pub fn sending<S>(service: &mut S, build: Build) -> impl FnMut() + '_
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    move || {
        drop(std::hint::black_box(send(
            service,
            std::hint::black_box(build)(),
        )))
    }
}

/// Times of one variant in a paired run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The fastest batch, per operation: the figure least disturbed by other work.
    pub min_ns: f64,
    /// The median batch, per operation.
    pub median_ns: f64,
}

/// Runs `batch` operations of each variant in turn, `rounds` times, rotating which goes first,
/// and returns per-operation timings. Unlike criterion, which measures one variant after the
/// other, this exposes every variant to the same moments of a noisy machine, so the ratios
/// between them hold even when the absolute times drift.
pub fn paired(
    variants: &mut [(&str, &mut dyn FnMut())],
    rounds: usize,
    batch: usize,
) -> Vec<Timing> {
    use std::time::Instant;
    let mut samples = vec![Vec::with_capacity(rounds); variants.len()];
    for (_, op) in variants.iter_mut() {
        for _ in 0..batch {
            op();
        }
    }
    for round in 0..rounds {
        for step in 0..variants.len() {
            let which = (round + step) % variants.len();
            let op = &mut variants[which].1;
            let started = Instant::now();
            for _ in 0..batch {
                op();
            }
            samples[which].push(started.elapsed().as_secs_f64() * 1e9 / batch as f64);
        }
    }
    samples
        .into_iter()
        .map(|mut times| {
            times.sort_by(f64::total_cmp);
            Timing {
                min_ns: times[0],
                median_ns: times[times.len() / 2],
            }
        })
        .collect()
}

/// Builds the request of one shape.
pub type Build = fn() -> Request<Body>;

/// The request shapes of the hot-path benchmarks.
pub const SHAPES: [(&str, Build); 3] = [
    ("plain", plain),
    ("six_headers", six_headers),
    ("static_uri", static_uri),
];

/// Sends `request` through `service` the way `ServiceExt::oneshot` does, for a clone made per
/// request: readiness, the call, the response future, then the clone is dropped.
#[inline(always)]
pub fn oneshot<S, B>(mut service: S, request: Request<B>) -> S::Response
where
    S: Service<Request<B>>,
    S::Error: std::fmt::Debug,
{
    send(&mut service, request)
}

/// What a user would otherwise build by hand for one retry after a 401: tower's `Retry`, with a
/// policy that clones every request before it is sent, over tower-http's `AddAuthorization`.
pub fn retry_by_hand<S>(inner: S) -> tower::retry::Retry<RetryOnce, AddAuthorization<S>> {
    tower::retry::Retry::new(
        RetryOnce { spent: false },
        AddAuthorization::bearer(inner, TOKEN_40),
    )
}

/// Retries a request once after a 401 answer.
#[derive(Clone)]
pub struct RetryOnce {
    spent: bool,
}

impl<B: Clone, Res, E> tower::retry::Policy<Request<B>, Response<Res>, E> for RetryOnce {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<B>,
        result: &mut Result<Response<Res>, E>,
    ) -> Option<Self::Future> {
        let unauthorized = matches!(result, Ok(response) if response.status() == 401);
        if unauthorized && !self.spent {
            self.spent = true;
            return Some(ready(()));
        }
        None
    }

    fn clone_request(&mut self, request: &Request<B>) -> Option<Request<B>> {
        let mut clone = Request::new(request.body().clone());
        *clone.method_mut() = request.method().clone();
        *clone.uri_mut() = request.uri().clone();
        *clone.version_mut() = request.version();
        *clone.headers_mut() = request.headers().clone();
        *clone.extensions_mut() = request.extensions().clone();
        Some(clone)
    }
}
