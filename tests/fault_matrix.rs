//! The fault matrix: every way a token endpoint on 127.0.0.1 can fail, crossed with every state
//! the cache can be in when it does.
//!
//! For each cell it checks that nothing panics, that no caller waits longer than the fetch
//! timeout plus the backoff bound, that the error has the right kind, status and OAuth code,
//! that a token which is still valid keeps being served, and that once the endpoint heals the
//! next request succeeds within one backoff period. The sockets are real, so the clock is
//! too: timeouts and backoffs are configured short, and the cells run in parallel.
//!
//! `cargo test --test fault_matrix -- --nocapture` prints the matrix; `docs/failures.md`
//! carries it, and this test checks that the docs still describe what the crate does.

use std::{fmt::Write as _, time::Duration};

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::{task::JoinSet, time::Instant};
use tower_oauth2::{
    ClientAuth, Error, ErrorKind, Token, TokenCache, TokenClient, grant::ClientCredentials,
};
use tower_oauth2_testkit::{Fault, FaultServer};

/// One token request, from sending it to reading the whole answer.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(250);
/// One fetch, all its attempts included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);
const ATTEMPTS: u32 = 3;
const BACKOFF_INITIAL: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(200);
const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(10);
/// Scheduling noise on a loaded machine with two cores.
const SLACK: Duration = Duration::from_millis(750);
/// Concurrent callers when no valid token exists.
const CALLERS: usize = 8;

/// A token that lives this long turns stale after half of it (the margin is capped at half the
/// lifetime), which leaves the other half for the stale cell to run in.
const STALE_LIFETIME: Duration = Duration::from_secs(8);
const EXPIRED_LIFETIME: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheState {
    Cold,
    Warm,
    Stale,
    Expired,
}

impl CacheState {
    const ALL: [CacheState; 4] = [Self::Cold, Self::Warm, Self::Stale, Self::Expired];

    fn label(self) -> &'static str {
        match self {
            Self::Cold => "cold",
            Self::Warm => "warm, valid",
            Self::Stale => "stale",
            Self::Expired => "expired",
        }
    }

    fn has_valid_token(self) -> bool {
        matches!(self, Self::Warm | Self::Stale)
    }
}

/// What a fault must produce.
struct Expected {
    kind: ErrorKind,
    status: Option<u16>,
    code: Option<&'static str>,
    description: Option<&'static str>,
    /// `Retry-After` the error reports, if any: at least this.
    retry_after: Option<Duration>,
    transient: bool,
    /// Attempts one fetch makes: the least and the most.
    attempts: (usize, usize),
}

fn expected(fault: Fault) -> Expected {
    use ErrorKind::*;
    let base = |kind, status, transient, attempts| Expected {
        kind,
        status,
        code: None,
        description: None,
        retry_after: None,
        transient,
        attempts,
    };
    let all = ATTEMPTS as usize;
    match fault {
        Fault::Status500 => base(UnexpectedResponse, Some(500), true, (all, all)),
        // The server's wait outlasts the fetch deadline, so the fetch stops after one attempt.
        Fault::Status503RetryAfterSeconds => Expected {
            retry_after: Some(Duration::from_secs(1)),
            ..base(UnexpectedResponse, Some(503), true, (1, 1))
        },
        Fault::Status503RetryAfterDate => Expected {
            retry_after: Some(Duration::from_millis(900)),
            ..base(UnexpectedResponse, Some(503), true, (1, 1))
        },
        Fault::Status429 => base(UnexpectedResponse, Some(429), true, (all, all)),
        // Attempts that each wait out the request timeout may run into the fetch deadline.
        Fault::Hang | Fault::Drip => base(Timeout, None, true, (2, all)),
        Fault::ResetMidBody => base(Transport, None, true, (all, all)),
        Fault::Refused => base(Transport, None, true, (0, 0)),
        Fault::GarbageJson | Fault::Empty200 | Fault::WrongTokenType => {
            base(InvalidResponse, Some(200), false, (1, 1))
        }
        Fault::HugeBody => base(BodyTooLarge, None, false, (1, 1)),
        Fault::HtmlErrorPage => base(UnexpectedResponse, Some(502), true, (all, all)),
        Fault::InvalidClient => Expected {
            code: Some("invalid_client"),
            description: Some("unknown client"),
            ..base(Rejected, Some(400), false, (1, 1))
        },
        Fault::VendorEnvelope => Expected {
            description: Some("invalid client secret"),
            ..base(Rejected, Some(403), false, (1, 1))
        },
    }
}

