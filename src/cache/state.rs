//! The current token and its stamp: one atomic word that says which token is current and
//! whether requests may use it.
//!
//! Requests read the stamp and nothing else on their fast path. Time is never read per
//! request: a timer per token moves the stamp to stale, then to expired.

use std::{
    sync::{
        Arc, Mutex, PoisonError, Weak,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use tokio::{task::AbortHandle, time::Instant};
use zeroize::Zeroizing;

use crate::{Error, ErrorKind, Token, dpop::Bound, secret::sensitive_header};

/// Where the current token is in its life: the low three bits of the stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// No token was ever installed.
    Empty = 0,
    /// The token's lifetime ran out.
    Expired = 1,
    /// A request with the token got a 401 answer.
    Unauthorized = 2,
    /// Good, and not yet inside its refresh margin.
    Fresh = 3,
    /// Still good; a refresh runs, or waits out a backoff step.
    Refreshing = 4,
    /// Inside its refresh margin: the next request starts a background refresh.
    Stale = 5,
    /// Good, but no timer watches its expiry (it was installed outside a runtime, or the
    /// timer's runtime shut down): the next request starts one.
    Unwatched = 6,
}

const PHASE_BITS: u32 = 3;
const PHASE_MASK: u64 = (1 << PHASE_BITS) - 1;

impl Phase {
    /// Whether requests may attach the token.
    pub(crate) fn is_usable(self) -> bool {
        self as u8 >= Self::Fresh as u8
    }
}

/// A token's generation and phase in one word. Generations are unique in the process, so equal
/// stamps mean the same token of the same cache, in the same phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(u64);

impl Stamp {
    /// The stamp of a cache that never held a token.
    pub(crate) const EMPTY: Self = Self(Phase::Empty as u64);

    fn new(generation: u64, phase: Phase) -> Self {
        Self((generation << PHASE_BITS) | phase as u64)
    }

    pub(crate) fn phase(self) -> Phase {
        match self.0 & PHASE_MASK {
            1 => Phase::Expired,
            2 => Phase::Unauthorized,
            3 => Phase::Fresh,
            4 => Phase::Refreshing,
            5 => Phase::Stale,
            6 => Phase::Unwatched,
            _ => Phase::Empty,
        }
    }

    pub(crate) fn generation(self) -> u64 {
        self.0 >> PHASE_BITS
    }

    /// Whether a request may attach the token without doing anything else first: the hot
    /// path's test, without decoding the phase.
    #[inline]
    pub(crate) fn is_settled(self) -> bool {
        const _: () = assert!(Phase::Refreshing as u8 == Phase::Fresh as u8 + 1);
        (self.0 & PHASE_MASK).wrapping_sub(Phase::Fresh as u64) < 2
    }

    fn with(self, phase: Phase) -> Self {
        Self::new(self.generation(), phase)
    }
}

/// The `Authorization` header of `token`. Fails when the access token cannot be sent in a
/// header, which only a broken or hostile server causes.
fn header_of(token: &Token) -> Result<HeaderValue, Error> {
    let access = token.access_token().expose();
    if access.is_empty() {
        return Err(Error::new(ErrorKind::InvalidResponse).with_detail("access token is empty"));
    }
    let value = Zeroizing::new(format!("{} {access}", token.scheme()).into_bytes());
    sensitive_header(value).ok_or_else(|| {
        Error::new(ErrorKind::InvalidResponse)
            .with_detail("access token has characters not allowed in a header")
    })
}

/// Checks that `token` can be sent in a header, before it is saved anywhere.
pub(crate) fn check_header(token: &Token) -> Result<(), Error> {
    header_of(token).map(drop)
}

/// A new generation, unique across every cache of the process.
fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A token as the cache holds it: its `Authorization` header built once, and when it turns
/// stale and expires.
pub(crate) struct Entry {
    pub(crate) generation: u64,
    /// When the token was requested.
    pub(crate) issued: Instant,
    pub(crate) header: HeaderValue,
    /// What requests need to prove they hold the key of a DPoP-bound token.
    pub(crate) dpop: Option<Arc<Bound>>,
    pub(crate) token: Token,
    stale_at: Option<Instant>,
    expires_at: Option<Instant>,
    timer: Mutex<Option<AbortHandle>>,
}

impl Entry {
    /// Builds the entry for `token`, requested at `issued`, with a new generation.
    ///
    /// Fails when the access token cannot be sent in a header, which only a broken or hostile
    /// server causes.
    pub(crate) fn new(token: Token, issued: Instant, margin: Duration) -> Result<Self, Error> {
        let header = header_of(&token)?;
        let (stale_at, expires_at) = match token.expires_in() {
            // A token that came already expired is used until something better arrives.
            Some(Duration::ZERO) => (Some(issued), None),
            Some(lifetime) => {
                let margin = margin.min(lifetime / 2);
                // A lifetime too long for an `Instant`, such as `Duration::MAX`, is forever.
                (
                    issued.checked_add(lifetime - margin),
                    issued.checked_add(lifetime),
                )
            }
            None => (None, None),
        };
        let dpop = token
            .binding()
            .map(|binding| Arc::new(Bound::new(binding.clone(), token.access_token().expose())));
        Ok(Self {
            generation: next_generation(),
            issued,
            header,
            dpop,
            token,
            stale_at,
            expires_at,
            timer: Mutex::new(None),
        })
    }

    /// When the token expires, if it does.
    pub(crate) fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// The phase the token is in now, by the clock.
    fn phase_now(&self) -> Phase {
        let now = Instant::now();
        if self.expires_at.is_some_and(|at| at <= now) {
            Phase::Expired
        } else if self.stale_at.is_some_and(|at| at <= now) {
            Phase::Stale
        } else {
            Phase::Fresh
        }
    }

    /// Starts the timer that marks the token stale, then expired, unless one runs. Returns
    /// `false` outside a Tokio runtime.
    fn watch(self: &Arc<Self>, state: &Arc<State>) -> bool {
        if self.stale_at.is_none() && self.expires_at.is_none() {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let mut timer = self.timer.lock().unwrap_or_else(PoisonError::into_inner);
        if timer.as_ref().is_some_and(|task| !task.is_finished()) {
            return true;
        }
        // Moved into the task before it first runs, so that it is dropped with the task even
        // when the runtime shuts down before polling it.
        let guard = TimerGuard {
            state: Arc::downgrade(state),
            generation: self.generation,
            done: false,
        };
        let (stale_at, expires_at) = (self.stale_at, self.expires_at);
        let task = runtime.spawn(async move {
            let mut guard = guard;
            guard.run(stale_at, expires_at).await;
            guard.done = true;
        });
        *timer = Some(task.abort_handle());
        true
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let timer = self.timer.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(timer) = timer.take() {
            timer.abort();
        }
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

/// Every phase in which requests may use the token.
pub(crate) const USABLE: &[Phase] = &[
    Phase::Fresh,
    Phase::Refreshing,
    Phase::Stale,
    Phase::Unwatched,
];

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
            stamp: AtomicU64::new(Stamp::EMPTY.0),
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
        Stamp(self.stamp.load(Ordering::Acquire))
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
        let phase = if entry.watch(self) {
            entry.phase_now()
        } else {
            Phase::Unwatched
        };
        // Stored before the stamp changes, so whoever sees the new stamp finds the entry.
        self.current.store(Some(Arc::clone(&entry)));
        self.stamp
            .store(Stamp::new(entry.generation, phase).0, Ordering::Release);
    }

    /// Starts a timer for an unwatched token on the caller's runtime, and gives the token the
    /// phase the clock says.
    pub(crate) fn rewatch(self: &Arc<Self>, stamp: Stamp) {
        let Some(entry) = self.entry_for(stamp) else {
            return;
        };
        if entry.watch(self) {
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
                stamp.0,
                stamp.with(to).0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => stamp = Stamp(now),
            }
        }
    }

    /// Moves the stamp from exactly `stamp` to `to`; fails if anything changed meanwhile.
    pub(crate) fn advance(&self, stamp: Stamp, to: Phase) -> bool {
        self.stamp
            .compare_exchange(
                stamp.0,
                stamp.with(to).0,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARGIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_stamp_keeps_generation_and_phase_apart() {
        let stamp = Stamp::new(41, Phase::Stale);
        assert_eq!(stamp.generation(), 41);
        assert_eq!(stamp.phase(), Phase::Stale);
        assert_eq!(stamp.with(Phase::Refreshing).generation(), 41);
        assert_ne!(stamp, stamp.with(Phase::Refreshing));
    }

    #[test]
    fn only_fresh_refreshing_stale_and_unwatched_are_usable() {
        let usable: Vec<Phase> = (0..8)
            .map(|bits| Stamp(bits).phase())
            .filter(|phase| phase.is_usable())
            .collect();
        assert_eq!(usable, USABLE);
        let settled: Vec<Phase> = (0..8)
            .map(|bits| Stamp::new(9, Stamp(bits).phase()))
            .filter(|stamp| stamp.is_settled())
            .map(Stamp::phase)
            .collect();
        assert_eq!(settled, [Phase::Fresh, Phase::Refreshing]);
    }

    #[tokio::test(start_paused = true)]
    async fn margin_is_capped_at_half_the_lifetime() {
        let now = Instant::now();
        let long = Token::bearer("a").with_expires_in(Duration::from_secs(3600));
        let entry = Entry::new(long, now, MARGIN).unwrap();
        assert_eq!(entry.stale_at, Some(now + Duration::from_secs(3540)));
        assert_eq!(entry.expires_at, Some(now + Duration::from_secs(3600)));

        let short = Token::bearer("a").with_expires_in(Duration::from_secs(2));
        let entry = Entry::new(short, now, MARGIN).unwrap();
        assert_eq!(entry.stale_at, Some(now + Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_lifetime_token_is_stale_at_once_but_never_expires() {
        let token = Token::bearer("a").with_expires_in(Duration::ZERO);
        let entry = Entry::new(token, Instant::now(), MARGIN).unwrap();
        assert_eq!(entry.phase_now(), Phase::Stale);
        assert_eq!(entry.expires_at, None);
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_an_invalid_response() {
        for bad in ["", "line\nbreak", "nul\0"] {
            let error = Entry::new(Token::bearer(bad), Instant::now(), MARGIN)
                .err()
                .unwrap();
            assert_eq!(error.kind(), ErrorKind::InvalidResponse);
        }
    }

    #[test]
    fn the_header_is_marked_sensitive() {
        let entry = Entry::new(Token::bearer("abc"), Instant::now(), MARGIN).unwrap();
        assert_eq!(entry.header, "Bearer abc");
        assert!(entry.header.is_sensitive());
    }

    #[test]
    fn every_entry_gets_a_new_generation() {
        let a = Entry::new(Token::bearer("a"), Instant::now(), MARGIN).unwrap();
        let b = Entry::new(Token::bearer("a"), Instant::now(), MARGIN).unwrap();
        assert_ne!(a.generation, b.generation);
    }

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
