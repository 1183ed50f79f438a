//! The fleet's single flight: read the shared token set; if it is not usable, take the lease,
//! read again, run the grant while renewing the lease, write the sealed token set and release
//! the lease in one script, and wake the waiters. A replica that finds the lease taken waits
//! for the token set and takes the lease over when its holder is gone. Any Redis failure on
//! the way makes the replica run the grant locally. The [module docs](super) draw it.
//!
//! This file decides (take the shared token, or lead); what a leader does, and the local
//! fallback, are in `lead.rs`.

use std::{future::Future, time::Duration};

use tokio::time::Instant;
use tracing::Instrument;

pub use super::shared::Retired;
use super::{
    FleetScope, RedisFleet,
    lead::Lease,
    redis::{Acquired, Failure},
    shared::{Read, usable},
    stats::Event,
};
use crate::{Error, ErrorKind, Lineage, Token};

/// Where the token `RedisFleet::obtain` returns came from.
#[derive(Debug)]
pub enum Obtained {
    /// Read from Redis: another replica's grant, or an earlier one of this replica's.
    Fleet(Token),
    /// This replica held the lease and ran the grant; the token set is now shared.
    Granted(Token),
    /// Redis failed or did not answer in time, so this replica ran the grant on its own.
    Fallback(Token),
}

impl Obtained {
    /// Returns the token.
    pub fn token(&self) -> &Token {
        match self {
            Self::Fleet(token) | Self::Granted(token) | Self::Fallback(token) => token,
        }
    }

    /// Returns the token, dropping where it came from.
    pub fn into_token(self) -> Token {
        match self {
            Self::Fleet(token) | Self::Granted(token) | Self::Fallback(token) => token,
        }
    }

    /// Where the token came from, in one word, as logs say it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Fleet(_) => "fleet",
            Self::Granted(_) => "granted",
            Self::Fallback(_) => "fallback",
        }
    }
}

/// What to do after looking at Redis.
enum Plan<'a> {
    /// Take this shared token.
    Take(Token),
    /// Run the grant under `lease`, with the newest token set known as the previous one, and
    /// write its set where the token key holds `expected` still.
    Lead {
        lease: Lease<'a>,
        previous: Option<Token>,
        expected: Option<Vec<u8>>,
    },
}

