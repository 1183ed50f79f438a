//! The cache's state: the current token, and one atomic word that says whether it may be used.
//!
//! Requests read the word, and nothing else, on their fast path. Every change of state bumps a
//! sequence number inside the word, so a service that remembers the word it last saw knows with
//! one atomic load whether anything changed. Time never has to be read per request: a timer per
//! token flips the word when the token turns stale and again when it expires.

use std::{
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use tokio::{task::AbortHandle, time::Instant};
use zeroize::Zeroizing;

use crate::{Error, ErrorKind, Token, secret::sensitive_header};

/// Where a token is in its life. The low three bits of the state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// No token was ever installed.
    Empty = 0,
    /// The token's lifetime ran out.
    Expired = 1,
    /// A request with the token got a 401 answer.
    Rejected = 2,
    /// The token is good and not yet inside its refresh margin.
    Fresh = 3,
    /// The token is inside its refresh margin; the next request starts a background refresh.
    Stale = 4,
    /// The token is still good and a refresh has been started or scheduled.
    Refreshing = 5,
}

const PHASE_BITS: u32 = 3;
const PHASE_MASK: u64 = (1 << PHASE_BITS) - 1;

impl Phase {
    pub(crate) fn of(word: u64) -> Self {
        match word & PHASE_MASK {
            1 => Self::Expired,
            2 => Self::Rejected,
            3 => Self::Fresh,
            4 => Self::Stale,
            5 => Self::Refreshing,
            _ => Self::Empty,
        }
    }

    /// Whether requests may attach the current token.
    pub(crate) fn is_usable(self) -> bool {
        self as u8 >= Self::Fresh as u8
    }
}

/// A new word with `phase` and a sequence number one past `word`'s.
fn next_word(word: u64, phase: Phase) -> u64 {
    ((word >> PHASE_BITS).wrapping_add(1) << PHASE_BITS) | phase as u64
}

/// Lifetime policy, from the cache's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetimes {
    pub(crate) refresh_margin: Duration,
}

/// A token as the cache holds it: with its `Authorization` header built once, and the instants
/// at which it turns stale and expires.
pub(crate) struct Cached {
    pub(crate) generation: u64,
    pub(crate) header: HeaderValue,
    pub(crate) token: Token,
    stale_at: Option<Instant>,
    expires_at: Option<Instant>,
    /// Whether a timer runs for this token: cleared when its runtime drops it, so the next
    /// request on a live runtime starts another.
    armed: AtomicBool,
    timer: Mutex<Option<AbortHandle>>,
}

impl Cached {
    /// Builds the cached form of `token`, requested at `issued`.
    ///
    /// Fails when the access token cannot be sent in a header, which only a broken or hostile
    /// server causes.
    pub(crate) fn new(
        token: Token,
        issued: Instant,
        generation: u64,
        lifetimes: Lifetimes,
    ) -> Result<Self, Error> {
        let access = token.access_token().expose();
        if access.is_empty() {
            return Err(Error::new(ErrorKind::InvalidResponse).with_detail("access token is empty"));
        }
        let value = Zeroizing::new(format!("Bearer {access}").into_bytes());
        let header = sensitive_header(value).ok_or_else(|| {
            Error::new(ErrorKind::InvalidResponse)
                .with_detail("access token has characters not allowed in a header")
        })?;

        let (stale_at, expires_at) = match token.expires_in() {
            // A token that came already expired is used until something better arrives.
            Some(Duration::ZERO) => (Some(issued), None),
            Some(lifetime) => {
                let margin = lifetimes.refresh_margin.min(lifetime / 2);
                // A lifetime too long for an `Instant`, such as `Duration::MAX`, is forever.
                (
                    issued.checked_add(lifetime - margin),
                    issued.checked_add(lifetime),
                )
            }
            None => (None, None),
        };
        Ok(Self {
            generation,
            header,
            token,
            stale_at,
            expires_at,
            armed: AtomicBool::new(false),
            timer: Mutex::new(None),
        })
    }

