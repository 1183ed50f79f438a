//! Heap allocations per request with a cached token, counted by a global allocator: the layer
//! adds none to what inserting the header costs anyway, except one buffer for the retry copy
//! of a request that carries headers of its own. A DPoP-bound token adds its proof, and the
//! buffers of the second copy a nonce resend needs.
//!
//! One test only in this binary: the count is global, and a test running beside it would add
//! its own allocations.

use std::{
    alloc::System,
    convert::Infallible,
    future::{Future, Ready, ready},
    pin::pin,
    task::{Context, Poll, Waker},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Empty;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service};
use tower_http::auth::AddAuthorization;
use tower_oauth2::{Error, FetchContext, NoReplay, OAuth2Layer, Token, TokenCache, TokenSource};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Body = Empty<Bytes>;

struct Fixed;

impl TokenSource for Fixed {
    async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
        Ok(Token::bearer("tok_4f1c2a9e7b3d5f60a8c1e2d3b4a5968778695a")
            .with_expires_in(Duration::from_secs(3600)))
    }
}

fn answer(_: Request<Body>) -> Ready<Result<Response<Body>, Infallible>> {
    ready(Ok(Response::new(Body::new())))
}

type Answer = fn(Request<Body>) -> Ready<Result<Response<Body>, Infallible>>;

fn noop() -> tower::util::ServiceFn<Answer> {
    tower::service_fn(answer as Answer)
}

fn send<S>(service: &mut S, request: Request<Body>)
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    match pin!(service.call(request)).poll(&mut cx) {
        Poll::Ready(response) => drop(response.unwrap()),
        Poll::Pending => panic!("the no-op service answers at once"),
    }
}

/// Allocations per request through `service`, with requests from `build`.
fn per_request<S>(mut service: S, build: fn() -> Request<Body>) -> u64
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    // The second request makes a layered service take its own copy of the header.
    send(&mut service, build());
    send(&mut service, build());
    // The count is the process's: another thread of the test harness that allocates while a
    // run is counted can only add to it, so the least of a few runs is the requests' own.
    let total = (0..5)
        .map(|_| {
            let region = Region::new(GLOBAL);
            for _ in 0..100 {
                send(&mut service, build());
            }
            let change = region.change();
            (change.allocations + change.reallocations) as u64
        })
        .min()
        .unwrap_or_default();
    assert_eq!(total % 100, 0, "a varying count: {total} in 100 requests");
    total / 100
}

fn parsed() -> Request<Body> {
    Request::get("https://api.example.com/v1/orders?limit=10")
        .body(Body::new())
        .unwrap()
}

fn static_uri() -> Request<Body> {
    let mut request = Request::new(Body::new());
    *request.uri_mut() = Uri::from_static("https://api.example.com/v1/orders?limit=10");
    request
}

fn with_headers() -> Request<Body> {
    Request::get("https://api.example.com/v1/orders?limit=10")
        .header("accept", "application/json")
        .header("x-request-id", "7f8e9d0c-1b2a-4c3d-9e8f-0a1b2c3d4e5f")
        .body(Body::new())
        .unwrap()
}

#[test]
fn a_cached_token_request_allocates_nothing_beyond_the_header_insert_but_one_buffer_for_headers() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = TokenCache::new(Fixed);
    runtime.block_on(cache.token()).unwrap();
    let layer = OAuth2Layer::new(cache);
    let token = "tok_4f1c2a9e7b3d5f60a8c1e2d3b4a5968778695a";

    for (shape, build, replay_buffers) in [
        ("parsed URI", parsed as fn() -> Request<Body>, 0),
        ("static URI", static_uri, 0),
        ("two headers", with_headers, 1),
    ] {
        let floor = per_request(AddAuthorization::bearer(noop(), token), build);
        let layered = per_request(layer.clone().layer(noop()), build);
        let no_replay = per_request(layer.clone().replay(NoReplay).layer(noop()), build);
        assert_eq!(
            layered,
            floor + replay_buffers,
            "{shape}: default replay policy"
        );
        assert_eq!(no_replay, floor, "{shape}: no replay");

        #[cfg(feature = "dpop")]
        {
            let bound = TokenCache::new(Bound(tower_oauth2::DpopKey::generate().unwrap()));
            runtime.block_on(bound.token()).unwrap();
            let layer = OAuth2Layer::new(bound);
            let proof = 1;
            let spare = replay_buffers;
            let layered_dpop = per_request(layer.clone().layer(noop()), build);
            let no_replay_dpop = per_request(layer.replay(NoReplay).layer(noop()), build);
            assert_eq!(
                layered_dpop,
                layered + proof + spare,
                "{shape}: DPoP, default replay policy"
            );
            assert_eq!(
                no_replay_dpop,
                no_replay + proof,
                "{shape}: DPoP, no replay"
            );
        }
    }
}

/// A source of one DPoP-bound token.
#[cfg(feature = "dpop")]
struct Bound(tower_oauth2::DpopKey);

#[cfg(feature = "dpop")]
impl TokenSource for Bound {
    async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
        Ok(Token::bearer("tok_4f1c2a9e7b3d5f60a8c1e2d3b4a5968778695a")
            .with_expires_in(Duration::from_secs(3600))
            .with_dpop(&self.0))
    }
}
