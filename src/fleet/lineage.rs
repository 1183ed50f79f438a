//! The fleet's side of the newest-wins rule ([`Lineage`]): what this replica has seen of each
//! token set, so that a value rolled back in Redis is refused, and the task that writes a token
//! set back when its commit failed or Redis was out of reach, so that Redis ends up holding the
//! newest set a replica has, not an older one whose refresh token the server has replaced.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use tokio::time::Instant;

use super::{FleetScope, RedisFleet, lead::Lease, redis::Redis, seal::Keyring};
use crate::{Lineage, Token, saved};

/// The first pause between two write-back attempts; it doubles up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// What this replica knows of each token set's lineage, by token key.
#[derive(Default)]
pub(super) struct Marks {
    marks: Mutex<HashMap<String, Mark>>,
}

#[derive(Default, Clone, Copy)]
struct Mark {
    /// The newest lineage this replica has held or read: anything older in Redis was rolled
    /// back, or left there by a write that failed.
    seen: Lineage,
    /// The lineage a write-back task is writing, if one runs.
    writing: Option<Lineage>,
}

impl Marks {
    fn with<T>(&self, key: &str, change: impl FnOnce(&mut Mark) -> T) -> T {
        let mut marks = self.marks.lock().unwrap_or_else(PoisonError::into_inner);
        change(marks.entry(key.to_owned()).or_default())
    }

    /// Records that this replica holds, or has read, a set of `lineage` for `key`.
    pub(super) fn saw(&self, key: &str, lineage: Lineage) {
        self.with(key, |mark| mark.seen = mark.seen.max(lineage));
    }

    /// The newest lineage this replica has seen for `key`.
    pub(super) fn seen(&self, key: &str) -> Lineage {
        self.with(key, |mark| mark.seen)
    }

    /// Makes `lineage` the one to write back for `key`, unless a newer one is being written.
    fn claim(&self, key: &str, lineage: Lineage) -> bool {
        self.with(key, |mark| {
            let newer_running = mark.writing.is_some_and(|writing| writing > lineage);
            if !newer_running {
                mark.writing = Some(lineage);
            }
            !newer_running
        })
    }

    /// Whether the write-back of `lineage` for `key` is still the one wanted.
    fn wanted(&self, key: &str, lineage: Lineage) -> bool {
        self.with(key, |mark| {
            mark.writing == Some(lineage) && mark.seen <= lineage
        })
    }

    fn done(&self, key: &str, lineage: Lineage) {
        self.with(key, |mark| {
            if mark.writing == Some(lineage) {
                mark.writing = None;
            }
        });
    }
}

/// How one write-back attempt ended.
enum Attempt {
    /// The set is in Redis now.
    Landed,
    /// Redis holds a set at least as new.
    Superseded,
    /// The value changed between the read and the write, or Redis failed: try again.
    Again,
}

impl RedisFleet {
    /// Writes `token`'s set to Redis in a task of its own, retrying with a growing pause until
    /// it lands, Redis holds a set at least as new, this replica sees a newer one, or the set
    /// would have left Redis by its time to live anyway. Does nothing outside a runtime.
    pub(super) fn write_back(&self, scope: &FleetScope, token: &Token) {
        self.write_back_under(scope, token, None);
    }

    /// As [`write_back`](Self::write_back), for the holder of `lease`, whose commit did not
    /// land: the task takes the lease over and keeps it, renewing it, until the set is in, so
    /// no replica leads a grant with the older set's refresh token meanwhile; the commit that
    /// lands releases it. When no task starts, the lease is left to `Lease`'s drop.
    pub(super) fn write_back_holding(
        &self,
        scope: &FleetScope,
        token: &Token,
        lease: &mut Lease<'_>,
    ) {
        if self.write_back_under(scope, token, Some(lease.holder().to_owned())) {
            lease.hand_over();
        }
    }

    /// Starts the write-back task; `false` when none starts.
    fn write_back_under(&self, scope: &FleetScope, token: &Token, holder: Option<String>) -> bool {
        let (Some(ttl), Some(value)) = (self.ttl(token), self.seal(scope, token)) else {
            return false;
        };
        let lineage = token.lineage();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if !self.marks.claim(&scope.token, lineage) {
            return false;
        }
        let task = WriteBack {
            redis: self.redis.clone(),
            keyring: self.keyring.clone(),
            marks: Arc::clone(&self.marks),
            key: scope.token.clone(),
            wake: scope.wake.clone(),
            lease: holder.map(|holder| (scope.lease.clone(), holder, self.lease)),
            value,
            lineage,
            until: Instant::now() + ttl,
        };
        tracing::debug!(set = %scope.hash, "writing the token set back to the fleet");
        runtime.spawn(task.run());
        true
    }
}

