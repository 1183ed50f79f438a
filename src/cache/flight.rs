//! Single flight: at most one fetch at a time, run in a task of its own, its outcome shared.
//!
//! The fetch runs in a spawned task rather than in any request's future, so dropping every
//! request that waits for it cannot cancel it: a refresh token the server rotated is stored
//! whether or not anyone is still waiting.
//!
//! Failures share one backoff. Inside a fetch, transient errors are retried after a jittered,
//! exponentially growing delay (or the server's `Retry-After`, if longer); permanent errors end
//! it at once. After a failed fetch, requests that need a token fail at once with its error
//! until the next backoff step, so a failing endpoint sees one request per step, not one per
//! caller.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};
use tracing::Instrument;

use super::{
    Stats,
    state::{Cached, Lifetimes, Phase, State},
};
use crate::{
    Error, ErrorKind, FetchContext, FetchReason, Token, source::DynTokenSource,
    store::DynTokenStore,
};

pub(crate) type Outcome = Result<Arc<Cached>, Error>;

/// What every waiter of one fetch receives: `None` until the fetch ends.
pub(crate) type Waiter = watch::Receiver<Option<Outcome>>;

/// A `Retry-After` longer than this is taken as this: a server cannot switch clients off.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Timing rules, from the cache's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) lifetimes: Lifetimes,
    pub(crate) min_refresh_interval: Duration,
    pub(crate) fetch_timeout: Duration,
    pub(crate) backoff: Backoff,
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) attempts: u32,
}

impl Backoff {
    /// The delay after the `failures`-th failure in a row: doubling from `initial`, capped at
    /// `max`, then a random point in its upper half so that clients spread out.
    fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let step = self.initial.saturating_mul(1 << doublings).min(self.max);
        let step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
        let jittered = Duration::from_millis(rand::random_range(step_ms / 2..=step_ms));
        jittered.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
    }
}

/// Everything one cache shares between its clones.
pub(crate) struct Shared {
    pub(crate) state: Arc<State>,
    flight: Mutex<Flight>,
    source: Box<dyn DynTokenSource>,
    store: Option<Box<dyn DynTokenStore>>,
    /// The last failed save, until a save succeeds.
    store_error: Mutex<Option<Error>>,
    pub(crate) rules: Rules,
    pub(crate) stats: Stats,
}

#[derive(Default)]
struct Flight {
    running: Option<Waiter>,
    /// When the running fetch starts asking the source; it may wait out a backoff step first.
    running_from: Option<Instant>,
    /// No fetch may start before this instant.
    not_before: Option<Instant>,
    /// Failed attempts in a row.
    failures: u32,
    /// The last failure, and the end of the backoff step it started.
    failed: Option<(Error, Instant)>,
}

impl Shared {
    pub(crate) fn new(
        source: Box<dyn DynTokenSource>,
        store: Option<Box<dyn DynTokenStore>>,
        rules: Rules,
    ) -> Self {
        Self {
            state: Arc::new(State::new()),
            flight: Mutex::new(Flight::default()),
            source,
            store,
            store_error: Mutex::new(None),
            rules,
            stats: Stats::default(),
        }
    }

