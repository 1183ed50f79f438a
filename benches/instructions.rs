//! Instructions per request, counted by `valgrind --tool=callgrind`: unlike times, these counts
//! do not move with the load of a shared machine, so small differences between middlewares
//! show.
//!
//! Run without arguments (as `cargo bench --bench instructions` does), the binary runs itself
//! under callgrind once per case and prints the table; `--case NAME` runs one case. Counting is
//! switched on only inside `measure`, so setup does not count. Figures go to
//! `target/bench-report/instructions.json`. Without valgrind it says so and exits.

mod support;

use std::{fmt::Write as _, hint::black_box, process::Command};

use http::{Request, Response, header::AUTHORIZATION};
use tower::{Layer, Service};
use tower_http::{auth::AddAuthorization, set_header::SetRequestHeader};
use tower_oauth2::{NoReplay, OAuth2Layer};

use support::{Body, TOKEN_40, bearer_header, echo, noop, peers, send};

mod herd {
    //! Instructions from the moment the grant completes until every waiting request has its
    //! answer, on a one-thread runtime so that the count is the same on every run: the work a
    //! cold herd's wake-up takes, which its wake-up time on a loaded machine only hints at.

    use std::{
        hint::black_box,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use tokio::sync::Notify;
    use tower::{Layer, ServiceExt};
    use tower_http::auth::AddAuthorization;
    use tower_oauth2::{Error, FetchContext, OAuth2Layer, Token, TokenCache, TokenSource};

    use super::{REQUESTS, support};

    /// A grant that completes when the gate opens.
    struct Gated(Arc<Notify>);

    impl TokenSource for Gated {
        async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
            self.0.notified().await;
            Ok(Token::bearer(support::TOKEN_40).with_expires_in(Duration::from_secs(3600)))
        }
    }

    /// Counts requests that reached their wait and requests that got their answer.
    #[derive(Default)]
    struct Progress {
        parked: AtomicUsize,
        answered: AtomicUsize,
        all_answered: Notify,
    }

    impl Progress {
        fn answered(&self) {
            if self.answered.fetch_add(1, Ordering::SeqCst) + 1 == REQUESTS as usize {
                self.all_answered.notify_one();
            }
        }
    }

    pub(super) fn run(which: &str) {
        let runtime = support::runtime();
        let gate = Arc::new(Notify::new());
        let progress = Arc::new(Progress::default());
        match which {
            // The floor: the same requests, sent with a static bearer header (tower-http's
            // `AddAuthorization`) once a `watch` channel says so.
            "watch_floor" => {
                let (sender, receiver) = tokio::sync::watch::channel(false);
                let service = AddAuthorization::bearer(support::noop(), support::TOKEN_40);
                for _ in 0..REQUESTS {
                    let (mut receiver, progress) = (receiver.clone(), Arc::clone(&progress));
                    let (service, request) = (service.clone(), support::plain());
                    runtime.spawn(async move {
                        progress.parked.fetch_add(1, Ordering::SeqCst);
                        let _ = receiver.wait_for(|open| *open).await;
                        black_box(service.oneshot(request).await.unwrap());
                        progress.answered();
                    });
                }
                let gate = Arc::clone(&gate);
                runtime.spawn(async move {
                    gate.notified().await;
                    sender.send_replace(true);
                });
            }
            "oauth2" => {
                let cache = TokenCache::new(Gated(Arc::clone(&gate)));
                let service = OAuth2Layer::new(cache).layer(support::noop());
                for _ in 0..REQUESTS {
                    let (service, progress) = (service.clone(), Arc::clone(&progress));
                    let request = support::plain();
                    runtime.spawn(async move {
                        progress.parked.fetch_add(1, Ordering::SeqCst);
                        black_box(service.oneshot(request).await.unwrap());
                        progress.answered();
                    });
                }
            }
            other => panic!("no herd {other}"),
        }
        // Every request runs up to its wait before the gate opens.
        runtime.block_on(async {
            while progress.parked.load(Ordering::SeqCst) < REQUESTS as usize {
                tokio::task::yield_now().await;
            }
            tokio::task::yield_now().await;
        });
        assert_eq!(progress.answered.load(Ordering::SeqCst), 0);
        super::measure_herd(&|| {
            gate.notify_one();
            runtime.block_on(progress.all_answered.notified());
        });
        assert_eq!(progress.answered.load(Ordering::SeqCst), REQUESTS as usize);
    }
}

