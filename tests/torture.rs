//! Cancellation torture: seeded random drops of waiting requests at random points while tokens
//! are being refreshed, against a server that rotates refresh tokens and revokes the whole
//! grant when one is used twice.
//!
//! It checks, over 100,000 iterations (`TORTURE_ITERATIONS` to change): no caller that is not
//! dropped ever wedges; never more than one grant is in flight; no token the server issued is
//! lost; the newest refresh token is always the one the cache holds and the store saved, so
//! the server never sees a refresh token twice. The seed is printed; `TORTURE_SEED=<seed>`
//! replays the same run. Time is paused and the runtime has one thread, so the seed fixes every
//! operation and its timing, with one exception: Tokio's `watch` channel picks the order in
//! which it wakes waiters from its own random numbers, so a long run can drift a little from
//! its replay. Failures seen so far reproduced at the same iteration.

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use tokio::task::JoinSet;
use tower::{Layer, ServiceExt, service_fn};
use tower_oauth2::{
    Error, ErrorKind, FetchContext, MemoryStore, OAuth2Layer, Token, TokenCache, TokenSource,
};

use tower_oauth2_testkit::{Body, get};

/// Tokens live 100 ms and turn stale 30 ms before they expire.
const LIFETIME: Duration = Duration::from_millis(100);
const MARGIN: Duration = Duration::from_millis(30);
/// A caller that is not dropped and has no answer after this long is wedged. Time is paused,
/// so this costs nothing; every fetch and API call here takes at most a few tens of ms.
const WEDGED: Duration = Duration::from_secs(60);

/// SplitMix64: a few lines, and the same numbers for a seed on every platform and every
/// version of every dependency, which a reproducible seed needs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn percent(&mut self, chance: u64) -> bool {
        self.below(100) < chance
    }

    fn millis(&mut self, most: u64) -> Duration {
        Duration::from_millis(self.below(most + 1))
    }
}

type SharedRng = Arc<Mutex<Rng>>;

/// The authorization server's side of one grant.
#[derive(Default)]
struct Grant {
    issued: u64,
    access: Option<String>,
    refresh: Option<String>,
    /// Everything that must never happen; the test fails if this is not empty.
    violations: Vec<String>,
}

struct Server {
    grant: Mutex<Grant>,
    rng: SharedRng,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    fetches: AtomicUsize,
}

impl Server {
    /// Runs the refresh-token grant: the presented refresh token must be the newest, or the
    /// grant is revoked, as servers with reuse detection do.
    fn exchange(&self, presented: Option<&str>, rotate: bool) -> Result<Token, Error> {
        let mut grant = self.grant.lock().unwrap();
        match (&grant.refresh, presented) {
            (None, _) => {}
            (Some(_), None) => {
                grant
                    .violations
                    .push("a grant came without a refresh token".into());
                return Err(Error::source_failed("invalid_grant"));
            }
            (Some(newest), Some(presented)) if newest != presented => {
                let violation = format!("refresh token {presented} reused; newest is {newest}");
                grant.violations.push(violation);
                return Err(Error::source_failed("invalid_grant"));
            }
            (Some(_), Some(_)) => {}
        }
        grant.issued += 1;
        let access = format!("access-{}", grant.issued);
        grant.access = Some(access.clone());
        let mut token = Token::bearer(access).with_expires_in(LIFETIME);
        if grant.refresh.is_none() || rotate {
            let refresh = format!("refresh-{}", grant.issued);
            grant.refresh = Some(refresh.clone());
            token = token.with_refresh_token(refresh);
        }
        // Without rotation the answer has no refresh token: the cache must keep the old one.
        Ok(token)
    }
}

struct InFlight<'a>(&'a Server);

