//! What a Redis fleet saves and costs, against a real Redis and the test kit's server on
//! loopback. `scripts/fleet-bench.sh` starts a Redis and runs this; by hand:
//!
//! ```sh
//! FLEET_BENCH_REDIS=redis://127.0.0.1:6379 cargo bench --features redis --bench fleet
//! ```
//!
//! Two parts:
//!
//! - **grants**: 1, 2, 4, 8 and 16 replicas, each an OS process (this binary again, with
//!   `--replica`), send requests without pause for three token lifetimes, with and without
//!   the fleet; the token endpoint counts the grants.
//! - **misses**: how long a cold cache waits for its first token when another replica's token
//!   is in Redis, when it runs the grant for the fleet, and when it has no fleet.
//!
//! Prints markdown tables, and writes them to `target/bench-report/fleet.md`.

mod support;

use std::{
    fmt::Write as _,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2::{
    ClientAuth, OAuth2Layer, TokenCache, TokenClient, TokenSource,
    fleet::{__seam, FleetKey, RedisFleet},
    grant::ClientCredentials,
};
use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET};

type Http = Client<HttpConnector, Full<Bytes>>;

const LIFETIME: Duration = Duration::from_secs(2);
const LIFETIMES: u32 = 3;
const REPLICAS: [usize; 5] = [1, 2, 4, 8, 16];
const MISSES: usize = 300;

fn http() -> Http {
    Client::builder(TokioExecutor::new()).build_http()
}

fn key() -> FleetKey {
    FleetKey::new(1, [0x3c; 32])
}

fn grant(token_url: &str, http: Http) -> ClientCredentials {
    let endpoint = TokenClient::new(token_url, http).expect("a loopback URL");
    ClientCredentials::new(endpoint, ClientAuth::basic(CLIENT_ID, CLIENT_SECRET))
}

fn redis_url() -> String {
    std::env::var("FLEET_BENCH_REDIS").unwrap_or_else(|_| {
        eprintln!("fleet: set FLEET_BENCH_REDIS to a Redis URL, or run scripts/fleet-bench.sh");
        std::process::exit(2)
    })
}

/// One replica process: 4 concurrent request loops for `run_for`, then its counts on stdout.
async fn replica(token_url: String, api_url: String, redis: Option<String>, run_for: Duration) {
    let http = http();
    let mut builder = TokenCache::builder(grant(&token_url, http.clone()));
    if let Some(url) = redis {
        let fleet = RedisFleet::new(&url, key()).expect("a Redis URL");
        builder = builder
            .fleet(fleet)
            .expect("client credentials have an identity");
    }
    let cache = builder.build();
    let client = ServiceBuilder::new()
        .layer(OAuth2Layer::new(cache.clone()))
        .service(http);
    let deadline = Instant::now() + run_for;
    let mut loops = Vec::new();
    for _ in 0..4 {
        let (client, api_url) = (client.clone(), api_url.clone());
        loops.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let request = Request::get(&api_url).body(Full::default()).unwrap();
                let response = client.clone().oneshot(request).await.unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for task in loops {
        task.await.unwrap();
    }
    let stats = cache.stats();
    println!("fetches={} shared={}", stats.fetches, stats.shared);
}

/// Grants per token lifetime for `count` replica processes.
async fn grants_per_lifetime(count: usize, redis: Option<&str>) -> f64 {
    let server = AuthServer::demo().lifetime(LIFETIME);
    let loopback = server.serve().await.expect("a loopback port");
    let run_for = LIFETIME * LIFETIMES;
    let exe = std::env::current_exe().expect("this binary");
    let mut children = Vec::new();
    for _ in 0..count {
        let mut command = tokio::process::Command::new(&exe);
        command
            .arg("--replica")
            .arg(loopback.token_url())
            .arg(loopback.api_url("/orders"))
            .arg(run_for.as_millis().to_string())
            .args(redis)
            .stdout(Stdio::null())
            .kill_on_drop(true);
        children.push(command.spawn().expect("a replica starts"));
    }
    for mut child in children {
        assert!(child.wait().await.expect("a replica ends").success());
    }
    server.grants() as f64 / f64::from(LIFETIMES)
}

/// Median and 99th percentile of `samples`, in microseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    (micros(at(0.5)), micros(at(0.99)))
}

