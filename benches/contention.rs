//! Two threads, each sending through its own clone of one layered service: the cost per request
//! should not rise over one thread's. tower-http's static header shares one reference count
//! between clones, and it shows.

mod support;

use std::{
    fmt::Write as _,
    hint::black_box,
    sync::Barrier,
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, criterion_group};
use http::{Request, Response, header::AUTHORIZATION};
use tower::{Layer, Service};
use tower_http::{auth::AddAuthorization, set_header::SetRequestHeader};
use tower_oauth2::{NoReplay, OAuth2Layer};

use support::{Body, TOKEN_40, bearer_header, echo, recycle};

/// Runs `iters` requests on each of `threads` threads, each with its own clone of `service`,
/// and returns the mean time one thread took.
fn hammer<S>(service: &S, threads: usize, iters: u64) -> Duration
where
    S: Service<Request<Body>, Response = Response<Request<Body>>> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    let start = Barrier::new(threads);
    let total: Duration = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let mut service = service.clone();
                let start = &start;
                scope.spawn(move || {
                    // Two requests: the second makes a layered clone take its own header.
                    let request = recycle(&mut service, support::static_uri());
                    let mut request = recycle(&mut service, request);
                    start.wait();
                    let began = Instant::now();
                    for _ in 0..iters {
                        request = recycle(&mut service, black_box(request));
                    }
                    began.elapsed()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .sum()
    });
    total / threads as u32
}

fn bench<S>(c: &mut Criterion, name: &str, service: S)
where
    S: Service<Request<Body>, Response = Response<Request<Body>>> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    let mut group = c.benchmark_group(format!("contention/{name}"));
    for threads in [1, 2] {
        group.bench_function(BenchmarkId::new("threads", threads), |b| {
            b.iter_custom(|iters| hammer(&service, threads, iters));
        });
    }
    group.finish();
}

fn contention(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = support::warm_cache(&runtime, TOKEN_40);
    bench(c, "bare", echo());
    bench(
        c,
        "set_request_header",
        SetRequestHeader::overriding(echo(), AUTHORIZATION, bearer_header(TOKEN_40)),
    );
    bench(
        c,
        "add_authorization",
        AddAuthorization::bearer(echo(), TOKEN_40),
    );
    bench(c, "oauth2", OAuth2Layer::new(cache.clone()).layer(echo()));
    bench(
        c,
        "oauth2_no_replay",
        OAuth2Layer::new(cache).replay(NoReplay).layer(echo()),
    );
}

/// Per-request time on `threads` threads, each with its own clone of `service`, from batches
/// that ran truly side by side: each round, every thread runs `BATCH` requests between two
/// barriers, and a round counts only if the threads' batches overlapped for at least 90% of
/// their length. On a machine whose cores other work also wants, this keeps the rounds where
/// the threads really competed, and drops those where one ran while the other waited.
fn overlapped<S>(service: &S, threads: usize) -> support::Timing
where
    S: Service<Request<Body>, Response = Response<Request<Body>>> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    const ROUNDS: usize = 400;
    const BATCH: usize = 2000;
    let barrier = Barrier::new(threads);
    let spans: Vec<Vec<(Instant, Instant)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let mut service = service.clone();
                let barrier = &barrier;
                scope.spawn(move || {
                    let request = recycle(&mut service, support::static_uri());
                    let mut request = recycle(&mut service, request);
                    let mut spans = Vec::with_capacity(ROUNDS);
                    for _ in 0..ROUNDS {
                        barrier.wait();
                        let began = Instant::now();
                        for _ in 0..BATCH {
                            request = recycle(&mut service, black_box(request));
                        }
                        spans.push((began, Instant::now()));
                    }
                    spans
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .collect()
    });
    let mut per_op: Vec<f64> = (0..ROUNDS)
        .filter_map(|round| {
            let start = spans.iter().map(|s| s[round].0).max().unwrap();
            let end = spans.iter().map(|s| s[round].1).min().unwrap();
            let longest = spans.iter().map(|s| s[round].1 - s[round].0).max().unwrap();
            let overlap = end.saturating_duration_since(start);
            (overlap.as_secs_f64() >= 0.9 * longest.as_secs_f64()).then(|| {
                let total: f64 = spans
                    .iter()
                    .map(|s| (s[round].1 - s[round].0).as_secs_f64())
                    .sum();
                total / threads as f64 / BATCH as f64 * 1e9
            })
        })
        .collect();
    per_op.sort_by(f64::total_cmp);
    assert!(!per_op.is_empty(), "no round ran side by side");
    support::Timing {
        min_ns: per_op[0],
        median_ns: per_op[per_op.len() / 2],
    }
}

fn overlapped_ratios() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = support::warm_cache(&runtime, TOKEN_40);
    let layer = OAuth2Layer::new(cache);
    let mut json = String::from("{");
    println!("\nrounds that ran side by side, per request (median of rounds), two threads / one:");
    let mut report = |name: &str, one: support::Timing, two: support::Timing| {
        println!(
            "  {name:20} 1 thread {:7.1} ns | 2 threads {:7.1} ns | x{:.3} (by min x{:.3})",
            one.median_ns,
            two.median_ns,
            two.median_ns / one.median_ns,
            two.min_ns / one.min_ns
        );
        if json.len() > 1 {
            json.push(',');
        }
        write!(
            json,
            r#""{name}":{{"one_median_ns":{},"two_median_ns":{},"one_min_ns":{},"two_min_ns":{}}}"#,
            one.median_ns, two.median_ns, one.min_ns, two.min_ns
        )
        .unwrap();
    };
    macro_rules! measure {
        ($name:expr, $service:expr) => {{
            let service = $service;
            report($name, overlapped(&service, 1), overlapped(&service, 2));
        }};
    }
    measure!("bare", echo());
    measure!(
        "set_request_header",
        SetRequestHeader::overriding(echo(), AUTHORIZATION, bearer_header(TOKEN_40))
    );
    measure!(
        "add_authorization",
        AddAuthorization::bearer(echo(), TOKEN_40)
    );
    measure!("oauth2", layer.clone().layer(echo()));
    measure!(
        "oauth2_no_replay",
        layer.clone().replay(NoReplay).layer(echo())
    );
    json.push('}');
    std::fs::write(support::report_dir().join("contention.json"), json).unwrap();
}

criterion_group! {
    name = benches;
    config = support::quick();
    targets = contention
}

fn main() {
    benches();
    overlapped_ratios();
    Criterion::default().configure_from_args().final_summary();
}