impl<'a> InFlight<'a> {
    fn enter(server: &'a Server) -> Self {
        let now = server.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        server.most_in_flight.fetch_max(now, Ordering::SeqCst);
        server.fetches.fetch_add(1, Ordering::SeqCst);
        Self(server)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Source(Arc<Server>);

impl TokenSource for Source {
    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, Error> {
        let server = &self.0;
        let _in_flight = InFlight::enter(server);
        let (latency, fails, rotate) = {
            let mut rng = server.rng.lock().unwrap();
            (rng.millis(20), rng.percent(5), rng.percent(70))
        };
        tokio::time::sleep(latency).await;
        // A failure the server never saw: no token was issued, so none can be lost.
        if fails {
            return Err(Error::source_failed("temporarily unavailable"));
        }
        let presented = cx.previous().and_then(Token::refresh_token);
        server.exchange(presented.map(|secret| secret.expose()), rotate)
    }
}

/// What one caller does.
#[derive(Debug, Clone, Copy)]
enum Call {
    Token,
    Refresh,
    Api,
}

fn seed() -> u64 {
    match std::env::var("TORTURE_SEED") {
        Ok(seed) => seed.parse().expect("TORTURE_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_nanos() as u64)
            .unwrap_or(0x5eed),
    }
}

fn iterations() -> u64 {
    std::env::var("TORTURE_ITERATIONS").map_or(100_000, |n| n.parse().expect("a number"))
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn random_drops_during_refreshes_never_wedge_lose_or_replay_a_token() {
    let seed = seed();
    let iterations = iterations();
    println!("torture seed {seed}, {iterations} iterations (replay: TORTURE_SEED={seed})");
    let started = std::time::Instant::now();

    let rng: SharedRng = Arc::new(Mutex::new(Rng(seed)));
    let server = Arc::new(Server {
        grant: Mutex::new(Grant::default()),
        rng: Arc::clone(&rng),
        in_flight: AtomicUsize::new(0),
        most_in_flight: AtomicUsize::new(0),
        fetches: AtomicUsize::new(0),
    });
    let store = Arc::new(MemoryStore::new());
    let cache = TokenCache::builder(Source(Arc::clone(&server)))
        .refresh_margin(MARGIN)
        .min_refresh_interval(Duration::from_millis(2))
        .attempts_per_fetch(2)
        // Zero backoff keeps the run a function of the seed: the jitter would draw from the
        // crate's own random numbers.
        .backoff(Duration::ZERO, Duration::ZERO)
        .fetch_timeout(Duration::from_secs(10))
        .store(Arc::clone(&store))
        .build();
    let client = OAuth2Layer::new(cache.clone()).layer(api(&server));

    let mut stats = Stats::default();
    for iteration in 0..iterations {
        let fail = |what: String| -> ! {
            panic!("seed {seed}, iteration {iteration}: {what}");
        };
        let (pause, invalidate, callers) = {
            let mut rng = rng.lock().unwrap();
            (
                rng.percent(30).then(|| rng.millis(120)),
                rng.percent(10),
                1 + rng.below(4),
            )
        };
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        if invalidate && let Some(current) = cache.current() {
            cache.invalidate(&current);
        }

        let mut tasks = JoinSet::new();
        for _ in 0..callers {
            let (call, drop_after, abort_after) = {
                let mut rng = rng.lock().unwrap();
                let call = match rng.below(10) {
                    0..=4 => Call::Token,
                    5 => Call::Refresh,
                    _ => Call::Api,
                };
                let drop_after = rng.percent(50).then(|| rng.millis(15));
                let abort_after = rng.percent(10).then(|| rng.below(4));
                (call, drop_after, abort_after)
            };
            let work = run(call, cache.clone(), client.clone());
            let watched = Arc::clone(&server);
            let handle = tasks.spawn(async move {
                let patience = drop_after.unwrap_or(WEDGED);
                match tokio::time::timeout(patience, work).await {
                    Ok(result) => End::Done(result),
                    // Dropped at a random point, as planned.
                    Err(_) if drop_after.is_some() => {
                        End::Dropped(watched.in_flight.load(Ordering::SeqCst) > 0)
                    }
                    Err(_) => End::Wedged(call),
                }
            });
            if let Some(polls) = abort_after {
                tokio::spawn(async move {
                    for _ in 0..polls {
                        tokio::task::yield_now().await;
                    }
                    handle.abort();
                });
            }
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Err(error) if error.is_cancelled() => stats.dropped += 1,
                Err(error) => fail(format!("a caller panicked: {error}")),
                Ok(End::Dropped(during_fetch)) => {
                    stats.dropped += 1;
                    stats.dropped_during_fetch += u64::from(during_fetch);
                }
                Ok(End::Wedged(call)) => fail(format!("a {call:?} caller wedged")),
                Ok(End::Done(Err(problem))) => fail(problem),
                Ok(End::Done(Ok(()))) => stats.finished += 1,
            }
        }

        let quiesce = rng.lock().unwrap().percent(25) || iteration + 1 == iterations;
        if quiesce {
            stats.checks += 1;
            if let Err(problem) = check_quiescent(&server, &store, &cache).await {
                fail(problem);
            }
        }
        let violations = &server.grant.lock().unwrap().violations;
        if !violations.is_empty() {
            fail(violations.join("; "));
        }
        if server.most_in_flight.load(Ordering::SeqCst) > 1 {
            fail("two grants were in flight at once".into());
        }
    }

    let issued = server.grant.lock().unwrap().issued;
    println!(
        "{iterations} iterations in {:?}: {} callers finished, {} dropped ({} while a fetch ran), {} fetches, {issued} tokens issued, {} quiescent checks",
        started.elapsed(),
        stats.finished,
        stats.dropped,
        stats.dropped_during_fetch,
        server.fetches.load(Ordering::SeqCst),
        stats.checks,
    );
    // The run must have exercised what it claims to.
    assert!(stats.dropped > iterations / 4 && stats.finished > iterations / 2);
    assert!(issued > iterations / 20, "only {issued} tokens were issued");
}

/// How one caller ended.
enum End {
    Done(Result<(), String>),
    /// Whether a fetch was in flight when it was dropped.
    Dropped(bool),
    Wedged(Call),
}

#[derive(Default)]
struct Stats {
    finished: u64,
    dropped: u64,
    dropped_during_fetch: u64,
    checks: u64,
}

/// One caller. `Err` is a broken invariant; errors the source injected are fine.
async fn run<S>(call: Call, cache: TokenCache, client: S) -> Result<(), String>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = tower_oauth2::BoxError>,
{
    let expected = |error: &Error| match error.kind() {
        ErrorKind::Source => Ok(()),
        _ => Err(format!("unexpected error: {error}")),
    };
    match call {
        Call::Token => match cache.token().await {
            Ok(_) => Ok(()),
            Err(error) => expected(&error),
        },
        Call::Refresh => match cache.refresh().await {
            Ok(_) => Ok(()),
            Err(error) => expected(&error),
        },
        Call::Api => match client.oneshot(get("https://api.test/orders")).await {
            Ok(response)
                if [StatusCode::OK, StatusCode::UNAUTHORIZED].contains(&response.status()) =>
            {
                Ok(())
            }
            Ok(response) => Err(format!("API answered {}", response.status())),
            Err(error) => match error.downcast_ref::<Error>() {
                Some(error) => expected(error),
                None => Err(format!("unexpected error: {error}")),
            },
        },
    }
}

/// The API: 200 for the newest access token, 401 for any other, after a random delay.
fn api(
    server: &Arc<Server>,
) -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    let server = Arc::clone(server);
    service_fn(move |request: Request<Body>| {
        let server = Arc::clone(&server);
        async move {
            let delay = server.rng.lock().unwrap().millis(10);
            tokio::time::sleep(delay).await;
            let sent = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .map(str::to_owned);
            let newest = server.grant.lock().unwrap().access.clone();
            let mut response = Response::new(Body::default());
            if sent.is_none() || sent != newest {
                *response.status_mut() = StatusCode::UNAUTHORIZED;
            }
            Ok(response)
        }
    })
}

/// Once no fetch runs: the cache and the store hold the newest token the server issued.
async fn check_quiescent(
    server: &Server,
    store: &MemoryStore,
    cache: &TokenCache,
) -> Result<(), String> {
    for _ in 0..1000 {
        if server.in_flight.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Lets the fetch task that just returned install and save its token.
    tokio::time::sleep(Duration::from_millis(1)).await;
    if server.in_flight.load(Ordering::SeqCst) != 0 {
        return Err("a fetch never ends".into());
    }
    let (access, refresh) = {
        let grant = server.grant.lock().unwrap();
        (grant.access.clone(), grant.refresh.clone())
    };
    let Some(access) = access else {
        return Ok(());
    };
    let saved = store.get().ok_or("the store holds no token")?;
    let saved_access = saved.access_token().expose();
    let saved_refresh = saved
        .refresh_token()
        .map(|secret| secret.expose().to_owned());
    if saved_access != access || saved_refresh != refresh {
        return Err(format!(
            "the store holds {saved_access}/{saved_refresh:?}, the server issued {access}/{refresh:?}"
        ));
    }
    if let Some(current) = cache.current() {
        let held = current.token().access_token().expose();
        if held != access {
            return Err(format!(
                "the cache serves {held}, the server issued {access}"
            ));
        }
    }
    Ok(())
}
