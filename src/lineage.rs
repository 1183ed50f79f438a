//! The one rule every place that keeps token sets follows: the newer set wins.
//!
//! A server that rotates refresh tokens accepts only the newest one, and one with reuse
//! detection revokes the whole grant when an older one comes back. So a token set must never
//! be replaced by one it replaced: not by a late save, not by a store load, not by a value read
//! from Redis that a failed write left behind or that someone copied back. Each set carries its
//! [`Lineage`], and whoever keeps sets compares lineages before replacing one.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::Token;

/// Where a token set stands among the sets of one grant: a set made to replace another has a
/// higher lineage than it, so the newer of two sets is the one with the higher lineage.
///
/// The [`TokenCache`](crate::TokenCache) gives every set it gets a lineage above the set it
/// replaces, and above the wall-clock time in milliseconds (times 1024, plus a random tie
/// breaker), so that two sets started afresh, such as two sign-ins, also order by when they
/// were made. Sets saved before lineages existed, and tokens a custom source builds, have
/// [`Lineage::UNKNOWN`], below every other.
///
/// A [`TokenStore`](crate::TokenStore) of one's own keeps it beside the token
/// ([`Token::lineage`], [`Token::with_lineage`]) and refuses to replace a saved set with one
/// of a lower lineage.
///
/// ```
/// use tower_oauth2::{Lineage, Token};
///
/// let older = Token::bearer("a").with_lineage(Lineage::from_u64(7));
/// let newer = Token::bearer("b").with_lineage(Lineage::from_u64(8));
/// assert!(newer.lineage() > older.lineage());
/// assert_eq!(Lineage::newest(Some(&older), Some(&newer)).unwrap().lineage(), newer.lineage());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lineage(u64);

impl Lineage {
    /// The lineage of a set whose place is not known: older than any other.
    pub const UNKNOWN: Self = Self(0);

    /// The lineage a store saved as [`as_u64`](Self::as_u64).
    pub const fn from_u64(value: u64) -> Self {
        Self(value)
    }

    /// The lineage as a number, to save beside the token.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The lineage of a set made now to replace a set of lineage `previous`: above it, and
    /// above the clock, so it also orders after sets made earlier from another start.
    pub(crate) fn after(previous: Self) -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let clock = millis
            .saturating_mul(1024)
            .saturating_add(rand::random_range(0..1024));
        Self(clock.max(previous.0.saturating_add(1)))
    }

    /// The newer of two token sets, the first when they are of one lineage: the rule every
    /// keeper of token sets follows.
    pub fn newest<'a>(first: Option<&'a Token>, second: Option<&'a Token>) -> Option<&'a Token> {
        match (first, second) {
            (Some(first), Some(second)) if second.lineage() > first.lineage() => Some(second),
            (Some(first), _) => Some(first),
            (None, second) => second,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_made_after_another_is_newer_even_when_the_other_came_from_a_clock_ahead() {
        let ahead = Lineage(u64::MAX / 2);
        assert!(Lineage::after(ahead) > ahead);
        assert!(Lineage::after(Lineage::UNKNOWN) > Lineage::UNKNOWN);
        assert_eq!(Lineage::after(Lineage(u64::MAX)), Lineage(u64::MAX));
    }

    #[test]
    fn a_fresh_start_orders_after_sets_made_before_it() {
        let earlier = Lineage::after(Lineage::UNKNOWN);
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(Lineage::after(Lineage::UNKNOWN) > earlier);
    }

    #[test]
    fn the_newest_of_two_sets_is_the_one_of_higher_lineage_and_the_first_on_a_tie() {
        let a = Token::bearer("a").with_lineage(Lineage(5));
        let b = Token::bearer("b").with_lineage(Lineage(6));
        let c = Token::bearer("c").with_lineage(Lineage(5));
        let pick = |x, y| Lineage::newest(x, y).map(|t| t.access_token().expose().to_owned());
        assert_eq!(pick(Some(&a), Some(&b)).as_deref(), Some("b"));
        assert_eq!(pick(Some(&b), Some(&a)).as_deref(), Some("b"));
        assert_eq!(pick(Some(&a), Some(&c)).as_deref(), Some("a"));
        assert_eq!(pick(None, Some(&c)).as_deref(), Some("c"));
        assert_eq!(pick(Some(&a), None).as_deref(), Some("a"));
        assert!(pick(None, None).is_none());
    }
}
