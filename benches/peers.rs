//! The cached-token path of the Rust peers that cache tokens, beside this crate's: each attaches
//! a cached token to a request and sends it to a no-op service. See `support/peers.rs` for how
//! each peer is set up.

mod support;

use std::{fmt::Write as _, hint::black_box};

use criterion::{Criterion, criterion_group};
use http::Request;
use tower::{Layer, Service};
use tower_http::auth::AddAuthorization;
use tower_oauth2::OAuth2Layer;

use support::{Body, TOKEN_40, noop, peers, send};

fn run<S>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut service: S,
) where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    black_box(send(&mut service, support::plain()));
    group.bench_function(name, |b| {
        b.iter(|| black_box(send(&mut service, black_box(support::plain()))));
    });
}

fn peers(c: &mut Criterion) {
    let runtime = support::runtime_with_one_worker();
    let cache = support::warm_cache(&runtime, TOKEN_40);
    let mut group = c.benchmark_group("peers");
    run(&mut group, "bare", noop());
    run(
        &mut group,
        "add_authorization",
        AddAuthorization::bearer(noop(), TOKEN_40),
    );
    run(
        &mut group,
        "tower_oauth2",
        OAuth2Layer::new(cache).layer(noop()),
    );
    run(&mut group, "aliri_tokens", peers::aliri(&runtime, noop()));
    run(&mut group, "yup_oauth2", peers::yup(&runtime, noop()));
    group.finish();
}

/// The same, interleaved batch by batch, for ratios that hold on a busy machine.
fn paired_ratios() {
    let runtime = support::runtime_with_one_worker();
    let cache = support::warm_cache(&runtime, TOKEN_40);
    let build = support::plain;
    let mut bare = noop();
    let mut add = AddAuthorization::bearer(noop(), TOKEN_40);
    let mut oauth2 = OAuth2Layer::new(cache).layer(noop());
    let mut aliri = peers::aliri(&runtime, noop());
    let mut yup = peers::yup(&runtime, noop());
    let mut variants: [(&str, &mut dyn FnMut()); 5] = [
        ("bare", &mut support::sending(&mut bare, build)),
        ("add_authorization", &mut support::sending(&mut add, build)),
        ("tower_oauth2", &mut support::sending(&mut oauth2, build)),
        ("aliri_tokens", &mut support::sending(&mut aliri, build)),
        ("yup_oauth2", &mut support::sending(&mut yup, build)),
    ];
    let timings = support::paired(&mut variants, 1500, 40);
    let bare = timings[0];
    let ours = timings[2];
    println!(
        "\npaired runs, per request (median of batches); added over bare, and that added cost over tower-oauth2's:"
    );
    let mut json = String::from("{");
    for (i, ((name, _), timing)) in variants.iter().zip(&timings).enumerate() {
        println!(
            "  {name:18} {:8.1} ns  +{:7.1} ns  x{:.2}",
            timing.median_ns,
            timing.median_ns - bare.median_ns,
            (timing.median_ns - bare.median_ns) / (ours.median_ns - bare.median_ns)
        );
        if i > 0 {
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
    std::fs::write(support::report_dir().join("peers.json"), json).unwrap();
}

criterion_group! {
    name = benches;
    config = support::quick();
    targets = peers
}

fn main() {
    benches();
    paired_ratios();
    Criterion::default().configure_from_args().final_summary();
}
