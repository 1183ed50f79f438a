//! The token set as Redis holds it: what a replica reads there and whether it takes it, the
//! sealed value and time to live of a set it shares, and retiring a set a server refused.

use std::time::{Duration, SystemTime};

use tracing::Instrument;

use super::{
    FleetScope, RedisFleet,
    lineage::{Refused, open_with_lifetime},
    redis::Failure,
    stats::Event,
};
use crate::{Token, saved};

/// How long a token set whose token came without `expires_in` stays in Redis: such a token
/// is used until a request with it gets a 401 answer, and a replica that joins later should
/// not hold on to it for ever.
const UNKNOWN_LIFETIME: Duration = Duration::from_secs(3600);

/// A token set shorter-lived than this is not shared: it would be stale on arrival.
const SHORTEST_SHARED: Duration = Duration::from_secs(1);

/// What `RedisFleet::retire` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retired {
    /// The shared token set held the refused token, and no longer offers it: it is gone, or,
    /// when it carries a refresh token, kept with its access token marked expired.
    Removed,
    /// The shared token set is absent or holds another token: someone replaced it already.
    NotHeld,
    /// Redis failed or did not answer in time.
    Unavailable,
}

/// A token set read from Redis, and its whole lifetime if known.
pub(super) struct SharedSet {
    pub(super) token: Token,
    pub(super) lifetime: Option<Duration>,
}

/// What the token key held when read: its exact bytes, and the token set in them when this
/// replica takes it (one it can open, and no older than one it has seen).
pub(super) struct Read {
    pub(super) bytes: Option<Vec<u8>>,
    pub(super) shared: Option<SharedSet>,
}

impl RedisFleet {
    /// How long the token set of `token` stays in Redis; `None` when it is not worth sharing.
    pub(super) fn ttl(&self, token: &Token) -> Option<Duration> {
        let lifetime = token.expires_in().unwrap_or(UNKNOWN_LIFETIME);
        if lifetime < SHORTEST_SHARED {
            // Its access token is stale on arrival, but a refresh token is worth sharing.
            return token
                .refresh_token()
                .and(Some(self.refresh_retention))
                .filter(|retention| !retention.is_zero());
        }
        Some(match token.refresh_token() {
            Some(_) => lifetime.saturating_add(self.refresh_retention),
            None => lifetime,
        })
    }

