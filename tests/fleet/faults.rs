//! Nothing lost under faults: four replica processes (the `curl` example) share one rotating
//! refresh token of oidc-provider (`interop/server.mjs`: 2-second access tokens, and reusing a
//! spent refresh token revokes the whole grant) through Redis, reached through the test kit's
//! [`RedisProxy`], which injects one fault for 30 seconds of load. Each test then asks the
//! server: no `invalid_grant`, no revoked grant; every process: every request answered 2xx,
//! none slower than the bound `TokenCacheBuilder::fetch_timeout` documents (twice the fetch
//! timeout plus the minimum refresh interval).
//!
//! The tests run one at a time (each holds [`ONE_AT_A_TIME`]): four processes under load each,
//! on a machine of two cores, and a latency bound to keep, would otherwise measure each other.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    time::Instant,
};
use tower_oauth2::{
    ClientAuth, TokenSource,
    fleet::{__seam, FleetKey},
    grant::RefreshToken,
};
use tower_oauth2_testkit::redis_proxy::{Action, RedisProxy, Rule};

use crate::{
    interop::{api_url, authorize, counters, issuer, native_grant, token_client},
    process::{KEY, curl_binary, key_file},
    support::{Mode, query, replica, standalone_url},
};

/// Held by each test for its whole run.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PROCESSES: usize = 4;
/// Requests per process, one every 20 ms: a little over 30 s of load.
const REQUESTS: usize = 1500;
const INTERVAL: Duration = Duration::from_millis(20);
/// How long each fault is injected, from the processes' start.
const FAULT_WINDOW: Duration = Duration::from_secs(30);

/// The replicas' settings (`--fetch-timeout-ms`, `--redis-timeout-ms`, `--redis-lease-ms`).
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const LEASE: Duration = Duration::from_secs(10);
/// `TokenCacheBuilder::min_refresh_interval`'s default, which the example keeps.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// What `TokenCacheBuilder::fetch_timeout` promises: no request waits for a token longer.
const BOUND: Duration = FETCH_TIMEOUT
    .saturating_mul(2)
    .saturating_add(MIN_REFRESH_INTERVAL);
