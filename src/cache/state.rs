//! The current token and its stamp: one atomic word that says which token is current and
//! whether requests may use it.
//!
//! Requests read the stamp and nothing else on their fast path. Time is never read per
//! request: a timer per token moves the stamp to stale, then to expired.

use std::sync::{
    Arc, PoisonError, Weak,
    atomic::{AtomicU64, AtomicUsize, Ordering},
};

use arc_swap::ArcSwapOption;
use tokio::time::Instant;

use super::{
    entry::Entry,
    stamp::{Phase, Stamp, USABLE},
};

/// The current token and its stamp.
pub(crate) struct State {
    stamp: AtomicU64,
    /// Which of a thread's slots holds this cache's copy of the header: caches made one after
    /// the other take slots in turn, so up to `slots` caches never share one.
    slot: usize,
    current: ArcSwapOption<Entry>,
}

impl State {
    pub(crate) fn new(slots: usize) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Self {
            stamp: AtomicU64::new(Stamp::EMPTY.word()),
            slot: NEXT.fetch_add(1, Ordering::Relaxed) % slots,
            current: ArcSwapOption::const_empty(),
        }
    }

    #[inline]
    pub(crate) fn slot(&self) -> usize {
        self.slot
    }

    /// The hot path's one read.
    #[inline]
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp::from_word(self.stamp.load(Ordering::Acquire))
    }

    pub(crate) fn current(&self) -> Option<Arc<Entry>> {
        self.current.load_full()
    }

    /// The current entry, if its generation is the one `stamp` names.
    pub(crate) fn entry_for(&self, stamp: Stamp) -> Option<Arc<Entry>> {
        self.current()
            .filter(|entry| entry.generation == stamp.generation())
    }

    /// Makes `entry` the current token. The caller holds the flight lock, so installs never
    /// race each other.
    pub(crate) fn install(self: &Arc<Self>, entry: Arc<Entry>) {
        let phase = if self.watch(&entry) {
            entry.phase_now()
        } else {
            Phase::Unwatched
        };
        // Stored before the stamp changes, so whoever sees the new stamp finds the entry.
        self.current.store(Some(Arc::clone(&entry)));
        self.stamp.store(
            Stamp::new(entry.generation, phase).word(),
            Ordering::Release,
        );
    }

    /// Starts a timer for an unwatched token on the caller's runtime, and gives the token the
    /// phase the clock says.
    pub(crate) fn rewatch(self: &Arc<Self>, stamp: Stamp) {
        let Some(entry) = self.entry_for(stamp) else {
            return;
        };
        if self.watch(&entry) {
            self.transition(entry.generation, &[Phase::Unwatched], entry.phase_now());
        }
    }

    /// Moves the token of `generation`, if it is current and in one of `from`, to `to`.
    /// Returns whether it is still current.
    pub(crate) fn transition(&self, generation: u64, from: &[Phase], to: Phase) -> bool {
        let mut stamp = self.stamp();
        loop {
            if stamp.generation() != generation {
                return false;
            }
            if !from.contains(&stamp.phase()) {
                return true;
            }
            match self.stamp.compare_exchange_weak(
                stamp.word(),
                stamp.with(to).word(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => stamp = Stamp::from_word(now),
            }
        }
    }

    /// Moves the stamp from exactly `stamp` to `to`; fails if anything changed meanwhile.
    pub(crate) fn advance(&self, stamp: Stamp, to: Phase) -> bool {
        self.stamp
            .compare_exchange(
                stamp.word(),
                stamp.with(to).word(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Starts the timer that marks `entry` stale, then expired, unless one runs. Returns
    /// `false` outside a Tokio runtime.
    fn watch(self: &Arc<Self>, entry: &Arc<Entry>) -> bool {
        if entry.stale_at.is_none() && entry.expires_at.is_none() {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let mut timer = entry.timer.lock().unwrap_or_else(PoisonError::into_inner);
        if timer.as_ref().is_some_and(|task| !task.is_finished()) {
            return true;
        }
        // Moved into the task before it first runs, so that it is dropped with the task even
        // when the runtime shuts down before polling it.
        let guard = TimerGuard {
            state: Arc::downgrade(self),
            generation: entry.generation,
            done: false,
        };
        let (stale_at, expires_at) = (entry.stale_at, entry.expires_at);
        let task = runtime.spawn(async move {
            let mut guard = guard;
            guard.run(stale_at, expires_at).await;
            guard.done = true;
        });
        *timer = Some(task.abort_handle());
        true
    }
}

/// The timer of one token. Dropped before it is done, its runtime shut down: nothing would
/// mark the token stale or expired any more, so it marks the token unwatched, and the next
/// request starts another timer on its own runtime.
struct TimerGuard {
    state: Weak<State>,
    generation: u64,
    done: bool,
}

impl TimerGuard {
    async fn run(&self, stale_at: Option<Instant>, expires_at: Option<Instant>) {
        if let Some(at) = stale_at {
            tokio::time::sleep_until(at).await;
            if !self.mark(&[Phase::Fresh], Phase::Stale) {
                return;
            }
        }
        if let Some(at) = expires_at {
            tokio::time::sleep_until(at).await;
            self.mark(USABLE, Phase::Expired);
        }
    }

    /// Whether the token is still current.
    fn mark(&self, from: &[Phase], to: Phase) -> bool {
        self.state
            .upgrade()
            .is_some_and(|state| state.transition(self.generation, from, to))
    }
}

impl Drop for TimerGuard {
    fn drop(&mut self) {
        if !self.done {
            let watched = [Phase::Fresh, Phase::Refreshing, Phase::Stale];
            self.mark(&watched, Phase::Unwatched);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Token;

    const MARGIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_token_installed_outside_a_runtime_is_unwatched_and_a_transition_needs_its_generation() {
        let state = Arc::new(State::new(1));
        let token = Token::bearer("a").with_expires_in(Duration::from_secs(3600));
        let entry = Arc::new(Entry::new(token, Instant::now(), MARGIN).unwrap());
        let generation = entry.generation;
        state.install(entry);
        assert_eq!(state.stamp().phase(), Phase::Unwatched);
        assert!(!state.transition(generation + 1, USABLE, Phase::Expired));
        assert_eq!(state.stamp().phase(), Phase::Unwatched);
        assert!(state.transition(generation, USABLE, Phase::Unauthorized));
        assert_eq!(state.stamp().phase(), Phase::Unauthorized);
    }
}
