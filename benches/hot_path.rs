//! Per-request time with a cached token: build a request and send it through the layer to a
//! no-op service, beside the bare service, tower-http's static header (alone, and under tower's
//! `Retry` with a policy that clones every request), and aliri_tokens' cached token.

mod support;

use std::{fmt::Write as _, hint::black_box};

use criterion::{Criterion, criterion_group};
use http::{Request, header::AUTHORIZATION};
use tower::{Layer, Service};
use tower_http::{auth::AddAuthorization, set_header::SetRequestHeader};
use tower_oauth2::{NoReplay, OAuth2Layer};

use support::{Body, TOKEN_40, bearer_header, noop, send};

fn run<S>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut service: S,
    build: fn() -> Request<Body>,
) where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    // The first request makes a layered clone take its own copy of the header.
    black_box(send(&mut service, build()));
    c.bench_function(name, |b| {
        b.iter(|| black_box(send(&mut service, black_box(build)())));
    });
}

fn hot_path(c: &mut Criterion) {
    let runtime = support::runtime();
    let cache = support::warm_cache(&runtime, TOKEN_40);
    let shapes = support::SHAPES;
    for (shape, build) in shapes {
        let mut group = c.benchmark_group(format!("hot_path/{shape}"));
        run(&mut group, "bare", noop(), build);
        run(
            &mut group,
            "set_request_header",
            SetRequestHeader::overriding(noop(), AUTHORIZATION, bearer_header(TOKEN_40)),
            build,
        );
        run(
            &mut group,
            "add_authorization",
            AddAuthorization::bearer(noop(), TOKEN_40),
            build,
        );
        run(
            &mut group,
            "oauth2",
            OAuth2Layer::new(cache.clone()).layer(noop()),
            build,
        );
        run(
            &mut group,
            "oauth2_no_replay",
            OAuth2Layer::new(cache.clone())
                .replay(NoReplay)
                .layer(noop()),
            build,
        );
        group.finish();
    }
}

/// The same variants and the hand-built floors and peer, interleaved batch by batch, for ratios
/// that hold on a busy machine.
fn paired_ratios() {
    let runtime = support::runtime_with_one_worker();
    let cache = support::warm_cache(&runtime, TOKEN_40);
    let shapes = support::SHAPES;
    let mut json = String::from("{");
    println!(
        "\npaired runs, per request (min of batches / median of batches), ratio to AddAuthorization by min and by median:"
    );
    for (i, (shape, build)) in shapes.into_iter().enumerate() {
        let mut bare = noop();
        let mut add = AddAuthorization::bearer(noop(), TOKEN_40);
        let mut by_hand = support::retry_by_hand(noop());
        let mut oauth2 = OAuth2Layer::new(cache.clone()).layer(noop());
        let mut no_replay = OAuth2Layer::new(cache.clone())
            .replay(NoReplay)
            .layer(noop());
        let mut aliri = support::peers::aliri(&runtime, noop());
        let mut variants: [(&str, &mut dyn FnMut()); 6] = [
            ("bare", &mut support::sending(&mut bare, build)),
            ("add_authorization", &mut support::sending(&mut add, build)),
            (
                "add_authorization_retry",
                &mut support::sending(&mut by_hand, build),
            ),
            ("oauth2", &mut support::sending(&mut oauth2, build)),
            (
                "oauth2_no_replay",
                &mut support::sending(&mut no_replay, build),
            ),
            ("aliri_tokens", &mut support::sending(&mut aliri, build)),
        ];
        let timings = support::paired(&mut variants, 1500, 40);
        let floor = timings[1];
        if i > 0 {
            json.push(',');
        }
        write!(json, r#""{shape}":{{"#).unwrap();
        for (j, ((name, _), timing)) in variants.iter().zip(&timings).enumerate() {
            println!(
                "  {shape:12} {name:24} {:8.1} ns / {:8.1} ns   x{:.3} / x{:.3}",
                timing.min_ns,
                timing.median_ns,
                timing.min_ns / floor.min_ns,
                timing.median_ns / floor.median_ns
            );
            if j > 0 {
                json.push(',');
            }
            write!(
                json,
                r#""{name}":{{"min_ns":{},"median_ns":{}}}"#,
                timing.min_ns, timing.median_ns
            )
            .unwrap();
        }
        json.push('}');
    }
    json.push('}');
    std::fs::write(support::report_dir().join("hot_path.json"), json).unwrap();
}

criterion_group! {
    name = benches;
    config = support::quick();
    targets = hot_path
}

fn main() {
    benches();
    paired_ratios();
    Criterion::default().configure_from_args().final_summary();
}