/// The longest a failure may keep requests failing fast: the backoff cap, or the server's
/// `Retry-After` when that is longer.
fn backoff_bound(fault: Fault) -> Duration {
    match fault {
        Fault::Status503RetryAfterSeconds => Duration::from_secs(1),
        Fault::Status503RetryAfterDate => Duration::from_secs(2),
        _ => BACKOFF_MAX,
    }
}

/// What one cell measured.
struct Outcome {
    fault: Fault,
    state: CacheState,
    error: Option<Error>,
    attempts: usize,
    longest_wait: Duration,
    recovery: Duration,
    problems: Vec<String>,
}

struct Cell {
    fault: Fault,
    state: CacheState,
    server: FaultServer,
    cache: TokenCache,
    outcome: Outcome,
}

impl Cell {
    async fn new(fault: Fault, state: CacheState) -> Self {
        let server = FaultServer::start(fault).await.unwrap();
        let http = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http::<Full<Bytes>>();
        let endpoint = TokenClient::new(&server.url(), http)
            .unwrap()
            .timeout(REQUEST_TIMEOUT);
        let grant = ClientCredentials::new(endpoint, ClientAuth::basic("client", "s3cr3t-matrix"));
        let cache = TokenCache::builder(grant)
            .fetch_timeout(FETCH_TIMEOUT)
            .attempts_per_fetch(ATTEMPTS)
            .backoff(BACKOFF_INITIAL, BACKOFF_MAX)
            .min_refresh_interval(MIN_REFRESH_INTERVAL)
            .build();
        Self {
            fault,
            state,
            server,
            cache,
            outcome: Outcome {
                fault,
                state,
                error: None,
                attempts: 0,
                longest_wait: Duration::ZERO,
                recovery: Duration::ZERO,
                problems: Vec::new(),
            },
        }
    }

    fn problem(&mut self, text: String) {
        self.outcome.problems.push(text);
    }

    /// The longest any caller may wait for a token.
    fn wait_bound(&self) -> Duration {
        FETCH_TIMEOUT + backoff_bound(self.fault) + SLACK
    }

    fn waited(&mut self, started: Instant, what: &str) {
        let waited = started.elapsed();
        self.outcome.longest_wait = self.outcome.longest_wait.max(waited);
        if waited > self.wait_bound() {
            self.problem(format!("{what} waited {waited:?}"));
        }
    }

    async fn run(mut self) -> Outcome {
        self.prepare().await;
        let before = self.server.requests();
        let error = if self.state.has_valid_token() {
            self.fail_while_valid().await
        } else {
            self.fail_without_token().await
        };
        self.outcome.attempts = self.server.requests() - before;
        if let Some(error) = &error {
            self.check_error(error);
        }
        self.outcome.error = error;
        self.server.heal().unwrap();
        self.recover().await;
        self.outcome
    }

    async fn prepare(&mut self) {
        let lifetime = match self.state {
            CacheState::Cold => return,
            CacheState::Warm => Duration::from_secs(3600),
            CacheState::Stale => STALE_LIFETIME,
            CacheState::Expired => EXPIRED_LIFETIME,
        };
        let token = Token::bearer("seeded").with_expires_in(lifetime);
        self.cache.seed(token).await.unwrap();
        match self.state {
            CacheState::Stale => tokio::time::sleep(lifetime / 2 + Duration::from_millis(50)).await,
            CacheState::Expired => tokio::time::sleep(lifetime + Duration::from_millis(50)).await,
            _ => {}
        }
        if self.cache.current().is_some() != self.state.has_valid_token() {
            self.problem(format!(
                "the cache is not {} after set-up",
                self.state.label()
            ));
        }
    }

