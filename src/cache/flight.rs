//! Single flight: at most one fetch at a time, run in a task of its own, its outcome shared.
//!
//! The fetch runs in a spawned task rather than in any request's future, so dropping every
//! request that waits for it cannot cancel it: a refresh token the server rotated is stored
//! whether or not anyone is still waiting.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

use super::state::{Cached, Lifetimes, Phase, State};
use crate::{Error, ErrorKind, FetchContext, FetchReason, source::DynTokenSource};

pub(crate) type Outcome = Result<Arc<Cached>, Error>;

/// What every waiter of one fetch receives: `None` until the fetch ends.
pub(crate) type Waiter = watch::Receiver<Option<Outcome>>;

/// Timing rules, from the cache's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub(crate) lifetimes: Lifetimes,
    pub(crate) min_refresh_interval: Duration,
    pub(crate) fetch_timeout: Duration,
}

/// Everything one cache shares between its clones.
pub(crate) struct Shared {
    pub(crate) state: Arc<State>,
    flight: Mutex<Flight>,
    source: Box<dyn DynTokenSource>,
    pub(crate) rules: Rules,
}

#[derive(Default)]
struct Flight {
    running: Option<Waiter>,
    /// No fetch may start before this instant.
    not_before: Option<Instant>,
}

impl Shared {
    pub(crate) fn new(source: Box<dyn DynTokenSource>, rules: Rules) -> Self {
        Self {
            state: Arc::new(State::new()),
            flight: Mutex::new(Flight::default()),
            source,
            rules,
        }
    }

    fn flight(&self) -> MutexGuard<'_, Flight> {
        // Nothing that can panic runs under this lock; a poisoned lock holds consistent data.
        self.flight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the fetch in flight, or starts one. Returns `None` when a usable token was
    /// installed meanwhile, so the caller can look again instead of fetching.
    pub(crate) fn join(self: &Arc<Self>, reason: FetchReason) -> Option<Result<Waiter, Error>> {
        let mut flight = self.flight();
        if let Some(running) = &flight.running {
            return Some(Ok(running.clone()));
        }
        // Installs happen under this lock, so this look is final until it is released.
        if Phase::of(self.state.word()).is_usable() {
            return None;
        }
        Some(self.start(&mut flight, reason))
    }

    /// Joins the fetch in flight, or starts one even though the current token is usable.
    pub(crate) fn force(self: &Arc<Self>) -> Result<Waiter, Error> {
        let mut flight = self.flight();
        match &flight.running {
            Some(running) => Ok(running.clone()),
            None => self.start(&mut flight, FetchReason::Forced),
        }
    }

    /// Starts a fetch unless one is in flight. Used for background refreshes, whose callers do
    /// not wait.
    pub(crate) fn start_background(self: &Arc<Self>) -> Result<(), Error> {
        let mut flight = self.flight();
        if flight.running.is_none() {
            self.start(&mut flight, FetchReason::Stale)?;
        }
        Ok(())
    }

    fn start(self: &Arc<Self>, flight: &mut Flight, reason: FetchReason) -> Result<Waiter, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(ErrorKind::Config).with_detail("a token fetch needs a Tokio runtime")
        })?;
        let now = Instant::now();
        let start_at = flight.not_before.filter(|at| *at > now);
        flight.not_before = Some(start_at.unwrap_or(now) + self.rules.min_refresh_interval);

        let (sender, waiter) = watch::channel(None);
        flight.running = Some(waiter.clone());
        let guard = FlightGuard {
            shared: Arc::clone(self),
            finished: false,
        };
        runtime.spawn(run(guard, sender, reason, start_at));
        Ok(waiter)
    }

    /// Installs a token that did not come from a fetch, such as one from an authorization-code
    /// exchange or a token store.
    pub(crate) fn seed(&self, cached: Arc<Cached>) {
        let _flight = self.flight();
        self.state.install(cached);
    }

    /// Ends the fetch in flight: installs its token, or keeps the current one when it is still
    /// usable, then releases the flight for the next fetch.
    fn finish(&self, outcome: &Outcome) {
        let mut flight = self.flight();
        flight.running = None;
        match outcome {
            Ok(cached) => self.state.install(Arc::clone(cached)),
            Err(_) => self.release_refreshing(),
        }
    }

    /// After a background refresh that did not produce a token, lets the next request try again.
    /// The flight's `not_before` keeps that from happening sooner than the rules allow.
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
) {
    if let Some(at) = start_at {
        tokio::time::sleep_until(at).await;
    }
    let outcome = fetch(&guard.shared, reason).await;
    guard.shared.finish(&outcome);
    guard.finished = true;
    // Nobody may be waiting any more; the token is installed either way.
    let _ = sender.send(Some(outcome));
}

async fn fetch(shared: &Shared, reason: FetchReason) -> Outcome {
    let issued = Instant::now();
    let previous = shared.state.current();
    let previous_token = previous.as_deref().map(|cached| &cached.token);
    let cx = FetchContext::new(previous_token, reason);
    let fetched = tokio::time::timeout(shared.rules.fetch_timeout, shared.source.fetch_boxed(cx))
        .await
        .map_err(|_| {
            Error::new(ErrorKind::Timeout).with_detail("the token source did not finish in time")
        })?;
    let mut token = fetched?;
    token.inherit_refresh_token(previous_token);
    let generation = shared.state.next_generation();
    Cached::new(token, issued, generation, shared.rules.lifetimes).map(Arc::new)
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

fn interrupted() -> Error {
    Error::new(ErrorKind::Interrupted).with_detail("the token fetch stopped before it finished")
}