    pub(crate) fn store_error(&self) -> Option<Error> {
        self.store_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Saves `token` to the store, if there is one. A failure is reported, never returned: the
    /// token is good, and the server may already have retired the one before it.
    pub(crate) async fn persist(&self, token: &Token) {
        let Some(store) = &self.store else {
            return;
        };
        let saved = tokio::time::timeout(self.rules.fetch_timeout, store.save_boxed(token))
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(ErrorKind::Store).with_detail("saving the token timed out"))
            });
        let mut last = self
            .store_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match saved {
            Ok(()) => *last = None,
            Err(error) => {
                tracing::error!(error = %error, "could not save the new token; it is used anyway");
                self.stats.record_failed_save();
                *last = Some(error);
            }
        }
    }

    /// The token saved in the store, when the cache holds none.
    async fn load(&self) -> Option<Token> {
        let store = self.store.as_ref()?;
        match tokio::time::timeout(self.rules.fetch_timeout, store.load_boxed()).await {
            Ok(Ok(token)) => token,
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "could not load the saved token");
                None
            }
            Err(_) => {
                tracing::warn!("loading the saved token timed out");
                None
            }
        }
    }

    fn flight(&self) -> MutexGuard<'_, Flight> {
        // Nothing that can panic runs under this lock; a poisoned lock holds consistent data.
        self.flight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the fetch in flight, or starts one. Returns `None` when a usable token was
    /// installed meanwhile, so the caller can look again instead of fetching. Inside a backoff
    /// step after a failure, returns that failure.
    pub(crate) fn join(self: &Arc<Self>, reason: FetchReason) -> Option<Result<Waiter, Error>> {
        let flight = self.flight();
        let now = Instant::now();
        let failed = flight
            .failed
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(error, _)| error.clone());
        if let Some(running) = &flight.running {
            // A fetch that sleeps out the backoff step is no reason to wait: fail fast, as
            // when none is running.
            let sleeping = flight.running_from.is_some_and(|from| now < from);
            match failed {
                Some(error) if sleeping => return Some(Err(error)),
                _ => return Some(Ok(running.clone())),
            }
        }
        // Installs happen under this lock, so this look is final until it is released.
        if Phase::of(self.state.word()).is_usable() {
            return None;
        }
        if let Some(error) = failed {
            return Some(Err(error));
        }
        Some(self.start(flight, reason))
    }

    /// Joins the fetch in flight, or starts one even though the current token is usable.
    pub(crate) fn force(self: &Arc<Self>) -> Result<Waiter, Error> {
        let flight = self.flight();
        if let Some(running) = &flight.running {
            return Ok(running.clone());
        }
        self.start(flight, FetchReason::Forced)
    }

    /// Starts a fetch unless one is in flight. Used for background refreshes, whose callers do
    /// not wait.
    pub(crate) fn start_background(self: &Arc<Self>) -> Result<(), Error> {
        let flight = self.flight();
        if flight.running.is_none() {
            self.start(flight, FetchReason::Stale)?;
        }
        Ok(())
    }

    fn start(
        self: &Arc<Self>,
        mut flight: MutexGuard<'_, Flight>,
        reason: FetchReason,
    ) -> Result<Waiter, Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::config("a token fetch needs a Tokio runtime"))?;
        let now = Instant::now();
        let backoff_until = flight.failed.as_ref().map(|(_, until)| *until);
        let start_at = flight.not_before.max(backoff_until).filter(|at| *at > now);
        flight.not_before = Some(later(
            start_at.unwrap_or(now),
            self.rules.min_refresh_interval,
        ));
        flight.running_from = start_at;

        let (sender, waiter) = watch::channel(None);
        flight.running = Some(waiter.clone());
        let guard = FlightGuard {
            shared: Arc::clone(self),
            finished: false,
        };
        // The fetch outlives the request that starts it, so its span is a root that follows
        // from the request's span rather than a child of it.
        let cause = tracing::Span::current().id();
        // A runtime that is shutting down drops the task inside `spawn`, on this thread, and
        // the guard then takes the flight lock: release it first.
        drop(flight);
        runtime.spawn(run(guard, sender, reason, start_at, cause));
        Ok(waiter)
    }

    /// Installs a token that did not come from a fetch, such as one from an authorization-code
    /// exchange or a token store.
    pub(crate) fn seed(&self, cached: Arc<Cached>) {
        let _flight = self.flight();
        self.state.install(cached);
    }

    /// Counts a failed attempt and returns when the next one may start.
    fn record_failure(&self, error: &Error) -> Instant {
        let mut flight = self.flight();
        flight.failures = flight.failures.saturating_add(1);
        let delay = self
            .rules
            .backoff
            .delay(flight.failures, error.retry_after());
        let until = later(Instant::now(), delay);
        flight.failed = Some((error.clone(), until));
        until
    }

    /// Ends the fetch in flight: installs its token, then releases the flight for the next one.
    fn finish(&self, outcome: &Outcome) {
        let mut flight = self.flight();
        flight.running = None;
        if let Ok(cached) = outcome {
            flight.failures = 0;
            flight.failed = None;
            self.state.install(Arc::clone(cached));
        }
    }

    /// After a background refresh that failed, lets requests start the next one.
    fn release_refreshing(&self) {
        if let Some(current) = self.state.current() {
            self.state
                .transition(current.generation, &[Phase::Refreshing], Phase::Stale);
        }
    }
}

/// Releases the flight if its task ends without finishing: the runtime shut down, or the
/// token source panicked. Waiters then see the sender dropped and report `Interrupted`.
struct FlightGuard {
    shared: Arc<Shared>,
    finished: bool,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.flight().running = None;
            self.shared.release_refreshing();
        }
    }
}