    /// No usable token: many callers wait for one fetch and all get its error.
    async fn fail_without_token(&mut self) -> Option<Error> {
        let mut callers = JoinSet::new();
        for _ in 0..CALLERS {
            let cache = self.cache.clone();
            callers.spawn(async move {
                let started = Instant::now();
                (cache.token().await, started)
            });
        }
        let mut first = None;
        while let Some(joined) = callers.join_next().await {
            let (result, started) = joined.expect("a caller panicked");
            self.waited(started, "a caller without a token");
            match result {
                Ok(token) => {
                    self.problem(format!("got {:?} from a failing endpoint", token.token()))
                }
                Err(error) => {
                    first.get_or_insert(error);
                }
            }
        }
        first
    }

    /// A valid token: it keeps being served, at once, while the refresh fails.
    async fn fail_while_valid(&mut self) -> Option<Error> {
        let cache = self.cache.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        // "At once" means on the first poll: no waiting at all, whatever the machine's load.
        let poller = tokio::spawn(async move {
            let (mut polls, mut misses) = (0, 0);
            loop {
                polls += 1;
                match cache.token().now_or_never() {
                    Some(Ok(token)) if token.token().access_token().expose() == "seeded" => {}
                    _ => misses += 1,
                }
                if *stopped.borrow() {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(5), stopped.changed()).await;
            }
            (polls, misses)
        });
        let started = Instant::now();
        let result = match self.state {
            // A stale token starts a background refresh; `refresh` joins it to see its end.
            CacheState::Stale => {
                let (served, refreshed) = tokio::join!(self.cache.token(), self.cache.refresh());
                if served
                    .map(|token| token.token().access_token().expose().to_owned())
                    .ok()
                    .as_deref()
                    != Some("seeded")
                {
                    self.problem("the stale token was not served".into());
                }
                refreshed
            }
            _ => self.cache.refresh().await,
        };
        self.waited(started, "refresh");
        stop.send_replace(true);
        let (polls, misses) = poller.await.expect("the poller panicked");
        if misses > 0 {
            self.problem(format!(
                "the valid token was not served at once {misses} of {polls} times"
            ));
        }
        match self.cache.token().await {
            Ok(token) if token.token().access_token().expose() == "seeded" => {}
            other => self.problem(format!("after the failed refresh the cache gave {other:?}")),
        }
        match result {
            Ok(token) => {
                self.problem(format!(
                    "refresh got {:?} from a failing endpoint",
                    token.token()
                ));
                None
            }
            Err(error) => Some(error),
        }
    }

    fn check_error(&mut self, error: &Error) {
        let want = expected(self.fault);
        let status = error.status().map(|status| status.as_u16());
        if error.kind() != want.kind || status != want.status || error.oauth_error() != want.code {
            self.problem(format!(
                "error {:?}/{status:?}/{:?}, want {:?}/{:?}/{:?}: {error}",
                error.kind(),
                error.oauth_error(),
                want.kind,
                want.status,
                want.code
            ));
        }
        if let Some(description) = want.description
            && error.description() != Some(description)
        {
            self.problem(format!("description {:?}", error.description()));
        }
        if let Some(least) = want.retry_after
            && error.retry_after().is_none_or(|wait| wait < least)
        {
            self.problem(format!("retry_after {:?}", error.retry_after()));
        }
        if error.is_transient() != want.transient {
            self.problem(format!("is_transient() is {}", error.is_transient()));
        }
        let (least, most) = want.attempts;
        if !(least..=most).contains(&self.outcome.attempts) {
            self.problem(format!(
                "{} attempts, want {least}..={most}",
                self.outcome.attempts
            ));
        }
    }

