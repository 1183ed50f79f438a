//! What a fleet counts, and whether its Redis is answering.

use std::{
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use super::redis::Failure;

/// What a [`RedisFleet`](super::RedisFleet) has done since it was built. Made by
/// [`RedisFleet::stats`](super::RedisFleet::stats).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FleetStats {
    /// Tokens taken from Redis, written there by another replica or by an earlier grant.
    pub reads: u64,
    /// Leases this replica won and ran a grant under, for the fleet. (A lease won just after
    /// another replica shared a token set is released at once, and not counted.)
    pub leases_won: u64,
    /// Times this replica found the lease held by another and waited for it.
    pub leases_lost: u64,
    /// Grants run under a lease won after waiting for another holder, which died, was
    /// cancelled, or failed its grant.
    pub takeovers: u64,
    /// Grants run locally because Redis failed or did not answer in time.
    pub fallbacks: u64,
    /// Values refused: not sealed with a known key, tampered with, moved from another key,
    /// or not a token set.
    pub discarded: u64,
    /// Token sets removed after a 401 answer, because they still held the refused token.
    pub retired: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    reads: AtomicU64,
    leases_won: AtomicU64,
    leases_lost: AtomicU64,
    takeovers: AtomicU64,
    fallbacks: AtomicU64,
    discarded: AtomicU64,
    retired: AtomicU64,
}

/// One event to count.
#[derive(Debug, Clone, Copy)]
pub(super) enum Event {
    Read,
    LeaseWon,
    LeaseLost,
    Takeover,
    Fallback,
    Discarded,
    Retired,
}

impl Counters {
    pub(super) fn count(&self, event: Event) {
        let counter = match event {
            Event::Read => &self.reads,
            Event::LeaseWon => &self.leases_won,
            Event::LeaseLost => &self.leases_lost,
            Event::Takeover => &self.takeovers,
            Event::Fallback => &self.fallbacks,
            Event::Discarded => &self.discarded,
            Event::Retired => &self.retired,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn snapshot(&self) -> FleetStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        FleetStats {
            reads: get(&self.reads),
            leases_won: get(&self.leases_won),
            leases_lost: get(&self.leases_lost),
            takeovers: get(&self.takeovers),
            fallbacks: get(&self.fallbacks),
            discarded: get(&self.discarded),
            retired: get(&self.retired),
        }
    }
}

/// Whether Redis is answering. After a failure the fleet leaves Redis alone for a while (one
/// timeout, at least a second), so a dead Redis costs one timeout per while, not one per
/// token fetch; the first operation after that tries again.
#[derive(Default)]
pub(super) struct Health {
    /// When Redis last failed, while it is taken for down.
    failed_at: Mutex<Option<Instant>>,
}

impl Health {
    /// `false` while Redis is taken for down and not yet worth trying again.
    pub(super) fn worth_trying(&self, timeout: Duration) -> bool {
        let failed_at = *self
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failed_at.is_none_or(|at| at.elapsed() >= timeout.max(Duration::from_secs(1)))
    }

    /// Records a failed operation: `WARN` when Redis was taken for up, `DEBUG` after that.
    pub(super) fn failed(&self, operation: &'static str, failure: &Failure) {
        let was_up = self
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(Instant::now())
            .is_none();
        if was_up {
            tracing::warn!(
                operation,
                error = %failure,
                "Redis fleet unavailable; grants run locally until it answers"
            );
        } else {
            tracing::debug!(operation, error = %failure, "Redis fleet still unavailable");
        }
    }

    /// Records an operation that succeeded: `INFO` when Redis had been taken for down.
    pub(super) fn succeeded(&self) {
        let mut failed_at = self
            .failed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if failed_at.take().is_some() {
            tracing::info!("Redis fleet answers again; tokens are shared");
        }
    }
}
