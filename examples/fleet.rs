//! Several replicas of a service sharing one token through Redis: each replica is a task with
//! a `RedisFleet` and a `TokenCache` of its own, as separate processes would have, and all of
//! them send requests through `OAuth2Layer` to the test kit's API on loopback, whose token
//! endpoint counts the grants. Run it once with the fleet and once without to compare:
//!
//! ```sh
//! cargo run --features redis --example fleet -- redis://127.0.0.1:6379
//! cargo run --features redis --example fleet -- redis://127.0.0.1:6379 --replicas 16 --alone
//! ```
//!
//! It needs a Redis (7 or later; `redis-server` on its default port will do) and says so
//! when none is given. Tokens live 4 seconds here, so the 10-second run crosses a few
//! refreshes; the last line compares grants with requests. (A cache replaces so short-lived a
//! token at half its life: one replica alone runs about two grants per token lifetime.)

use std::{
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2::{
    ClientAuth, OAuth2Layer, TokenCache, TokenClient,
    fleet::{FleetKey, RedisFleet},
    grant::ClientCredentials,
};
use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET};

const USAGE: &str = "usage: fleet REDIS_URL [--replicas N] [--seconds S] [--alone]

Runs N replicas (default 8) of a service for S seconds (default 10) against a fake token
endpoint and API on loopback, sharing tokens through the Redis at REDIS_URL, or, with
--alone, each fetching its own; prints the grants the token endpoint ran and the requests
served.";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(redis) = args.first().filter(|arg| !arg.starts_with('-')) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let number = |flag: &str, default: u64| {
        args.iter()
            .position(|arg| arg == flag)
            .and_then(|at| args.get(at + 1)?.parse().ok())
            .unwrap_or(default)
    };
    let replicas = number("--replicas", 8);
    let run_for = Duration::from_secs(number("--seconds", 10));
    let alone = args.iter().any(|arg| arg == "--alone");

    let server = AuthServer::demo().lifetime(Duration::from_secs(4));
    let loopback = match server.serve().await {
        Ok(loopback) => loopback,
        Err(error) => {
            eprintln!("fleet: cannot listen on loopback: {error}");
            return ExitCode::FAILURE;
        }
    };
    // One key for every replica, as a secret store would hand it out.
    let key = FleetKey::new(1, [0x2f; 32]);
    let requests = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + run_for;
    let mut tasks = Vec::new();
    for _ in 0..replicas {
        let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let endpoint = match TokenClient::new(&loopback.token_url(), http.clone()) {
            Ok(endpoint) => endpoint,
            Err(error) => {
                eprintln!("fleet: {error}");
                return ExitCode::FAILURE;
            }
        };
        let grant = ClientCredentials::new(endpoint, ClientAuth::basic(CLIENT_ID, CLIENT_SECRET));
        let mut cache = TokenCache::builder(grant);
        if !alone {
            let fleet = match RedisFleet::new(redis, key.clone()) {
                Ok(fleet) => fleet.namespace("example"),
                Err(error) => {
                    eprintln!("fleet: {error}");
                    return ExitCode::from(2);
                }
            };
            cache = match cache.fleet(fleet) {
                Ok(cache) => cache,
                Err(error) => {
                    eprintln!("fleet: {error}");
                    return ExitCode::FAILURE;
                }
            };
        }
        let client = ServiceBuilder::new()
            .layer(OAuth2Layer::new(cache.build()))
            .service(http);
        let (api, requests) = (loopback.api_url("/orders"), Arc::clone(&requests));
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let request = Request::get(&api).body(Full::default())?;
                let response = client.clone().oneshot(request).await?;
                if response.status().is_success() {
                    requests.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok::<_, tower_oauth2::BoxError>(())
        }));
    }
    for task in tasks {
        if let Ok(Err(error)) | Err(error) = task.await.map_err(tower_oauth2::BoxError::from) {
            eprintln!("fleet: a replica failed: {error}");
            return ExitCode::FAILURE;
        }
    }
    let lifetimes = run_for.as_secs_f64() / 4.0;
    println!(
        "{replicas} replicas {}: {} requests served, {} grants ({:.1} per token lifetime; \
         a 4-second token is replaced at half its life, so 2.0 is one grant per refresh, \
         plus the cold start)",
        if alone { "alone" } else { "in a fleet" },
        requests.load(Ordering::Relaxed),
        server.grants(),
        server.grants() as f64 / lifetimes,
    );
    ExitCode::SUCCESS
}
