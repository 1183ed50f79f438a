//! 10,000 concurrent requests on an empty cache whose grant takes 50 ms: exactly one grant, and
//! how long after it completes each request is on its way.
//!
//! Not a criterion measurement: what matters is the distribution over one herd (p50, p99), so
//! each round runs one herd and the figures of every round are printed and written to
//! `target/bench-report/cold_herd.json`.

mod support;

use std::{
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tower::{Layer, ServiceExt};
use tower_http::auth::AddAuthorization;
use tower_oauth2::{Error, FetchContext, OAuth2Layer, Token, TokenCache, TokenSource};

const REQUESTS: usize = 10_000;
const GRANT: Duration = Duration::from_millis(50);
const ROUNDS: usize = 9;

/// A grant that takes 50 ms and notes when it completed.
struct Slow {
    grants: AtomicUsize,
    done: Mutex<Option<Instant>>,
}

impl TokenSource for Slow {
    async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
        self.grants.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(GRANT).await;
        *self.done.lock().unwrap() = Some(Instant::now());
        Ok(Token::bearer(support::TOKEN_40).with_expires_in(Duration::from_secs(3600)))
    }
}

struct Round {
    grants: usize,
    late: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn herd() -> Round {
    let source = Arc::new(Slow {
        grants: AtomicUsize::new(0),
        done: Mutex::new(None),
    });
    let service = OAuth2Layer::new(TokenCache::new(Arc::clone(&source))).layer(support::noop());
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                service.oneshot(support::plain()).await.unwrap();
                (started, Instant::now())
            })
        })
        .collect();
    let mut times = Vec::with_capacity(REQUESTS);
    for task in tasks {
        times.push(task.await.unwrap());
    }
    let done = source.done.lock().unwrap().expect("the grant completed");
    // A request that started after the grant completed did not wait for it.
    summarize(source.grants.load(Ordering::SeqCst), done, &times)
}

/// The floor: the same herd of tasks waiting on a bare `watch` channel that a task fills after
/// the same 50 ms, with no layer and no token; with `send`, each then sends the same request
/// as the layer's herd, with a static bearer header (tower-http's `AddAuthorization`).
/// Wake-ups count from the moment of the send, as the layer's count from the moment the grant
/// returns.
async fn floor(send: bool) -> Round {
    let (sender, receiver) = tokio::sync::watch::channel(None::<Instant>);
    let service = AddAuthorization::bearer(support::noop(), support::TOKEN_40);
    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let mut receiver = receiver.clone();
            let service = send.then(|| service.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let request = service.is_some().then(support::plain);
                let _ = receiver.wait_for(Option::is_some).await;
                if let (Some(service), Some(request)) = (service, request) {
                    service.oneshot(request).await.unwrap();
                }
                (started, Instant::now())
            })
        })
        .collect();
    let sent = tokio::spawn(async move {
        tokio::time::sleep(GRANT).await;
        let now = Instant::now();
        sender.send_replace(Some(now));
        now
    });
    let mut times = Vec::with_capacity(REQUESTS);
    for task in tasks {
        times.push(task.await.unwrap());
    }
    let done = sent.await.unwrap();
    drop(receiver);
    summarize(1, done, &times)
}

fn summarize(grants: usize, done: Instant, times: &[(Instant, Instant)]) -> Round {
    let late = times.iter().filter(|(started, _)| *started > done).count();
    let mut wakeups: Vec<Duration> = times
        .iter()
        .map(|(_, finished)| finished.saturating_duration_since(done))
        .collect();
    wakeups.sort();
    Round {
        grants,
        late,
        p50: percentile(&wakeups, 0.50),
        p99: percentile(&wakeups, 0.99),
        max: percentile(&wakeups, 1.0),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::env::var("WORKERS")
                .ok()
                .and_then(|w| w.parse().ok())
                .unwrap_or(2),
        )
        .enable_all()
        .build()
        .unwrap();
    let mut json = String::from("[");
    println!("cold herd: {REQUESTS} requests, {GRANT:?} grant, 2 worker threads");
    for round in 0..ROUNDS {
        let bare = runtime.block_on(floor(false));
        println!(
            "round {round}: floor (bare watch channel) wake-up p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            bare.p50.as_secs_f64() * 1e3,
            bare.p99.as_secs_f64() * 1e3,
            bare.max.as_secs_f64() * 1e3,
        );
        let sending = runtime.block_on(floor(true));
        println!(
            "round {round}: floor (watch channel, then the request with a static header) wake-up p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            sending.p50.as_secs_f64() * 1e3,
            sending.p99.as_secs_f64() * 1e3,
            sending.max.as_secs_f64() * 1e3,
        );
        let result = runtime.block_on(herd());
        println!(
            "round {round}: grants {} | started after the grant {} | wake-up p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            result.grants,
            result.late,
            result.p50.as_secs_f64() * 1e3,
            result.p99.as_secs_f64() * 1e3,
            result.max.as_secs_f64() * 1e3,
        );
        assert_eq!(result.grants, 1, "the herd caused more than one grant");
        if round > 0 {
            json.push(',');
        }
        write!(
            json,
            r#"{{"grants":{},"late":{},"p50_ms":{},"p99_ms":{},"max_ms":{},"floor_p50_ms":{},"floor_p99_ms":{},"sending_floor_p50_ms":{},"sending_floor_p99_ms":{}}}"#,
            result.grants,
            result.late,
            result.p50.as_secs_f64() * 1e3,
            result.p99.as_secs_f64() * 1e3,
            result.max.as_secs_f64() * 1e3,
            bare.p50.as_secs_f64() * 1e3,
            bare.p99.as_secs_f64() * 1e3,
            sending.p50.as_secs_f64() * 1e3,
            sending.p99.as_secs_f64() * 1e3,
        )
        .unwrap();
    }
    json.push(']');
    std::fs::write(support::report_dir().join("cold_herd.json"), json).unwrap();
}