/// A warm cache in a fleet whose Redis is never reached (nothing listens on port 1): its first
/// fetch falls back to the source, and the measured requests find the token cached.
#[cfg(feature = "redis")]
fn fleet_cache(runtime: &tokio::runtime::Runtime) -> tower_oauth2::TokenCache {
    use tower_oauth2::{
        Error, FetchContext, Token, TokenCache, TokenSetId, TokenSource,
        fleet::{FleetKey, RedisFleet},
    };

    struct Shareable;

    impl TokenSource for Shareable {
        async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
            Ok(Token::bearer(TOKEN_40).with_expires_in(std::time::Duration::from_secs(3600)))
        }

        fn identity(&self) -> Option<TokenSetId> {
            Some(TokenSetId::new(
                "https://auth.example.com/token",
                "bench",
                "custom",
            ))
        }
    }

    let fleet = RedisFleet::new("redis://127.0.0.1:1", FleetKey::new(1, [7; 32])).unwrap();
    let cache = TokenCache::builder(Shareable).fleet(fleet).unwrap().build();
    runtime.block_on(cache.token()).unwrap();
    cache
}

#[cfg(not(feature = "redis"))]
fn fleet_cache(_: &tokio::runtime::Runtime) -> tower_oauth2::TokenCache {
    panic!("the fleet cases need the redis feature")
}

/// Counts what `release` does: named so that callgrind's `--toggle-collect` finds it.
#[inline(never)]
fn measure_herd(release: &dyn Fn()) {
    release();
}

const REQUESTS: u64 = 20_000;

/// How requests reach the layer: one service made ready and called for each request, or a
/// clone of the client per request (`client.clone().oneshot(request)`, as the examples do).
const PATTERNS: [&str; 2] = ["reused", "clone"];
const SHAPES: [&str; 3] = ["plain", "six_headers", "static_uri"];
const MIDDLEWARES: [&str; 6] = [
    "bare",
    "add_authorization",
    "add_authorization_retry",
    "oauth2",
    "oauth2_no_replay",
    "aliri_tokens",
];
/// Cases kept from earlier runs of the suite (a request recycled through an echo service, and
/// the slower peer), and a layer with 1, 4 and 16 destinations of their own, the request going
/// to the one checked last.
const EXTRA: [&str; 9] = [
    "reused/plain/oauth2_routes_1",
    "reused/plain/oauth2_routes_4",
    "reused/plain/oauth2_routes_16",
    "reused/recycled/bare",
    "reused/recycled/add_authorization",
    "reused/recycled/oauth2",
    "reused/recycled/oauth2_no_replay",
    "reused/plain/set_request_header",
    "reused/plain/yup_oauth2",
];
/// With the `redis` feature: the same request through a cache that shares its tokens through a
/// Redis fleet. A cached request must not touch the fleet, so this counts as `oauth2` does.
#[cfg(feature = "redis")]
const FLEET: [&str; 2] = ["reused/plain/oauth2_fleet", "clone/plain/oauth2_fleet"];
#[cfg(not(feature = "redis"))]
const FLEET: [&str; 0] = [];
/// The cold herd, counted: what releasing `REQUESTS` requests that wait for the first token
/// costs per request, against the same requests waiting on a bare `watch` channel and then
/// sent with a static header.
const HERDS: [&str; 2] = ["herd/watch_floor", "herd/oauth2"];

#[inline(never)]
fn measure<S>(service: &mut S, build: fn() -> Request<Body>)
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..REQUESTS {
        black_box(send(service, black_box(build)()));
    }
}

#[inline(never)]
fn measure_clones<S>(service: &S, build: fn() -> Request<Body>)
where
    S: Service<Request<Body>> + Clone,
    S::Error: std::fmt::Debug,
{
    for _ in 0..REQUESTS {
        black_box(support::oneshot(service.clone(), black_box(build)()));
    }
}

#[inline(never)]
fn measure_recycled<S>(service: &mut S, mut request: Request<Body>) -> Request<Body>
where
    S: Service<Request<Body>, Response = Response<Request<Body>>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..REQUESTS {
        request = support::recycle(service, black_box(request));
    }
    request
}

fn run<S>(pattern: &str, mut service: S, build: fn() -> Request<Body>)
where
    S: Service<Request<Body>> + Clone,
    S::Error: std::fmt::Debug,
{
    for _ in 0..2 {
        black_box(send(&mut service, build()));
    }
    for _ in 0..repeat() {
        match pattern {
            "reused" => measure(&mut service, build),
            "clone" => measure_clones(&service, build),
            other => panic!("no pattern {other}"),
        }
    }
}

/// A layer with `count` destinations of their own, each with a warm cache; the request of the
/// benchmarks (`https://api.example.com/v1/...`) goes to the one checked last.
fn routes(runtime: &tokio::runtime::Runtime, count: usize) -> OAuth2Layer {
    let mut layer = OAuth2Layer::new(support::warm_cache(runtime, TOKEN_40));
    for n in 1..count {
        let destination = format!("https://api.example.com/route{n}");
        layer = layer
            .route(&destination, support::warm_cache(runtime, TOKEN_40))
            .expect("a valid destination");
    }
    layer
        .route(
            "https://api.example.com/v1",
            support::warm_cache(runtime, TOKEN_40),
        )
        .expect("a valid destination")
}

