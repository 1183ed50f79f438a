//! Single flight: at most one fetch at a time, run in a task of its own, its outcome shared by
//! every waiter.
//!
//! The fetch runs in a spawned task rather than in any request's future, so dropping every
//! request that waits for it cannot cancel it: a refresh token the server rotated is stored
//! whether or not anyone still waits.
//!
//! After a failed fetch, requests that need a token fail at once with its error until the
//! backoff step ends, so a failing endpoint sees one request per step, not one per caller.
//!
//! The first fetch after a 401 runs at once, and requests wait for it; fetches after 401s to
//! one new token after another are held back by a growing delay, during which only the
//! requests that were refused wait: the others keep sending the token, which may be refused
//! by one endpoint and accepted by the rest.

use std::{
    sync::{Arc, MutexGuard, PoisonError, Weak},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use tracing::Instrument;

use super::{
    Core,
    entry::Entry,
    fetch::{Outcome, attempts, later},
    stamp::{Phase, Stamp},
};
use crate::{Error, ErrorKind, FetchReason};

/// What every waiter of one fetch holds: `None` until the fetch ends.
pub(crate) type Waiter = watch::Receiver<Option<Outcome>>;

/// A 401 answer to a token younger than this, right after another such 401, counts as the API
/// rejecting new tokens rather than a token revoked early.
const YOUNG: Duration = Duration::from_secs(60);

/// The fetch in flight, if any, and what the last fetches left behind.
#[derive(Default)]
pub(super) struct Flight {
    running: Option<Waiter>,
    /// When the running fetch starts asking the source; it may first wait out a backoff step.
    running_from: Option<Instant>,
    /// No fetch for a stale or expired token starts before this instant.
    not_before: Option<Instant>,
    /// Failed attempts in a row.
    failures: u32,
    /// The last failure, and the end of the backoff step it started.
    failed: Option<(Error, Instant)>,
    /// Fetches in a row caused by a 401 answer to a token just fetched.
    rejected_in_a_row: u32,
}

impl Core {
    fn flight(&self) -> MutexGuard<'_, Flight> {
        // Nothing that can panic runs under this lock; a poisoned lock holds consistent data.
        self.flight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the fetch in flight, or starts one. `None` when a usable token was installed
    /// meanwhile: the caller looks again. Inside a backoff step after a failure, that failure.
    pub(super) fn join(self: &Arc<Self>, reason: FetchReason) -> Option<Result<Waiter, Error>> {
        let flight = self.flight();
        let now = Instant::now();
        let failed = flight
            .failed
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(error, _)| error.clone());
        if let Some(running) = &flight.running {
            // A fetch that sleeps out a backoff step is no reason to wait: fail fast, as when
            // none runs.
            let sleeping = flight.running_from.is_some_and(|from| now < from);
            return Some(match failed {
                Some(error) if sleeping => Err(error),
                _ => Ok(running.clone()),
            });
        }
        // Installs happen under this lock, so this look is final until it is released.
        if self.state.stamp().phase().is_usable() {
            return None;
        }
        if let Some(error) = failed {
            return Some(Err(error));
        }
        Some(self.start(flight, reason))
    }

    /// The token `stamp` names, refused by a 401 answer, while the fetch that replaces it waits
    /// out the delay that repeated 401s hold it back by, or a backoff step, and the token has
    /// not expired: requests that were not refused keep sending it rather than wait. A request
    /// that was refused waits for the fetch (`TokenCache::ticket_after`).
    pub(super) fn held_back(&self, stamp: Stamp) -> Option<Arc<Entry>> {
        if stamp.phase() != Phase::Unauthorized {
            return None;
        }
        let now = Instant::now();
        let flight = self.flight();
        let sleeping =
            flight.running.is_some() && flight.running_from.is_some_and(|from| now < from);
        drop(flight);
        if !sleeping {
            return None;
        }
        self.state
            .entry_for(stamp)
            .filter(|entry| entry.expires_at().is_none_or(|at| now < at))
    }

    /// Joins the fetch in flight, or starts one even though the current token is usable.
    pub(super) fn force(self: &Arc<Self>) -> Result<Waiter, Error> {
        let flight = self.flight();
        match &flight.running {
            Some(running) => Ok(running.clone()),
            None => self.start(flight, FetchReason::Forced),
        }
    }

    /// Starts a fetch for a stale token unless one runs. Nobody waits for it.
    pub(super) fn refresh_in_background(self: &Arc<Self>) -> Result<(), Error> {
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
        let held_until = match reason {
            // The first refresh after a 401 runs at once: the token may have been revoked a
            // moment after it was fetched. Only 401s for one new token after another are held
            // back, by a growing delay.
            FetchReason::Unauthorized => self.after_rejections(&mut flight, now),
            _ => {
                flight.rejected_in_a_row = 0;
                flight.not_before
            }
        };
        let start_at = held_until.max(backoff_until).filter(|at| *at > now);
        flight.not_before = Some(later(
            start_at.unwrap_or(now),
            self.rules.min_refresh_interval,
        ));
        flight.running_from = start_at;

        let (sender, waiter) = watch::channel(None);
        flight.running = Some(waiter.clone());
        let guard = FlightGuard {
            core: Arc::clone(self),
            finished: false,
        };
        let cause = tracing::Span::current().id();
        // A runtime that is shutting down drops the task inside `spawn`, on this thread, and
        // the guard then takes the flight lock: release it first.
        drop(flight);
        runtime.spawn(run(guard, sender, reason, start_at, cause));
        Ok(waiter)
    }

    /// When a fetch after a 401 may start: at once for the first, later and later when the API
    /// keeps rejecting tokens it has just been given.
    fn after_rejections(&self, flight: &mut Flight, now: Instant) -> Option<Instant> {
        let young = self
            .state
            .current()
            .is_some_and(|entry| now.saturating_duration_since(entry.issued) < YOUNG);
        flight.rejected_in_a_row = if young {
            flight.rejected_in_a_row.saturating_add(1)
        } else {
            1
        };
        let repeats = flight.rejected_in_a_row - 1;
        if repeats == 0 {
            return None;
        }
        let delay = self.rules.backoff.delay(repeats, None);
        tracing::warn!(
            grant_type = self.source.grant_type(),
            rejected_in_a_row = flight.rejected_in_a_row,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "the API keeps answering 401 to new tokens; check the audience and scopes the \
             tokens are requested for"
        );
        Some(later(now, delay))
    }

    /// Installs a token that did not come from a fetch, such as one from an authorization-code
    /// exchange.
    pub(super) fn seed(&self, entry: Arc<Entry>) {
        let _flight = self.flight();
        self.state.install(entry);
    }

    /// Counts a failed attempt and returns when the next one may start.
    pub(super) fn record_failure(&self, error: &Error) -> Instant {
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

    /// Ends the fetch in flight: installs its token, then lets the next fetch start.
    pub(super) fn finish(&self, outcome: &Outcome) {
        let mut flight = self.flight();
        flight.running = None;
        if let Ok(entry) = outcome {
            flight.failures = 0;
            flight.failed = None;
            self.state.install(Arc::clone(entry));
        }
    }

    /// After a background refresh that failed, lets requests start the next one.
    pub(super) fn release_refreshing(&self) {
        if let Some(current) = self.state.current() {
            self.state
                .transition(current.generation, &[Phase::Refreshing], Phase::Stale);
        }
    }
}

/// The flight's task: waits until `start_at`, fetches, installs the outcome and sends it to
/// every waiter.
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
    let core = Arc::clone(&guard.core);
    // The fetch outlives the request that started it: a root span that follows from the
    // request's, not its child.
    let span = tracing::info_span!(
        parent: None,
        "token_fetch",
        grant_type = core.source.grant_type(),
        reason = reason.as_str(),
        outcome = tracing::field::Empty,
        attempts = tracing::field::Empty,
        elapsed_ms = tracing::field::Empty,
    );
    span.follows_from(cause);
    let (outcome, retry_at) = attempts(&core, reason).instrument(span.clone()).await;
    drop(span);

    core.finish(&outcome);
    guard.finished = true;
    drop(guard);
    // Nobody may be waiting any more; the token is installed either way.
    let _ = sender.send(Some(outcome));

    // A token that is still valid keeps serving; the next background refresh waits for the
    // backoff step. The wait holds no strong reference, so it keeps no cache alive.
    if let Some(retry_at) = retry_at {
        let weak = Arc::downgrade(&core);
        drop(core);
        tokio::time::sleep_until(retry_at).await;
        if let Some(core) = Weak::upgrade(&weak) {
            core.release_refreshing();
        }
    }
}