    /// The phase a token starts in when it is installed.
    fn initial_phase(&self) -> Phase {
        let now = Instant::now();
        if self.expires_at.is_some_and(|at| at <= now) {
            Phase::Expired
        } else if self.stale_at.is_some_and(|at| at <= now) {
            Phase::Stale
        } else {
            Phase::Fresh
        }
    }

    /// Whether the timer that flips the phase runs, or is not needed.
    pub(crate) fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire) || (self.stale_at.is_none() && self.expires_at.is_none())
    }

    /// Starts the timer that marks the token stale, then expired. Does nothing outside a Tokio
    /// runtime; the next request inside one arms it.
    pub(crate) fn arm(self: &Arc<Self>, state: &Arc<State>) {
        if self.is_armed() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.armed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (generation, stale_at, expires_at) = (self.generation, self.stale_at, self.expires_at);
        // Moved into the task before it first runs, so that it is dropped with the task even
        // when the runtime shuts down before polling it.
        let guard = TimerGuard {
            cached: Arc::downgrade(self),
            state: Arc::downgrade(state),
            generation,
            finished: false,
        };
        let task = runtime.spawn(async move {
            let mut guard = guard;
            expire(&guard.state, generation, stale_at, expires_at).await;
            guard.finished = true;
        });
        let mut timer = self.timer.lock().unwrap_or_else(PoisonError::into_inner);
        *timer = Some(task.abort_handle());
    }
}

/// Marks the token of `generation` stale at `stale_at`, then expired at `expires_at`.
async fn expire(
    state: &Weak<State>,
    generation: u64,
    stale_at: Option<Instant>,
    expires_at: Option<Instant>,
) {
    if let Some(at) = stale_at {
        tokio::time::sleep_until(at).await;
        if !mark(state, generation, &[Phase::Fresh], Phase::Stale) {
            return;
        }
    }
    if let Some(at) = expires_at {
        tokio::time::sleep_until(at).await;
        let usable = [Phase::Fresh, Phase::Stale, Phase::Refreshing];
        mark(state, generation, &usable, Phase::Expired);
    }
}

/// Notices a timer that stopped before its work was done, because its runtime shut down.
/// Nothing else would ever mark the token stale or expired, so the token is disarmed and the
/// state word bumped: services that remember the word look again, and re-arm the timer on
/// the runtime they run on.
struct TimerGuard {
    cached: Weak<Cached>,
    state: Weak<State>,
    generation: u64,
    finished: bool,
}

impl Drop for TimerGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some(cached) = self.cached.upgrade() {
            cached.armed.store(false, Ordering::Release);
        }
        if let Some(state) = self.state.upgrade() {
            state.touch(self.generation);
        }
    }
}

impl Drop for Cached {
    fn drop(&mut self) {
        let timer = self.timer.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(timer) = timer.take() {
            timer.abort();
        }
    }
}

/// Moves the token of `generation` from one of `from` to `to`. Returns whether the token is
/// still current, that is, whether the caller's timer still has work to do.
fn mark(state: &Weak<State>, generation: u64, from: &[Phase], to: Phase) -> bool {
    match state.upgrade() {
        Some(state) => state.transition(generation, from, to),
        None => false,
    }
}

/// The shared state of one cache.
pub(crate) struct State {
    word: AtomicU64,
    current: ArcSwapOption<Cached>,
}