impl RedisFleet {
    /// Returns a token for `scope`: the fleet's shared one if it is usable, else one from a
    /// grant that this replica runs for the whole fleet, or on its own when Redis fails.
    ///
    /// `local` is the token this replica holds and wants replaced (stale, expired or refused),
    /// if any: a shared token equal to it is not usable. `grant` runs at most once, with the
    /// newest token set known (of the shared one, even expired, and `local`, the one of higher
    /// [`Lineage`]): its refresh token is the one to use. A token it returns without a refresh
    /// token keeps that one.
    ///
    /// Everything but the grant (which the caller bounds) ends by `deadline`: waiting for
    /// another replica's grant past it fails with [`ErrorKind::Timeout`]. Otherwise fails only
    /// with the grant's error; Redis failures are logged and fall back.
    pub(crate) async fn obtain<G, F>(
        &self,
        scope: &FleetScope,
        local: Option<&Token>,
        deadline: Instant,
        grant: G,
    ) -> Result<Obtained, Error>
    where
        G: FnOnce(Option<Token>) -> F,
        F: Future<Output = Result<Token, Error>>,
    {
        let span = tracing::info_span!(
            "fleet_obtain",
            set = %scope.hash,
            outcome = tracing::field::Empty,
        );
        let obtained = async {
            loop {
                // A set that moves on by rotating refresh tokens is never granted alone: a
                // replica that did would present a refresh token another may have replaced,
                // and a server with reuse detection revokes the whole grant. It waits for
                // Redis instead, until the deadline.
                if !self.health.worth_trying(self.redis.timeout) && !scope.refreshes {
                    return self.fallback(scope, local, grant).await;
                }
                let Ok(planned) =
                    tokio::time::timeout_at(deadline, self.coordinate(scope, local)).await
                else {
                    tracing::warn!(
                        "another replica's grant did not end within the fetch timeout; \
                         giving up on this fetch"
                    );
                    return Err(Error::new(ErrorKind::Timeout).with_detail(
                        "waited for another replica's grant until the fetch timeout \
                         (TokenCacheBuilder::fetch_timeout)",
                    ));
                };
                return match planned {
                    Ok(Plan::Take(token)) => {
                        self.health.succeeded();
                        self.counters.count(Event::Read);
                        self.marks.saw(&scope.token, token.lineage());
                        tracing::debug!("token taken from the fleet");
                        Ok(Obtained::Fleet(token))
                    }
                    Ok(Plan::Lead {
                        lease,
                        previous,
                        expected,
                    }) => {
                        self.health.succeeded();
                        self.lead(scope, lease, previous, expected, grant).await
                    }
                    Err((operation, failure)) => {
                        self.health.failed(operation, &failure);
                        if !scope.refreshes {
                            return self.fallback(scope, local, grant).await;
                        }
                        let pause = self.poll_interval();
                        if Instant::now() + pause >= deadline {
                            return Err(Error::new(ErrorKind::Timeout).with_detail(
                                "the fleet's Redis did not answer before the fetch timeout \
                                 (TokenCacheBuilder::fetch_timeout); a set with a rotating \
                                 refresh token is never refreshed without it",
                            ));
                        }
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                };
            }
        }
        .instrument(span.clone())
        .await;
        let outcome = obtained.as_ref().map_or("error", Obtained::as_str);
        span.record("outcome", outcome);
        obtained
    }

    /// Reads, leases, waits, until there is a usable token or this replica holds the lease.
    async fn coordinate<'a>(
        &'a self,
        scope: &'a FleetScope,
        local: Option<&Token>,
    ) -> Result<Plan<'a>, (&'static str, Failure)> {
        // Subscribed before the first read, so a wake-up sent after it is not missed.
        let mut wake = self
            .redis
            .wake_on(&scope.wake)
            .await
            .map_err(|failure| ("subscribe", failure))?;
        let holder = holder_id();
        let mut waited = false;
        loop {
            wake.borrow_and_update();
            let read = self
                .read(scope)
                .await
                .map_err(|failure| ("read", failure))?;
            if let Some(token) = usable(scope, read.shared, local) {
                return Ok(Plan::Take(token));
            }
            let acquired = self
                .redis
                .acquire(&scope.lease, &holder, self.lease)
                .await
                .map_err(|failure| ("lease", failure))?;
            let left = match acquired {
                Acquired::Won => break,
                // Replicas of one fleet renew leases to their length and no further: a longer
                // one was not set by them, and waiting it out would wedge the fleet.
                Acquired::Held(left) if left > self.lease => {
                    self.take_over_foreign(scope, left).await?;
                    continue;
                }
                Acquired::HeldWithoutExpiry => {
                    self.take_over_foreign(scope, Duration::MAX).await?;
                    continue;
                }
                Acquired::Held(left) => left,
            };
            if !waited {
                waited = true;
                self.counters.count(Event::LeaseLost);
                tracing::debug!(
                    lease_left_ms = millis(left),
                    "another replica holds the lease"
                );
            }
            // Never past the lease's end: a holder that died is replaced as soon as it can be.
            let pause = self.poll_interval().min(left).max(Duration::from_millis(5));
            tokio::select! {
                changed = wake.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(pause).await;
                    }
                }
                () = tokio::time::sleep(pause) => {}
            }
        }

        let mut lease = Lease::new(&self.redis, &scope.lease, holder);
        // Someone may have written between the first read and the lease: a holder that
        // commits deletes its lease in the same step as it writes.
        let Read { bytes, shared } = self
            .read(scope)
            .await
            .map_err(|failure| ("read", failure))?;
        let previous = shared.as_ref().map(|shared| shared.token.clone());
        if let Some(token) = usable(scope, shared, local) {
            if let Err(failure) = lease.release().await {
                tracing::debug!(error = %failure, "could not release the lease; it will expire");
            }
            return Ok(Plan::Take(token));
        }
        self.counters.count(Event::LeaseWon);
        if waited {
            self.counters.count(Event::Takeover);
            tracing::info!("took the lease over from a replica that stopped or failed");
        }
        // The newer of the shared and the local set has the refresh token the server honours.
        let previous = Lineage::newest(previous.as_ref(), local).cloned();
        Ok(Plan::Lead {
            lease,
            previous,
            expected: bytes,
        })
    }

    /// Deletes a lease that no replica of this fleet can have set (without expiry, or longer
    /// than the lease length), so that the next attempt can take it. The check and the delete
    /// are one script: a replica's lease taken meanwhile is never deleted.
    async fn take_over_foreign(
        &self,
        scope: &FleetScope,
        left: Duration,
    ) -> Result<(), (&'static str, Failure)> {
        let taken = self
            .redis
            .delete_foreign_lease(&scope.lease, self.lease)
            .await
            .map_err(|failure| ("lease", failure))?;
        if taken {
            tracing::warn!(
                set = %scope.hash,
                lease_left_ms = millis(left),
                "a lease longer than this fleet's lease length, or without expiry, is not a \
                 replica's; took it over"
            );
        }
        Ok(())
    }

    /// How often a waiter looks again when no wake-up comes: a twentieth of the lease, between
    /// 50 and 500 ms, less up to a quarter at random so waiters do not ask in step.
    fn poll_interval(&self) -> Duration {
        let base = (self.lease / 20).clamp(Duration::from_millis(50), Duration::from_millis(500));
        base.mul_f64(rand::random_range(0.75..=1.0))
    }
}

/// A random value that names this lease holder and no other.
/// From the operating system: a replica forked from another must not draw its holder id.
fn holder_id() -> String {
    use rand::TryRng;
    let mut bytes = [0_u8; 16];
    if rand::rngs::SysRng.try_fill_bytes(&mut bytes).is_err() {
        rand::fill(&mut bytes[..]);
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
