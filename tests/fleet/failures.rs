//! Redis down, lost, or silent: every token fetch still succeeds, and sharing comes back.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use tokio::net::TcpListener;
use tower_oauth2::fleet::{__seam, RedisFleet};
use tracing_subscriber::fmt::MakeWriter;

use crate::support::{Issuer, OwnRedis, distinct_tokens, herd, key, scope, sources, unique_set};

/// Everything logged at `INFO` and above by every test of this binary, as text.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    /// The process-wide log, installed on first use. A global subscriber, not a scoped one:
    /// scoped subscribers miss events from other threads, and callsites that other tests
    /// registered first.
    fn global() -> &'static Log {
        static LOG: OnceLock<Log> = OnceLock::new();
        LOG.get_or_init(|| {
            let log = Log::default();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_ansi(false)
                .with_writer(log.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
            log
        })
    }

    /// Lines that name the token set with `hash` and contain `needle`.
    fn count(&self, hash: &str, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains(hash) && line.contains(needle))
            .count()
    }
}

impl Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Log {
    type Writer = Log;

    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

/// The hash that names `set`'s keys, as logs show it.
fn hash_of(fleet: &RedisFleet, set: &__seam::TokenSetId) -> String {
    let key = scope(fleet, set).token_key().to_owned();
    key[key.find('{').unwrap() + 1..key.find('}').unwrap()].to_owned()
}

fn fleet(url: &str) -> Arc<RedisFleet> {
    Arc::new(
        RedisFleet::new(url, key())
            .unwrap()
            .lease(Duration::from_secs(2))
            .timeout(Duration::from_millis(300)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_makes_every_fetch_fall_back_and_sharing_resumes_after_a_restart() {
    let log = Log::global();
    let mut server = OwnRedis::start().await;
    let fleets: Vec<_> = (0..4).map(|_| fleet(&server.url())).collect();
    let set = unique_set();
    let hash = hash_of(&fleets[0], &set);
    let issuer = Issuer::new(Duration::from_millis(50));

    let shared = herd(&fleets, &set, 10, None, &issuer).await;
    assert_eq!(issuer.grants(), 1);
    assert_eq!(sources(&shared), (39, 1, 0));
    let token = shared[0].token().clone();

    server.kill();
    // Every caller wants the token replaced (as after a 401), with Redis gone.
    let started = Instant::now();
    let alone = herd(&fleets, &set, 10, Some(&token), &issuer).await;
    assert_eq!(sources(&alone), (0, 0, 40));
    assert_eq!(issuer.grants(), 41);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    for fleet in &fleets {
        assert_eq!(fleet.stats().fallbacks, 10);
    }
    // Once per replica, however many fetches fell back.
    assert_eq!(log.count(&hash, "Redis fleet unavailable"), 4);

    server.restart().await;
    // The sets the replicas made alone are written back once Redis answers, the newest last:
    // no grant is needed to share again, and the fleet ends on the newest set of all.
    let newest = alone
        .iter()
        .map(|obtained| obtained.token())
        .max_by_key(|token| token.lineage())
        .unwrap()
        .access_token()
        .expose()
        .to_owned();
    let token_key = scope(&fleets[0], &set).token_key().to_owned();
    let raw = redis::Client::open(server.url()).unwrap();
    let mut settled = false;
    for _ in 0..150 {
        if let Ok(mut connection) = raw.get_multiplexed_async_connection().await
            && redis::cmd("EXISTS")
                .arg(&token_key)
                .query_async::<bool>(&mut connection)
                .await
                .unwrap_or(false)
        {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(settled, "no token set was written back within 15 s");
    // Replicas leave a failed Redis alone for a second before they try it again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut resumed = Vec::new();
    for _ in 0..30 {
        resumed = herd(&fleets, &set, 10, Some(&token), &issuer).await;
        if distinct_tokens(&resumed) == [newest.clone()] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(distinct_tokens(&resumed), [newest]);
    assert_eq!(sources(&resumed), (40, 0, 0));
    assert_eq!(issuer.grants(), 41);
    assert_eq!(log.count(&hash, "Redis fleet answers again"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_while_the_replicas_were_idle_is_used_at_once() {
    let mut server = OwnRedis::start().await;
    let fleets: Vec<_> = (0..2).map(|_| fleet(&server.url())).collect();
    let set = unique_set();
    let issuer = Issuer::new(Duration::ZERO);
    let first = herd(&fleets, &set, 1, None, &issuer).await;
    assert_eq!(sources(&first), (1, 1, 0));

    // Down and back while nobody asked: the clients' connections died, and their own attempts
    // to reconnect failed while the server was away.
    server.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart().await;

    let after = herd(&fleets, &set, 1, None, &issuer).await;
    assert_eq!(
        sources(&after),
        (1, 1, 0),
        "the first call after the restart fell back"
    );
    assert_eq!(fleets.iter().map(|f| f.stats().fallbacks).sum::<u64>(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_times_out_and_the_grant_runs_locally() {
    // Accepts connections, reads nothing, answers nothing.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });

    let fleet = fleet(&url);
    let set = unique_set();
    let scope = scope(&fleet, &set);
    let issuer = Issuer::new(Duration::ZERO);

    let started = Instant::now();
    let first = __seam::obtain(&fleet, &scope, None, issuer.grant())
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(first.as_str(), "fallback");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    // One timeout to connect, and no second one to subscribe or read.
    assert!(waited < Duration::from_millis(1000), "{waited:?}");

    // Within a second of the failure the fleet does not wait for Redis again.
    let started = Instant::now();
    let second = __seam::obtain(&fleet, &scope, Some(first.token()), issuer.grant())
        .await
        .unwrap();
    assert_eq!(second.as_str(), "fallback");
    assert!(started.elapsed() < Duration::from_millis(100));
    let retired = __seam::retire(&fleet, &scope, second.token()).await;
    assert_eq!(retired, __seam::Retired::Unavailable);
    assert_eq!(issuer.grants(), 2);
    assert_eq!(fleet.stats().fallbacks, 2);
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_refuses_connections_makes_the_grant_run_locally_at_once() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fleet = fleet(&format!("redis://127.0.0.1:{port}"));
    let scope = scope(&fleet, &unique_set());
    let issuer = Issuer::new(Duration::ZERO);
    let started = Instant::now();
    let obtained = __seam::obtain(&fleet, &scope, None, issuer.grant())
        .await
        .unwrap();
    assert_eq!(obtained.as_str(), "fallback");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_urls_share_tokens_over_tls() {
    let url = std::env::var("FLEET_REDIS_TLS_URL")
        .expect("FLEET_REDIS_TLS_URL is not set: run these tests with fleet/run.sh");
    assert!(url.starts_with("rediss://"));
    let fleets: Vec<_> = (0..3).map(|_| fleet(&url)).collect();
    let set = unique_set();
    let issuer = Issuer::new(Duration::from_millis(50));
    let obtained = herd(&fleets, &set, 5, None, &issuer).await;
    assert_eq!(sources(&obtained), (14, 1, 0));
    assert_eq!(issuer.grants(), 1);
    // The same port without TLS is a server that never answers sensibly: every fetch falls
    // back, none fails.
    let plain = fleet(&url.replacen("rediss://", "redis://", 1));
    let alone = herd(&[plain], &set, 2, None, &issuer).await;
    assert_eq!(sources(&alone), (0, 0, 2));
}