/// How long a cold cache waits for its first token, three ways.
async fn misses(redis: &str) -> Vec<(&'static str, (f64, f64))> {
    let server = AuthServer::demo();
    let loopback = server.serve().await.expect("a loopback port");
    let token_url = loopback.token_url();
    let http = http();
    let fleet = Arc::new(RedisFleet::new(redis, key()).expect("a Redis URL"));
    let source = grant(&token_url, http.clone());
    let token_key = __seam::scope(&fleet, &source.identity().expect("an identity"))
        .token_key()
        .to_owned();
    let in_fleet = || {
        TokenCache::builder(grant(&token_url, http.clone()))
            .fleet(Arc::clone(&fleet))
            .expect("an identity")
            .build()
    };
    let alone = || TokenCache::new(grant(&token_url, http.clone()));
    let mut redis_client = redis::Client::open(redis)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis answers");

    // Warm every connection first.
    in_fleet().token().await.expect("a token");
    alone().token().await.expect("a token");

    let nothing = async || {};
    let from_redis = first_tokens(nothing, in_fleet).await;
    let delete = async || {
        let _: () = redis::cmd("DEL")
            .arg(&token_key)
            .query_async(&mut redis_client)
            .await
            .expect("DEL");
    };
    let granted_for_fleet = first_tokens(delete, in_fleet).await;
    let granted_alone = first_tokens(nothing, alone).await;
    vec![
        ("from Redis (another replica's token)", from_redis),
        ("by a grant, for the fleet", granted_for_fleet),
        ("by a grant, without a fleet", granted_alone),
    ]
}

/// How long the first token of `MISSES` new caches takes, `prepare` run before each.
async fn first_tokens(
    mut prepare: impl AsyncFnMut(),
    new_cache: impl Fn() -> TokenCache,
) -> (f64, f64) {
    let mut samples = Vec::with_capacity(MISSES);
    for _ in 0..MISSES {
        prepare().await;
        let cache = new_cache();
        let started = Instant::now();
        cache.token().await.expect("a token");
        samples.push(started.elapsed());
    }
    percentiles(samples)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    if let Some(at) = args.iter().position(|arg| arg == "--replica") {
        let rest = &args[at + 1..];
        let run_for = Duration::from_millis(rest[2].parse().expect("milliseconds"));
        runtime.block_on(replica(
            rest[0].clone(),
            rest[1].clone(),
            rest.get(3).cloned(),
            run_for,
        ));
        return;
    }
    let redis = redis_url();
    let mut report = String::new();
    writeln!(
        report,
        "Grants per token lifetime ({} s tokens, refreshed at half their life; {LIFETIMES} \
         lifetimes of requests from 4 loops per replica, cold start included):\n",
        LIFETIME.as_secs()
    )
    .unwrap();
    report.push_str(
        "| replicas (processes) | without a fleet | with a fleet |\n| ---: | ---: | ---: |\n",
    );
    for count in REPLICAS {
        let alone = runtime.block_on(grants_per_lifetime(count, None));
        let shared = runtime.block_on(grants_per_lifetime(count, Some(&redis)));
        writeln!(report, "| {count} | {alone:.1} | {shared:.1} |").unwrap();
        println!("{count} replicas: {alone:.1} grants per lifetime alone, {shared:.1} in a fleet");
    }
    writeln!(
        report,
        "\nA cold cache's first token ({MISSES} each; the grant is a token request to the \
         test kit's server on loopback):\n\n| served | median | p99 |\n| --- | ---: | ---: |"
    )
    .unwrap();
    for (what, (median, p99)) in runtime.block_on(misses(&redis)) {
        writeln!(report, "| {what} | {median:.0} µs | {p99:.0} µs |").unwrap();
    }
    println!("\n{report}");
    std::fs::write(support::report_dir().join("fleet.md"), report).expect("a writable target");
}