struct WriteBack {
    redis: Redis,
    keyring: Keyring,
    marks: Arc<Marks>,
    key: String,
    wake: String,
    /// The lease key, this replica's holder id in it, and the lease length, while it holds it.
    lease: Option<(String, String, Duration)>,
    value: Vec<u8>,
    lineage: Lineage,
    until: Instant,
}

impl WriteBack {
    async fn run(self) {
        // Holding the lease, others wait: try again soon.
        let mut pause = if self.lease.is_some() {
            Duration::from_millis(20)
        } else {
            FIRST_PAUSE
        };
        loop {
            let left = self.until.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.marks.wanted(&self.key, self.lineage) {
                break;
            }
            match self.attempt(left).await {
                Attempt::Landed => {
                    tracing::info!("a token set whose commit had failed is now in the fleet");
                    // Waiters poll as well; a lost wake-up costs them one poll interval.
                    let _ = self.redis.publish(&self.wake).await;
                    break;
                }
                Attempt::Superseded => break,
                Attempt::Again => {}
            }
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(self.longest_pause());
        }
        self.marks.done(&self.key, self.lineage);
        if let Some((lease, holder, _)) = &self.lease {
            // Landed, the commit released it already; otherwise the others may go on.
            let _ = self
                .redis
                .compare_and_delete(lease, holder.as_bytes())
                .await;
        }
    }

    /// The holder renews its lease on every attempt: it never pauses past a third of it.
    fn longest_pause(&self) -> Duration {
        match &self.lease {
            Some((_, _, length)) => LONGEST_PAUSE.min(*length / 3),
            None => LONGEST_PAUSE,
        }
    }

    async fn attempt(&self, ttl: Duration) -> Attempt {
        let current = match self.redis.get(&self.key).await {
            Ok(current) => current,
            Err(failure) => {
                tracing::debug!(error = %failure, "could not read the fleet to write back");
                return Attempt::Again;
            }
        };
        // A value this fleet cannot open, or an older set, is replaced; a newer one stays.
        let held = current
            .as_deref()
            .and_then(|value| open(&self.keyring, &self.key, value).ok());
        if let Some(held) = held
            && held.lineage() >= self.lineage
        {
            self.marks.saw(&self.key, held.lineage());
            return Attempt::Superseded;
        }
        let written = match &self.lease {
            Some((lease, holder, length)) => {
                let _ = self.redis.renew(lease, holder, *length).await;
                self.redis
                    .commit(
                        &self.key,
                        lease,
                        current.as_deref(),
                        &self.value,
                        ttl,
                        holder,
                    )
                    .await
                    .map(|committed| committed.written)
            }
            None => {
                self.redis
                    .write_if(&self.key, current.as_deref(), &self.value, ttl)
                    .await
            }
        };
        match written {
            Ok(true) => Attempt::Landed,
            Ok(false) => Attempt::Again,
            Err(failure) => {
                tracing::debug!(error = %failure, "could not write the token set back");
                Attempt::Again
            }
        }
    }
}

/// Why a value at a token key is not a token set this fleet takes. Never quotes the value.
pub(super) enum Refused {
    Seal(super::seal::Refused),
    Unreadable(saved::Unreadable),
}

/// The token set sealed in `value` at `key`, with its whole lifetime if known.
pub(super) fn open_with_lifetime(
    keyring: &Keyring,
    key: &str,
    value: &[u8],
) -> Result<(Token, Option<Duration>), Refused> {
    let json = keyring.open(key, value).map_err(Refused::Seal)?;
    saved::decode_with_lifetime(&json, SystemTime::now()).map_err(Refused::Unreadable)
}

fn open(keyring: &Keyring, key: &str, value: &[u8]) -> Result<Token, Refused> {
    open_with_lifetime(keyring, key, value).map(|(token, _)| token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_back_gives_way_to_a_newer_one_and_to_a_newer_set_seen() {
        let marks = Marks::default();
        let (older, newer) = (Lineage::from_u64(1), Lineage::from_u64(2));
        assert!(marks.claim("k", older));
        assert!(marks.wanted("k", older));
        assert!(marks.claim("k", newer));
        assert!(!marks.wanted("k", older));
        assert!(!marks.claim("k", older));
        marks.saw("k", Lineage::from_u64(3));
        assert!(!marks.wanted("k", newer));
        marks.done("k", newer);
        assert!(marks.claim("k", older));
        assert_eq!(marks.seen("k"), Lineage::from_u64(3));
        assert_eq!(marks.seen("other"), Lineage::UNKNOWN);
    }
}