    /// After the heal, the next request that may start a fetch gets a new token.
    async fn recover(&mut self) {
        let healed = Instant::now();
        let bound = backoff_bound(self.fault) + SLACK;
        loop {
            let started = Instant::now();
            let result = match self.state {
                CacheState::Warm => self.cache.refresh().await,
                _ => self.cache.token().await,
            };
            self.waited(started, "a caller after the heal");
            if let Ok(token) = &result
                && token.token().access_token().expose().starts_with("healed-")
            {
                break;
            }
            if let Err(error) = &result
                && error.kind() != expected(self.fault).kind
            {
                self.problem(format!("after the heal: {error}"));
            }
            if healed.elapsed() > bound {
                self.problem(format!(
                    "no new token {:?} after the heal",
                    healed.elapsed()
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.outcome.recovery = healed.elapsed();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_in_every_cache_state_degrades_predictably_and_heals() {
    let started = Instant::now();
    let mut cells = JoinSet::new();
    for fault in Fault::ALL {
        for state in CacheState::ALL {
            cells.spawn(async move { Cell::new(fault, state).await.run().await });
        }
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = cells.join_next().await {
        outcomes.push(joined.expect("a cell panicked"));
    }
    outcomes.sort_by_key(|outcome| {
        let fault = Fault::ALL.iter().position(|f| *f == outcome.fault);
        let state = CacheState::ALL.iter().position(|s| *s == outcome.state);
        (fault, state)
    });

    println!("{}", behaviour_table());
    println!("{}", timing_table(&outcomes));
    println!(
        "matrix of {} cells ran in {:?}",
        outcomes.len(),
        started.elapsed()
    );

    let problems: Vec<String> = outcomes
        .iter()
        .flat_map(|outcome| {
            outcome.problems.iter().map(move |problem| {
                format!(
                    "{} / {}: {problem}",
                    outcome.fault.label(),
                    outcome.state.label()
                )
            })
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_docs_carry_the_fault_table() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/failures.md")).unwrap();
    let table = behaviour_table();
    assert!(
        docs.contains(&table),
        "docs/failures.md is out of date; its table should read:\n{table}"
    );
}

/// What each fault produces, from the expectations the matrix checks.
fn behaviour_table() -> String {
    let mut table = String::from(
        "| Token endpoint | Error kind | Status | OAuth code | Transient | Attempts per fetch |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for fault in Fault::ALL {
        let want = expected(fault);
        let status = want
            .status
            .map_or("—".to_owned(), |status| status.to_string());
        let code = want.code.map_or("—".to_owned(), |code| format!("`{code}`"));
        let transient = if want.transient { "yes" } else { "no" };
        let attempts = match (fault, want.attempts) {
            (Fault::Refused, _) => format!("{ATTEMPTS} (none reach it)"),
            (_, (least, most)) if least == most => least.to_string(),
            (_, (least, most)) => format!("{least}–{most}"),
        };
        writeln!(
            table,
            "| {} | `{:?}` | {status} | {code} | {transient} | {attempts} |",
            fault.label(),
            want.kind
        )
        .unwrap();
    }
    table
}

/// Per cell: the longest any caller waited, and how long after the heal a new token came.
fn timing_table(outcomes: &[Outcome]) -> String {
    let mut table = String::from("| Token endpoint |");
    for state in CacheState::ALL {
        write!(table, " {} |", state.label()).unwrap();
    }
    table.push_str("\n| --- |");
    table.push_str(&" --- |".repeat(CacheState::ALL.len()));
    table.push('\n');
    for row in outcomes.chunks(CacheState::ALL.len()) {
        write!(table, "| {} |", row[0].fault.label()).unwrap();
        for outcome in row {
            let verdict = if outcome.problems.is_empty() {
                "ok"
            } else {
                "FAIL"
            };
            let kept = if outcome.state.has_valid_token() {
                "kept, "
            } else {
                ""
            };
            write!(
                table,
                " {verdict}: {kept}{:.2} s, +{:.2} s |",
                outcome.longest_wait.as_secs_f64(),
                outcome.recovery.as_secs_f64()
            )
            .unwrap();
        }
        table.push('\n');
    }
    table
}