/// How many times to run the measured loop: 1, or `--repeat N` for a sampling profiler.
fn repeat() -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == "--repeat")
        .and_then(|at| args.get(at + 1)?.parse().ok())
        .unwrap_or(1)
}

fn run_recycled<S>(mut service: S)
where
    S: Service<Request<Body>, Response = Response<Request<Body>>>,
    S::Error: std::fmt::Debug,
{
    let request = support::warmed_request(&mut service);
    black_box(measure_recycled(&mut service, request));
}

fn one_case(name: &str) {
    if let Some(herd) = name.strip_prefix("herd/") {
        herd::run(herd);
        return;
    }
    let runtime = support::runtime_with_one_worker();
    let cache = if name.ends_with("_fleet") {
        fleet_cache(&runtime)
    } else {
        support::warm_cache(&runtime, TOKEN_40)
    };
    let layer = OAuth2Layer::new(cache);
    let mut parts = name.splitn(3, '/');
    let (Some(pattern), Some(shape), Some(middleware)) = (parts.next(), parts.next(), parts.next())
    else {
        panic!("a case is PATTERN/SHAPE/MIDDLEWARE");
    };
    if shape == "recycled" {
        match middleware {
            "bare" => run_recycled(echo()),
            "add_authorization" => run_recycled(AddAuthorization::bearer(echo(), TOKEN_40)),
            "oauth2" => run_recycled(layer.layer(echo())),
            "oauth2_no_replay" => run_recycled(layer.replay(NoReplay).layer(echo())),
            other => panic!("no middleware {other}"),
        }
        return;
    }
    let build = match shape {
        "plain" => support::plain,
        "six_headers" => support::six_headers,
        "static_uri" => support::static_uri,
        other => panic!("no shape {other}"),
    };
    match middleware {
        "bare" => run(pattern, noop(), build),
        "set_request_header" => run(
            pattern,
            SetRequestHeader::overriding(noop(), AUTHORIZATION, bearer_header(TOKEN_40)),
            build,
        ),
        "add_authorization" => run(pattern, AddAuthorization::bearer(noop(), TOKEN_40), build),
        "add_authorization_retry" => run(pattern, support::retry_by_hand(noop()), build),
        "oauth2" | "oauth2_fleet" => run(pattern, layer.layer(noop()), build),
        "oauth2_no_replay" => run(pattern, layer.replay(NoReplay).layer(noop()), build),
        "aliri_tokens" => run(pattern, peers::aliri(&runtime, noop()), build),
        routed if routed.starts_with("oauth2_routes_") => {
            let count: usize = routed["oauth2_routes_".len()..].parse().expect("a count");
            run(pattern, routes(&runtime, count).layer(noop()), build)
        }
        "yup_oauth2" => run(pattern, peers::yup(&runtime, noop()), build),
        other => panic!("no middleware {other}"),
    }
}

/// Instructions per request of `case`, or `None` if callgrind could not run.
fn count(case: &str) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let output = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--collect-atstart=no",
            "--toggle-collect=*instructions::measure*",
        ])
        .arg(exe)
        .args(["--case", case])
        .output()
        .ok()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let collected = stderr
        .lines()
        .find_map(|line| line.split("Collected :").nth(1))?
        .trim()
        .parse::<f64>()
        .ok()?;
    output
        .status
        .success()
        .then_some(collected / REQUESTS as f64)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--case") {
        one_case(&args[at + 1]);
        return;
    }
    let filter = args.iter().skip(1).find(|arg| !arg.starts_with("--"));
    let mut cases: Vec<String> = PATTERNS
        .iter()
        .flat_map(|pattern| SHAPES.iter().map(move |shape| format!("{pattern}/{shape}")))
        .flat_map(|prefix| MIDDLEWARES.iter().map(move |m| format!("{prefix}/{m}")))
        .collect();
    cases.extend(EXTRA.iter().map(|case| (*case).to_owned()));
    cases.extend(FLEET.iter().map(|case| (*case).to_owned()));
    cases.extend(HERDS.iter().map(|herd| (*herd).to_owned()));
    cases.retain(|case| filter.is_none_or(|filter| case.contains(filter.as_str())));

    let mut json = String::from("{");
    for (i, case) in cases.iter().enumerate() {
        let Some(per_request) = count(case) else {
            println!("instructions: valgrind --tool=callgrind is not available here; skipped");
            return;
        };
        println!("{case:32} {per_request:10.1} instructions per request");
        if i > 0 {
            json.push(',');
        }
        write!(json, r#""{case}":{per_request}"#).unwrap();
    }
    json.push('}');
    std::fs::write(support::report_dir().join("instructions.json"), json).unwrap();
}