    /// Retires the shared token set of `scope` if it still offers `token`, which a server has
    /// just refused: many replicas refused the same token cause one grant. Compares the exact
    /// bytes it read, so a token set written meanwhile stays. Never fails: Redis failures are
    /// logged and reported as [`Retired::Unavailable`].
    ///
    /// A token set without a refresh token is deleted. One with a refresh token is rewritten
    /// with its access token expired, since its refresh token may be the only one a rotating
    /// server still accepts: deleted, the next grant would run with whatever refresh token
    /// its replica holds, which may be older, and a server with reuse detection then revokes
    /// the whole grant.
    pub(crate) async fn retire(&self, scope: &FleetScope, token: &Token) -> Retired {
        let span = tracing::info_span!("fleet_retire", set = %scope.hash);
        async {
            if !self.health.worth_trying(self.redis.timeout) {
                return Retired::Unavailable;
            }
            let read = match self.read(scope).await {
                Ok(read) => read,
                Err(failure) => {
                    self.health.failed("read", &failure);
                    return Retired::Unavailable;
                }
            };
            self.health.succeeded();
            let (Some(value), Some(shared)) = (read.bytes, read.shared) else {
                return Retired::NotHeld;
            };
            // An expired token set offers its token to nobody: retired already, or expired.
            let offered = shared.token.expires_in() != Some(Duration::ZERO);
            if !offered || shared.token.access_token() != token.access_token() {
                return Retired::NotHeld;
            }
            let replaced = match self.expired_value(scope, &shared.token) {
                Some(expired) => {
                    self.redis
                        .compare_and_swap(&scope.token, &value, &expired)
                        .await
                }
                None => self.redis.compare_and_delete(&scope.token, &value).await,
            };
            match replaced {
                Ok(true) => {
                    self.counters.count(Event::Retired);
                    tracing::debug!("refused token retired from the fleet");
                    Retired::Removed
                }
                Ok(false) => Retired::NotHeld,
                Err(failure) => {
                    self.health.failed("retire", &failure);
                    Retired::Unavailable
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The sealed value of `token` with its access token expired, if it has a refresh token
    /// worth keeping.
    fn expired_value(&self, scope: &FleetScope, token: &Token) -> Option<Vec<u8>> {
        token.refresh_token()?;
        self.seal(scope, &token.clone().with_expires_in(Duration::ZERO))
    }

    /// `token`'s set as the value to store at `scope`'s token key.
    pub(super) fn seal(&self, scope: &FleetScope, token: &Token) -> Option<Vec<u8>> {
        let json = saved::Saving::new(token, SystemTime::now()).to_json(false, false)?;
        self.keyring.seal(&scope.token, &json)
    }

    /// What the token key holds, with the shared token set if there is one this fleet can
    /// open and parse and that is no older than one this replica has seen. Any other value is
    /// logged, counted and treated as absent, but its bytes are kept: a commit replaces it.
    pub(super) async fn read(&self, scope: &FleetScope) -> Result<Read, Failure> {
        let Some(value) = self.redis.get(&scope.token).await? else {
            return Ok(Read {
                bytes: None,
                shared: None,
            });
        };
        let shared = match open_with_lifetime(&self.keyring, &scope.token, &value) {
            Ok((token, _)) if token.lineage() < self.marks.seen(&scope.token) => {
                self.counters.count(Event::Discarded);
                tracing::warn!(
                    set = %scope.hash,
                    "ignoring a shared token set older than one this replica has seen \
                     (rolled back, or left by a write that failed)"
                );
                None
            }
            Ok((token, lifetime)) => Some(SharedSet { token, lifetime }),
            Err(Refused::Seal(refused)) => {
                self.counters.count(Event::Discarded);
                tracing::warn!(reason = %refused, "ignoring a shared token set");
                None
            }
            Err(Refused::Unreadable(unreadable)) => {
                self.counters.count(Event::Discarded);
                tracing::warn!(reason = ?unreadable, "ignoring a shared token set that is not one");
                None
            }
        };
        Ok(Read {
            bytes: Some(value),
            shared,
        })
    }
}

/// The token of `shared`, if a replica replacing `local` should take it: not the token being
/// replaced, nor older than it, and outside the refresh margin, capped at half its lifetime as the cache caps it
/// (else tokens that live less than two margins would never be taken, and every waiter would
/// run a grant in turn).
pub(super) fn usable(
    scope: &FleetScope,
    shared: Option<SharedSet>,
    local: Option<&Token>,
) -> Option<Token> {
    let SharedSet { token, lifetime } = shared?;
    let replacing = local.is_some_and(|local| {
        local.access_token() == token.access_token() || local.lineage() > token.lineage()
    });
    let margin = lifetime.map_or(scope.refresh_margin, |lifetime| {
        scope.refresh_margin.min(lifetime / 2)
    });
    let fresh = token
        .expires_in()
        .is_none_or(|left| !left.is_zero() && left > margin);
    (fresh && !replacing).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenSetId;

    fn scope(margin: u64) -> FleetScope {
        FleetScope::derive(
            "",
            &TokenSetId::new("https://a/token", "c", "client_credentials"),
        )
        .refresh_margin(Duration::from_secs(margin))
    }

    fn shared(access: &str, left: Option<u64>, lifetime: Option<u64>) -> Option<SharedSet> {
        let mut token = Token::bearer(access);
        if let Some(left) = left {
            token = token.with_expires_in(Duration::from_secs(left));
        }
        Some(SharedSet {
            token,
            lifetime: lifetime.map(Duration::from_secs),
        })
    }

    #[test]
    fn a_shared_token_is_taken_outside_the_refresh_margin() {
        assert!(usable(&scope(60), shared("a", Some(3000), Some(3600)), None).is_some());
        assert!(usable(&scope(60), shared("a", Some(59), Some(3600)), None).is_none());
        assert!(usable(&scope(60), shared("a", Some(0), Some(3600)), None).is_none());
        assert!(usable(&scope(60), shared("a", None, None), None).is_some());
        assert!(usable(&scope(60), None, None).is_none());
    }

    #[test]
    fn the_margin_is_capped_at_half_the_lifetime_as_in_the_cache() {
        // A 60-second token with a 60-second margin: fresh for its first half.
        assert!(usable(&scope(60), shared("a", Some(59), Some(60)), None).is_some());
        assert!(usable(&scope(60), shared("a", Some(29), Some(60)), None).is_none());
        // Without a known lifetime the whole margin applies.
        assert!(usable(&scope(60), shared("a", Some(59), None), None).is_none());
    }

    #[test]
    fn the_token_being_replaced_is_never_taken() {
        let local = Token::bearer("a");
        assert!(usable(&scope(0), shared("a", Some(3000), Some(3600)), Some(&local)).is_none());
        assert!(usable(&scope(0), shared("b", Some(3000), Some(3600)), Some(&local)).is_some());
    }

    #[test]
    fn a_refresh_token_keeps_the_token_set_for_the_retention() {
        let fleet = RedisFleet::new(
            "redis://127.0.0.1:1",
            crate::fleet::FleetKey::new(1, [0; 32]),
        )
        .unwrap()
        .refresh_token_retention(Duration::from_secs(100));
        let access_only = Token::bearer("a").with_expires_in(Duration::from_secs(60));
        assert_eq!(fleet.ttl(&access_only), Some(Duration::from_secs(60)));
        let with_refresh = access_only.clone().with_refresh_token("r");
        assert_eq!(fleet.ttl(&with_refresh), Some(Duration::from_secs(160)));
        assert_eq!(fleet.ttl(&Token::bearer("a")), Some(UNKNOWN_LIFETIME));
        let brief = Token::bearer("a").with_expires_in(Duration::from_millis(500));
        assert_eq!(fleet.ttl(&brief), None);
        let spent = brief.with_refresh_token("r");
        assert_eq!(fleet.ttl(&spent), Some(Duration::from_secs(100)));
    }
}
