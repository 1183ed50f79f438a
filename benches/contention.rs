//! Two threads sending through one layered client: the cost per request should not rise over
//! one thread's. Two patterns: each thread reuses a clone of its own, or clones the client for
//! every request (`client.clone().oneshot(request)`, as the examples do). tower-http's static
//! header shares one reference count between clones, and it shows.

mod support;

use std::{
    fmt::Write as _,
    hint::black_box,
    sync::{
        Barrier,
        atomic::{AtomicU64, Ordering},
    },
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
                    let mut request = support::warmed_request(&mut service);
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
    let runtime = support::runtime();
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
/// that ran side by side. Each round, every thread runs `BATCH` requests after a barrier, and
/// every `CHECK` requests publishes its progress and looks at the other thread's: a round
/// counts only if, at eight checks in ten or more, the other thread had moved on since the
/// last check. On a machine whose cores other work also wants, this keeps the rounds where the
/// threads really competed, and drops those where one ran while the other was descheduled.
/// `None` if fewer than ten rounds did.
fn side_by_side<S>(service: &S, threads: usize, pattern: Pattern) -> Option<support::Timing>
where
    S: Service<Request<Body>, Response = Response<Request<Body>>> + Clone + Send + Sync,
    S::Error: std::fmt::Debug,
{
    const ROUNDS: usize = 150;
    const BATCH: usize = 6000;
    const CHECK: usize = 100;
    let barrier = SpinBarrier::new(threads);
    // One counter per thread, each on a cache line of its own.
    let progress: Vec<Padded> = (0..threads).map(|_| Padded::default()).collect();
    let results: Vec<Vec<(f64, bool)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|me| {
                let shared = service;
                let mut service = service.clone();
                let (barrier, progress) = (&barrier, &progress);
                scope.spawn(move || {
                    let mut request = support::warmed_request(&mut service);
                    let other = &progress[(me + 1) % threads].0;
                    let mut results = Vec::with_capacity(ROUNDS);
                    let mut ticks = 0_u64;
                    for _ in 0..ROUNDS {
                        barrier.wait();
                        let (mut seen, mut moved) = (other.load(Ordering::Relaxed), 0);
                        let began = Instant::now();
                        for chunk in 0..BATCH / CHECK {
                            for _ in 0..CHECK {
                                request = match pattern {
                                    Pattern::Reused => recycle(&mut service, black_box(request)),
                                    Pattern::ClonePerRequest => {
                                        recycle(&mut shared.clone(), black_box(request))
                                    }
                                };
                            }
                            ticks += 1;
                            progress[me].0.store(ticks, Ordering::Relaxed);
                            let now = other.load(Ordering::Relaxed);
                            if now != seen || threads == 1 {
                                moved += 1;
                            }
                            seen = now;
                            black_box(chunk);
                        }
                        let ns = began.elapsed().as_secs_f64() * 1e9 / BATCH as f64;
                        results.push((ns, moved * 10 >= (BATCH / CHECK) * 8));
                    }
                    results
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .collect()
    });
    let mut per_op: Vec<f64> = (0..ROUNDS)
        .filter(|&round| results.iter().all(|r| r[round].1))
        .map(|round| results.iter().map(|r| r[round].0).sum::<f64>() / threads as f64)
        .collect();
    per_op.sort_by(f64::total_cmp);
    if per_op.len() < 10 {
        return None;
    }
    Some(support::Timing {
        min_ns: per_op[0],
        median_ns: per_op[per_op.len() / 2],
    })
}

/// How each thread reaches the layer.
#[derive(Debug, Clone, Copy)]
enum Pattern {
    /// One clone per thread, made ready and called for each request.
    Reused,
    /// A clone of the one shared client for every request, dropped after it: the client
    /// itself never sends a request.
    ClonePerRequest,
}

/// [`side_by_side`], tried up to five times: other work on the machine can keep the threads
/// from running together for a while.
fn overlapped<S>(service: &S, threads: usize, pattern: Pattern) -> support::Timing
where
    S: Service<Request<Body>, Response = Response<Request<Body>>> + Clone + Send + Sync,
    S::Error: std::fmt::Debug,
{
    (0..5)
        .find_map(|_| side_by_side(service, threads, pattern))
        .expect("the threads never ran side by side: the machine is too busy")
}

#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A barrier whose threads spin instead of sleeping, so that all of them leave it at once: a
/// thread woken from sleep can start a batch long after the others.
struct SpinBarrier {
    threads: usize,
    arrived: AtomicU64,
    generation: AtomicU64,
}

impl SpinBarrier {
    fn new(threads: usize) -> Self {
        Self {
            threads,
            arrived: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads as u64 {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
        } else {
            while self.generation.load(Ordering::Acquire) == generation {
                std::hint::spin_loop();
            }
        }
    }
}

fn overlapped_ratios() {
    let runtime = support::runtime();
    let cache = support::warm_cache(&runtime, TOKEN_40);
    let layer = OAuth2Layer::new(cache);
    let mut json = String::from("{");
    println!("\nrounds that ran side by side, per request (median of rounds), two threads / one:");
    let mut report = |name: &str, one: support::Timing, two: support::Timing| {
        println!(
            "  {name:34} 1 thread {:7.1} ns | 2 threads {:7.1} ns | x{:.3} (by min x{:.3})",
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
            for (pattern, prefix) in [
                (Pattern::Reused, "reused"),
                (Pattern::ClonePerRequest, "clone"),
            ] {
                let name = format!("{prefix}/{}", $name);
                let one = overlapped(&service, 1, pattern);
                let two = overlapped(&service, 2, pattern);
                report(&name, one, two);
            }
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
