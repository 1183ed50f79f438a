//! The stamp: a token's generation and phase in one word, the one thing a request reads on
//! its fast path. Equal stamps mean the same token of the same cache, in the same phase.

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

    pub(super) fn new(generation: u64, phase: Phase) -> Self {
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

    pub(super) fn with(self, phase: Phase) -> Self {
        Self::new(self.generation(), phase)
    }

    /// The stamp stored as `word` in the state's atomic.
    pub(super) fn from_word(word: u64) -> Self {
        Self(word)
    }

    /// The stamp as the state's atomic stores it.
    pub(super) fn word(self) -> u64 {
        self.0
    }
}

/// Every phase in which requests may use the token.
pub(crate) const USABLE: &[Phase] = &[
    Phase::Fresh,
    Phase::Refreshing,
    Phase::Stale,
    Phase::Unwatched,
];

#[cfg(test)]
mod tests {
    use super::*;

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
}