/// A process that has waited this long for an answer is stopped: it is over the bound.
const STALLED: Duration = BOUND.saturating_mul(2);
/// Measured from outside the process (a request is the gap between two lines of its
/// output, less the pause): the API call itself, the pipe and the scheduler on two busy cores.
const MEASURING_SLACK: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_proxy_without_a_fault_nothing_is_lost() {
    // The control: the same run with the proxy in the path and no rule. Were this to fail,
    // the others would prove nothing.
    run(
        "fleet-fault-none",
        async |_| {},
        async |fault| {
            tokio::time::sleep(FAULT_WINDOW).await;
            format!("no fault, {} commands proxied", fault.proxy.seen(|_| true))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_never_makes_a_replica_reuse_a_spent_refresh_token() {
    // The first commit (the cold start's) goes through; then every third write of the token
    // set fails, as a Redis that refuses writes (OOM, a read-only replica after a failover).
    run(
        "fleet-fault-commit",
        async |_| {},
        async |fault| {
            let rule = fault.proxy.add(
                Rule::new(
                    Action::Fail("ERR injected: write refused"),
                    writes_token_set,
                )
                .after(1)
                .every(3)
                .for_window(FAULT_WINDOW),
            );
            tokio::time::sleep(FAULT_WINDOW).await;
            format!("{} commits failed", fault.proxy.acted(rule))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_delayed_past_the_redis_timeout_never_makes_a_replica_reuse_a_spent_refresh_token()
{
    // Every third write of the token set reaches Redis twice the Redis timeout late: the
    // holder gave up on it, then it lands. The holder's later commands wait behind it.
    run(
        "fleet-fault-delayed-commit",
        async |_| {},
        async |fault| {
            let rule = fault.proxy.add(
                Rule::new(Action::Delay(2 * REDIS_TIMEOUT), writes_token_set)
                    .after(1)
                    .every(3)
                    .for_window(FAULT_WINDOW),
            );
            tokio::time::sleep(FAULT_WINDOW).await;
            format!("{} commits delayed", fault.proxy.acted(rule))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_sealed_value_copied_back_is_never_taken_over_a_newer_token_set() {
    // A rollback: the genuine sealed value is saved with a plain GET, and 2.5 s later (past
    // its access token's life, one rotation or more later) SET back under its key, over and
    // over, as a restored backup or a stale replica promoted would.
    run(
        "fleet-fault-rollback",
        async |_| {},
        async |fault| {
            let mut restored = 0;
            let started = Instant::now();
            while started.elapsed() < FAULT_WINDOW {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Some(old) = crate::support::get(Mode::Standalone, &fault.token_key).await
                else {
                    continue;
                };
                tokio::time::sleep(Duration::from_millis(2500)).await;
                crate::support::set(Mode::Standalone, &fault.token_key, &old).await;
                restored += 1;
            }
            format!("{restored} old values restored")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_set_without_ttl_does_not_make_every_cold_replica_a_leader() {
    // `SET lease x`: a lease that never expires, there before the fleet starts, and set
    // again every 8 s (over a lease a replica may hold at that moment).
    run(
        "fleet-fault-lease-no-ttl",
        async |fault| set_lease(&fault.lease_key, None).await,
        async |fault| {
            let mut set = 1;
            let started = Instant::now();
            while started.elapsed() + Duration::from_secs(8) < FAULT_WINDOW {
                tokio::time::sleep(Duration::from_secs(8)).await;
                set_lease(&fault.lease_key, None).await;
                set += 1;
            }
            format!("lease set {set} times without a TTL")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_ten_minute_lease_does_not_wedge_the_fleet() {
    // `SET lease x PX 600000`: held by no replica, there before the fleet starts, and set
    // again every 8 s in case a replica cleared it.
    let ten_minutes = Some(Duration::from_secs(600));
    run(
        "fleet-fault-foreign-lease",
        async |fault| set_lease(&fault.lease_key, ten_minutes).await,
        async |fault| {
            let mut set = 1;
            let started = Instant::now();
            while started.elapsed() + Duration::from_secs(8) < FAULT_WINDOW {
                tokio::time::sleep(Duration::from_secs(8)).await;
                set_lease(&fault.lease_key, ten_minutes).await;
                set += 1;
            }
            format!("foreign lease set {set} times")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_latency_spikes_of_twice_the_timeout_lose_nothing_and_keep_the_bound() {
    // Every 4 s Redis stalls for twice the Redis timeout (as one slow command or a fork for
    // a snapshot stalls it): every command sent meanwhile, on every connection, is answered
    // when the stall ends. Each replica's commands time out, and it tries again.
    let stall = 2 * REDIS_TIMEOUT;
    run(
        "fleet-fault-latency",
        async |_| {},
        async |fault| {
            let mut stalled = 0;
            let started = Instant::now();
            while started.elapsed() + stall < FAULT_WINDOW {
                tokio::time::sleep(Duration::from_secs(4).saturating_sub(stall)).await;
                let rule = fault
                    .proxy
                    .add(Rule::new(Action::Stall, |_| true).for_window(stall));
                tokio::time::sleep(stall).await;
                stalled += fault.proxy.acted(rule);
                fault.proxy.remove(rule);
            }
            format!("{stalled} commands stalled {} ms", stall.as_millis())
        },
    )
    .await;
}

/// Whether `command` may write the token set: a `SET` of its key, or a script or function
/// that names it (the commit, and the compare-and-swap of a retire).
fn writes_token_set(command: &tower_oauth2_testkit::redis_proxy::Command) -> bool {
    command.is_write() && !command.is("DEL") && command.has_key_ending(":token")
}

/// Sets `key` to a holder no replica has, for `ttl` or for ever.
async fn set_lease(key: &str, ttl: Option<Duration>) {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg("holder-that-is-no-replica");
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(u64::try_from(ttl.as_millis()).unwrap());
    }
    query::<()>(Mode::Standalone, &cmd).await;
}

/// What a fault's script gets: the proxy every replica reaches Redis through, and the keys of
/// the token set they share.
struct Fault {
    proxy: RedisProxy,
    token_key: String,
    lease_key: String,
}

/// Signs in as `client` at oidc-provider, runs `before`, then four processes sharing the
/// refresh token through the proxy while `during` injects its fault (it returns what it did,
/// for the report), and checks what the server and the processes saw.
async fn run(
    client: &'static str,
    before: impl AsyncFnOnce(&Fault),
    during: impl AsyncFnOnce(&Fault) -> String,
) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let token = authorize(&native_grant(client, &["api:read"])).await;
    assert_eq!(token.expires_in(), Some(Duration::from_secs(2)));
    let refresh_token = token.refresh_token().unwrap().expose().to_owned();
    let (token_key, lease_key) = keys(client);
    let fault = Fault {
        proxy: RedisProxy::start(&standalone_url()).await.unwrap(),
        token_key,
        lease_key,
    };
    before(&fault).await;

    let key = key_file(&KEY);
    let args: Vec<String> = [
        "--token-url",
        &format!("{}/token", issuer()),
        "--client-id",
        client,
        "--auth-method",
        "none",
        "--grant",
        "refresh_token",
        "--refresh-token",
        &refresh_token,
        "--subject",
        "user-1",
        "--redis",
        &fault.proxy.url(),
        "--redis-key-file",
        key.path().to_str().unwrap(),
        "--redis-timeout-ms",
        &REDIS_TIMEOUT.as_millis().to_string(),
        "--redis-lease-ms",
        &LEASE.as_millis().to_string(),
        "--fetch-timeout-ms",
        &FETCH_TIMEOUT.as_millis().to_string(),
        "--repeat",
        &REQUESTS.to_string(),
        "--interval-ms",
        &INTERVAL.as_millis().to_string(),
        &api_url("/read"),
    ]
    .map(str::to_owned)
    .to_vec();

    let started = Instant::now();
    let replicas: Vec<Replica> = (0..PROCESSES).map(|_| Replica::start(&args)).collect();
    let (done, finished) = tokio::join!(during(&fault), async {
        let mut finished = Vec::new();
        for replica in replicas {
            finished.push(replica.finish().await);
        }
        finished
    });
    fault.proxy.clear();
    let elapsed = started.elapsed();

    let server = counters(client).await;
    let count = |name: &str| server.get(name).copied().unwrap_or(0);
    let slowest = finished.iter().map(|f| f.slowest).max().unwrap_or_default();
    let report = format!(
        "{client}: {done}; {PROCESSES} processes x {REQUESTS} requests in {:.1} s; server: \
         {} refreshes, {} invalid_grant, {} grants revoked; slowest request {} ms (bound {} ms); \
         processes: {}",
        elapsed.as_secs_f64(),
        count("success:refresh_token"),
        count("invalid_grant"),
        count("grant_revoked"),
        slowest.as_millis(),
        BOUND.as_millis(),
        finished
            .iter()
            .map(Finished::brief)
            .collect::<Vec<_>>()
            .join("; "),
    );
    eprintln!("{report}");
    assert_eq!(
        count("invalid_grant"),
        0,
        "a spent refresh token was reused: {report}"
    );
    assert_eq!(count("grant_revoked"), 0, "the grant was revoked: {report}");
    assert!(
        slowest <= BOUND + MEASURING_SLACK,
        "a request waited {} ms, more than the bound of {} ms (+{} ms for measuring): {report}",
        slowest.as_millis(),
        BOUND.as_millis(),
        MEASURING_SLACK.as_millis(),
    );
    for replica in &finished {
        assert!(
            replica.status_ok && replica.ok == REQUESTS,
            "a process did not get {REQUESTS} answers 2xx: {report}\n{}",
            replica.stderr_tail()
        );
    }
    assert!(elapsed >= FAULT_WINDOW, "{report}");
}

/// The Redis keys of `client`'s token set for user-1, as the processes derive them: (token,
/// lease).
fn keys(client: &str) -> (String, String) {
    let grant =
        RefreshToken::new(token_client(), ClientAuth::none(client), "unused").subject("user-1");
    let fleet = replica(Mode::Standalone, FleetKey::new(1, KEY)).namespace("");
    let scope = __seam::scope(&fleet, &grant.identity().unwrap());
    (scope.token_key().to_owned(), scope.lease_key().to_owned())
}

/// One replica process; when each line of its output came is how long each request took.
struct Replica {
    child: Child,
    started: Instant,
    answers: Arc<Mutex<Answers>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct Answers {
    ok: usize,
    other: usize,
    /// The longest wait for an answer: from the start (the first) or from the previous answer,
    /// less the pause between requests.
    slowest: Duration,
    last: Option<Instant>,
}

impl Replica {
    fn start(args: &[String]) -> Self {
        let started = Instant::now();
        let mut child = Command::new(curl_binary())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("curl starts");
        let answers = Arc::new(Mutex::new(Answers::default()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut stdout_lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr_lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let seen = Arc::clone(&answers);
        let lines = Arc::clone(&stderr);
        let readers = vec![
            tokio::spawn(async move {
                while let Ok(Some(line)) = stdout_lines.next_line().await {
                    let now = Instant::now();
                    let mut answers = seen.lock().unwrap();
                    let waited = match answers.last {
                        Some(last) => now.duration_since(last).saturating_sub(INTERVAL),
                        None => now.duration_since(started),
                    };
                    answers.slowest = answers.slowest.max(waited);
                    answers.last = Some(now);
                    if line.starts_with('2') {
                        answers.ok += 1;
                    } else {
                        answers.other += 1;
                    }
                }
            }),
            tokio::spawn(async move {
                while let Ok(Some(line)) = stderr_lines.next_line().await {
                    lines.lock().unwrap().push(line);
                }
            }),
        ];
        Self {
            child,
            started,
            answers,
            stderr,
            readers,
        }
    }

    /// Waits for it to exit; kills it once it has waited [`STALLED`] for an answer.
    async fn finish(mut self) -> Finished {
        let mut stalled = None;
        let status = loop {
            tokio::select! {
                status = self.child.wait() => break status.unwrap(),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            let since = self.answers.lock().unwrap().last.unwrap_or(self.started);
            if stalled.is_none() && since.elapsed() > STALLED {
                stalled = Some(since.elapsed());
                self.child.start_kill().unwrap();
            }
        };
        for reader in self.readers {
            reader.await.unwrap();
        }
        let answers = self.answers.lock().unwrap();
        let slowest = answers.slowest.max(stalled.unwrap_or_default());
        let stderr = std::mem::take(&mut *self.stderr.lock().unwrap());
        Finished {
            status_ok: status.success(),
            status: status.to_string(),
            ok: answers.ok,
            other: answers.other,
            slowest,
            stalled: stalled.is_some(),
            ran: self.started.elapsed(),
            stderr,
        }
    }
}

struct Finished {
    status_ok: bool,
    status: String,
    ok: usize,
    other: usize,
    slowest: Duration,
    /// Killed after waiting [`STALLED`] for an answer.
    stalled: bool,
    ran: Duration,
    stderr: Vec<String>,
}

impl Finished {
    fn brief(&self) -> String {
        format!(
            "[{}{}, {} ok, {} not 2xx, slowest {} ms, {:.1} s, {}]",
            self.status,
            if self.stalled {
                " (killed: still waiting for an answer)"
            } else {
                ""
            },
            self.ok,
            self.other,
            self.slowest.as_millis(),
            self.ran.as_secs_f64(),
            self.stderr
                .last()
                .map(String::as_str)
                .unwrap_or("no summary"),
        )
    }

    fn stderr_tail(&self) -> String {
        let from = self.stderr.len().saturating_sub(5);
        self.stderr[from..].join("\n")
    }
}