async fn run(
    mut guard: FlightGuard,
    sender: watch::Sender<Option<Outcome>>,
    reason: FetchReason,
    start_at: Option<Instant>,
    cause: Option<tracing::Id>,
) {
    if let Some(at) = start_at {
        tokio::time::sleep_until(at).await;
    }
    let shared = Arc::clone(&guard.shared);
    let span = tracing::info_span!(
        parent: None,
        "token_fetch",
        grant_type = shared.source.grant_type(),
        reason = reason.as_str(),
        outcome = tracing::field::Empty,
        attempts = tracing::field::Empty,
        elapsed_ms = tracing::field::Empty,
    );
    span.follows_from(cause);
    let started = Instant::now();
    let Attempts {
        outcome,
        retry_at,
        count,
        via,
    } = attempts(&shared, reason).instrument(span.clone()).await;
    let described = match (&outcome, via) {
        (Ok(_), Via::Store) => "loaded",
        (Ok(_), Via::Source) => "ok",
        (Err(_), _) => "error",
    };
    span.record("outcome", described);
    span.record("attempts", count);
    span.record("elapsed_ms", millis(started));
    drop(span);

    shared.finish(&outcome);
    guard.finished = true;
    drop(guard);
    // Nobody may be waiting any more; the token is installed either way.
    let _ = sender.send(Some(outcome));

    // A token that is still valid keeps serving; the next background refresh waits for the
    // backoff step. The wait holds no strong reference, so it keeps no cache alive.
    if let Some(retry_at) = retry_at {
        let weak = Arc::downgrade(&shared);
        drop(shared);
        tokio::time::sleep_until(retry_at).await;
        if let Some(shared) = Weak::upgrade(&weak) {
            shared.release_refreshing();
        }
    }
}

/// Where a token came from: a cold cache reads its store before it asks the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Store,
    Source,
}

/// How a fetch ended.
struct Attempts {
    outcome: Outcome,
    /// When the next fetch may start, after a failure.
    retry_at: Option<Instant>,
    count: u32,
    via: Via,
}

