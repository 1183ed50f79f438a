//! Heap allocations per request with a cached token, counted by a global allocator, for each
//! middleware and request shape. What the layer adds is its count minus the count of the same
//! request through tower-http's `AddAuthorization` (which inserts the same header) and minus the
//! bare service's.

mod support;

use std::{alloc::System, fmt::Write as _, hint::black_box};

use http::{Request, Response, header::AUTHORIZATION};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service};
use tower_http::{auth::AddAuthorization, set_header::SetRequestHeader};
use tower_oauth2::{NoReplay, OAuth2Layer};

use support::{Body, TOKEN_40, bearer_header, echo, noop, send};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const REQUESTS: u64 = 1000;

/// Allocations (and reallocations) per request, building each request with `build`.
fn per_request<S>(mut service: S, build: fn() -> Request<Body>) -> f64
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..2 {
        black_box(send(&mut service, build()));
    }
    let region = Region::new(GLOBAL);
    for _ in 0..REQUESTS {
        black_box(send(&mut service, build()));
    }
    let change = region.change();
    (change.allocations + change.reallocations) as f64 / REQUESTS as f64
}

/// The same, sending one request over and over through an echo service, so that building the
/// request costs nothing.
fn per_recycled_request<S>(mut service: S) -> f64
where
    S: Service<Request<Body>, Response = Response<Request<Body>>>,
    S::Error: std::fmt::Debug,
{
    let mut request = support::warmed_request(&mut service);
    let region = Region::new(GLOBAL);
    for _ in 0..REQUESTS {
        request = support::recycle(&mut service, black_box(request));
    }
    let change = region.change();
    (change.allocations + change.reallocations) as f64 / REQUESTS as f64
}

fn main() {
    let runtime = support::runtime();
    let cache = support::warm_cache(&runtime, TOKEN_40);
    let layer = OAuth2Layer::new(cache);
    let shapes = support::SHAPES;

    let mut rows = Vec::new();
    for (shape, build) in shapes {
        let bare = per_request(noop(), build);
        let add = per_request(AddAuthorization::bearer(noop(), TOKEN_40), build);
        let set = per_request(
            SetRequestHeader::overriding(noop(), AUTHORIZATION, bearer_header(TOKEN_40)),
            build,
        );
        let oauth2 = per_request(layer.clone().layer(noop()), build);
        let no_replay = per_request(layer.clone().replay(NoReplay).layer(noop()), build);
        rows.push((shape, bare, set, add, oauth2, no_replay));
    }
    rows.push((
        "recycled",
        per_recycled_request(echo()),
        per_recycled_request(SetRequestHeader::overriding(
            echo(),
            AUTHORIZATION,
            bearer_header(TOKEN_40),
        )),
        per_recycled_request(AddAuthorization::bearer(echo(), TOKEN_40)),
        per_recycled_request(layer.clone().layer(echo())),
        per_recycled_request(layer.clone().replay(NoReplay).layer(echo())),
    ));

    let mut table = String::from(
        "| request | bare | SetRequestHeader | AddAuthorization | OAuth2 (EmptyBodies) | OAuth2 (NoReplay) |\n|---|---|---|---|---|---|\n",
    );
    let mut json = String::from("[");
    for (i, (shape, bare, set, add, oauth2, no_replay)) in rows.iter().enumerate() {
        writeln!(
            table,
            "| {shape} | {bare:.2} | {set:.2} | {add:.2} | {oauth2:.2} (+{:.2}) | {no_replay:.2} (+{:.2}) |",
            oauth2 - add,
            no_replay - add
        )
        .unwrap();
        if i > 0 {
            json.push(',');
        }
        write!(
            json,
            r#"{{"request":"{shape}","bare":{bare},"set_request_header":{set},"add_authorization":{add},"oauth2":{oauth2},"oauth2_no_replay":{no_replay}}}"#
        )
        .unwrap();
    }
    json.push(']');
    println!("allocations per request (in brackets: added over AddAuthorization)\n\n{table}");
    std::fs::write(support::report_dir().join("allocations.json"), json).unwrap();
}