/// Releases the flight if its task ends without finishing: the runtime shut down, or the token
/// source panicked. Waiters then see the sender dropped and report `Interrupted`.
struct FlightGuard {
    core: Arc<Core>,
    finished: bool,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.core.flight().running = None;
            self.core.release_refreshing();
        }
    }
}

/// Waits for the outcome of the fetch behind `waiter`.
pub(crate) async fn wait(waiter: Waiter) -> Outcome {
    wait_with(waiter, Arc::clone).await
}

/// Waits for the outcome of the fetch behind `waiter` and reads what `read` needs of the token
/// while it is borrowed: the thousands of requests a cold cache holds back need not each take
/// a reference to it.
pub(crate) async fn wait_with<T>(
    mut waiter: Waiter,
    read: impl FnOnce(&Arc<Entry>) -> T,
) -> Result<T, Error> {
    match waiter.wait_for(Option::is_some).await {
        Ok(outcome) => match &*outcome {
            Some(Ok(entry)) => Ok(read(entry)),
            Some(Err(error)) => Err(error.clone()),
            None => Err(interrupted()),
        },
        Err(_) => Err(interrupted()),
    }
}

fn interrupted() -> Error {
    Error::new(ErrorKind::Interrupted).with_detail("the token fetch stopped before it finished")
}