/// Attempts the fetch until it succeeds, fails for good, or runs out of attempts or time.
async fn attempts(shared: &Shared, reason: FetchReason) -> Attempts {
    let deadline = later(Instant::now(), shared.rules.fetch_timeout);
    let mut attempt = 1;
    loop {
        let started = Instant::now();
        let error = match fetch(shared, reason, deadline).await {
            Ok((cached, via)) => {
                // A token read back from the store cost the token endpoint nothing.
                match via {
                    Via::Store => shared.stats.record_load(),
                    Via::Source => shared.stats.record_fetch(true),
                }
                log_success(shared, reason, attempt, started, &cached, via);
                return Attempts {
                    outcome: Ok(cached),
                    retry_at: None,
                    count: attempt,
                    via,
                };
            }
            Err(error) => error,
        };
        shared.stats.record_fetch(false);
        log_failure(shared, reason, attempt, started, &error);
        let retry_at = shared.record_failure(&error);
        let retry =
            error.is_transient() && attempt < shared.rules.backoff.attempts && retry_at < deadline;
        if !retry {
            return Attempts {
                outcome: Err(error),
                retry_at: Some(retry_at),
                count: attempt,
                via: Via::Source,
            };
        }
        tracing::debug!(attempt, "retrying the token fetch after a transient error");
        tokio::time::sleep_until(retry_at).await;
        attempt += 1;
    }
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The deadline bounds getting a token, not saving it: once the source has answered, the
/// server may have retired the refresh token before this one.
async fn fetch(
    shared: &Shared,
    reason: FetchReason,
    deadline: Instant,
) -> Result<(Arc<Cached>, Via), Error> {
    let issued = Instant::now();
    let current = shared.state.current();
    let loaded = match current {
        Some(_) => None,
        None => tokio::time::timeout_at(deadline, shared.load())
            .await
            .map_err(timed_out)?,
    };
    if let Some(token) = &loaded
        && token.expires_in() != Some(Duration::ZERO)
    {
        let generation = shared.state.next_generation();
        // A saved token that cannot be used (say, a hand-edited file) falls through to the
        // source rather than failing every fetch.
        if let Ok(cached) = Cached::new(token.clone(), issued, generation, shared.rules.lifetimes) {
            return Ok((Arc::new(cached), Via::Store));
        }
    }
    // An expired saved token still lends its refresh token.
    let previous = current
        .as_deref()
        .map(|cached| &cached.token)
        .or(loaded.as_ref());
    let cx = FetchContext::new(previous, reason);
    let mut token = tokio::time::timeout_at(deadline, shared.source.fetch_boxed(cx))
        .await
        .map_err(timed_out)??;
    token.inherit_refresh_token(previous);
    let generation = shared.state.next_generation();
    let cached = Cached::new(token, issued, generation, shared.rules.lifetimes)?;
    shared.persist(&cached.token).await;
    Ok((Arc::new(cached), Via::Source))
}

/// `at + duration`, or thirty years on when that does not fit in an `Instant`: a setting of
/// `Duration::MAX` means "never", not a panic.
fn later(at: Instant, duration: Duration) -> Instant {
    at.checked_add(duration)
        .unwrap_or_else(|| at + Duration::from_secs(30 * 365 * 86_400))
}

fn timed_out(_: tokio::time::error::Elapsed) -> Error {
    Error::new(ErrorKind::Timeout).with_detail("the token source did not finish in time")
}

fn log_success(
    shared: &Shared,
    reason: FetchReason,
    attempt: u32,
    started: Instant,
    cached: &Cached,
    via: Via,
) {
    let grant_type = shared.source.grant_type();
    let reason = reason.as_str();
    let elapsed_ms = millis(started);
    let expires_in_s = cached.token.expires_in().map(|lifetime| lifetime.as_secs());
    match via {
        Via::Store => tracing::debug!(
            grant_type,
            reason,
            elapsed_ms,
            expires_in_s,
            "token loaded from the store"
        ),
        Via::Source => tracing::debug!(
            grant_type,
            reason,
            attempt,
            elapsed_ms,
            expires_in_s,
            "token fetched"
        ),
    }
}

fn log_failure(
    shared: &Shared,
    reason: FetchReason,
    attempt: u32,
    started: Instant,
    error: &Error,
) {
    tracing::warn!(
        grant_type = shared.source.grant_type(),
        reason = reason.as_str(),
        attempt,
        elapsed_ms = millis(started),
        error = %error,
        transient = error.is_transient(),
        "token fetch failed"
    );
}

/// Waits for the outcome of the fetch behind `waiter`.
pub(crate) async fn wait(mut waiter: Waiter) -> Outcome {
    match waiter.wait_for(Option::is_some).await {
        Ok(outcome) => match &*outcome {
            Some(outcome) => outcome.clone(),
            None => Err(interrupted()),
        },
        Err(_) => Err(interrupted()),
    }
}

/// Waits for the outcome of the fetch behind `waiter` and reads what `read` needs of the token
/// while it is borrowed: when thousands of requests wait for one fetch, none of them touches
/// the token's shared reference count.
pub(crate) async fn wait_with<T>(
    mut waiter: Waiter,
    read: impl FnOnce(&Cached) -> T,
) -> Result<T, Error> {
    match waiter.wait_for(Option::is_some).await {
        Ok(outcome) => match &*outcome {
            Some(Ok(cached)) => Ok(read(cached)),
            Some(Err(error)) => Err(error.clone()),
            None => Err(interrupted()),
        },
        Err(_) => Err(interrupted()),
    }
}

fn interrupted() -> Error {
    Error::new(ErrorKind::Interrupted).with_detail("the token fetch stopped before it finished")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() {
        let backoff = Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
            attempts: 3,
        };
        for (failures, step_ms) in [(1, 200), (2, 400), (3, 800), (6, 5000), (40, 5000)] {
            for _ in 0..100 {
                let delay = backoff.delay(failures, None).as_millis();
                assert!(
                    (step_ms / 2..=step_ms).contains(&delay),
                    "{failures}: {delay}"
                );
            }
        }
    }

    #[test]
    fn retry_after_wins_when_longer_and_is_bounded() {
        let backoff = Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
            attempts: 3,
        };
        let hour = Duration::from_secs(3600);
        assert_eq!(
            backoff.delay(1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(backoff.delay(1, Some(hour)), MAX_RETRY_AFTER);
        assert!(backoff.delay(1, Some(Duration::ZERO)) <= Duration::from_millis(200));
    }
}