impl State {
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU64::new(Phase::Empty as u64),
            current: ArcSwapOption::const_empty(),
        }
    }

    /// The state word: the hot path's one read.
    #[inline]
    pub(crate) fn word(&self) -> u64 {
        self.word.load(Ordering::Acquire)
    }

    pub(crate) fn current(&self) -> Option<Arc<Cached>> {
        self.current.load_full()
    }

    pub(crate) fn next_generation(&self) -> u64 {
        // Counted across every cache of the process, so that a token of one cache can never
        // be taken for a token of another.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes `cached` the current token.
    pub(crate) fn install(self: &Arc<Self>, cached: Arc<Cached>) {
        let phase = cached.initial_phase();
        self.current.store(Some(Arc::clone(&cached)));
        // The token is stored before the word changes, so whoever sees the new word finds it.
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                Some(next_word(word, phase))
            });
        cached.arm(self);
    }

    /// Moves the token of `generation`, if it is still current, from one of `from` to `to`.
    /// Returns `false` when a newer token has replaced it.
    pub(crate) fn transition(&self, generation: u64, from: &[Phase], to: Phase) -> bool {
        loop {
            let word = self.word();
            let is_current = self
                .current
                .load()
                .as_ref()
                .is_some_and(|cached| cached.generation == generation);
            if !is_current {
                return false;
            }
            if !from.contains(&Phase::of(word)) {
                return true;
            }
            // An install in between bumps the word, so this fails and the loop looks again.
            if self.compare_exchange(word, next_word(word, to)) {
                return true;
            }
        }
    }

    /// Bumps the word without changing its phase, if the token of `generation` is current and
    /// usable, so that every service that remembers the word looks again.
    pub(crate) fn touch(&self, generation: u64) {
        loop {
            let word = self.word();
            let phase = Phase::of(word);
            let is_current = self
                .current
                .load()
                .as_ref()
                .is_some_and(|cached| cached.generation == generation);
            if !is_current || !phase.is_usable() {
                return;
            }
            if self.compare_exchange(word, next_word(word, phase)) {
                return;
            }
        }
    }

    /// Moves the word from `word` to a new one with `phase`, if no one changed it meanwhile.
    pub(crate) fn try_advance(&self, word: u64, phase: Phase) -> Option<u64> {
        let next = next_word(word, phase);
        self.compare_exchange(word, next).then_some(next)
    }

    fn compare_exchange(&self, current: u64, new: u64) -> bool {
        self.word
            .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifetimes() -> Lifetimes {
        Lifetimes {
            refresh_margin: Duration::from_secs(60),
        }
    }

    #[test]
    fn every_transition_changes_the_word() {
        let word = Phase::Fresh as u64;
        let next = next_word(word, Phase::Fresh);
        assert_ne!(word, next);
        assert_eq!(Phase::of(next), Phase::Fresh);
        assert_eq!(Phase::of(next_word(next, Phase::Stale)), Phase::Stale);
    }

    #[test]
    fn only_fresh_stale_and_refreshing_are_usable() {
        let usable: Vec<Phase> = (0..8)
            .map(Phase::of)
            .filter(|phase| phase.is_usable())
            .collect();
        assert_eq!(usable, [Phase::Fresh, Phase::Stale, Phase::Refreshing]);
    }

    #[tokio::test(start_paused = true)]
    async fn margin_is_capped_at_half_the_lifetime() {
        let now = Instant::now();
        let long = Token::bearer("a").with_expires_in(Duration::from_secs(3600));
        let cached = Cached::new(long, now, 1, lifetimes()).unwrap();
        assert_eq!(cached.stale_at, Some(now + Duration::from_secs(3540)));
        assert_eq!(cached.expires_at, Some(now + Duration::from_secs(3600)));

        let short = Token::bearer("a").with_expires_in(Duration::from_secs(2));
        let cached = Cached::new(short, now, 1, lifetimes()).unwrap();
        assert_eq!(cached.stale_at, Some(now + Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_lifetime_token_is_stale_at_once_but_never_expires() {
        let token = Token::bearer("a").with_expires_in(Duration::ZERO);
        let cached = Cached::new(token, Instant::now(), 1, lifetimes()).unwrap();
        assert_eq!(cached.initial_phase(), Phase::Stale);
        assert_eq!(cached.expires_at, None);
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_an_invalid_response() {
        for bad in ["", "line\nbreak", "nul\0"] {
            let error = Cached::new(Token::bearer(bad), Instant::now(), 1, lifetimes())
                .err()
                .unwrap();
            assert_eq!(error.kind(), ErrorKind::InvalidResponse);
        }
    }

    #[test]
    fn the_header_is_marked_sensitive() {
        let cached = Cached::new(Token::bearer("abc"), Instant::now(), 1, lifetimes()).unwrap();
        assert_eq!(cached.header, "Bearer abc");
        assert!(cached.header.is_sensitive());
    }
}
