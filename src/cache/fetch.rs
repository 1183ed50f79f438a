//! One fetch, as the flight's task runs it: read the store when the cache is cold, else ask the
//! source (through the fleet, when there is one), retrying transient errors with a jittered,
//! growing backoff, all within the cache's fetch timeout, and save the new token.

use std::{
    sync::{Arc, PoisonError},
    time::Duration,
};

use tokio::time::Instant;

use super::{
    Core,
    entry::{Entry, check_header},
};
use crate::{Error, ErrorKind, FetchContext, FetchReason, Lineage, Token};

/// A `Retry-After` longer than this is taken as this: a server cannot switch clients off.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Exponential backoff with jitter.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) attempts: u32,
}

impl Backoff {
    /// The delay after the `failures`-th failure in a row: doubling from `initial`, capped at
    /// `max`, then a random point in its upper half so that clients spread out. A longer
    /// `retry_after` wins, up to ten minutes.
    pub(crate) fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let step = self.initial.saturating_mul(1 << doublings).min(self.max);
        let step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
        let jittered = Duration::from_millis(rand::random_range(step_ms / 2..=step_ms));
        jittered.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
    }
}

/// Where a token came from: a cold cache reads its store before it asks the source, and a
/// cache in a fleet may take the token another replica fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provenance {
    Loaded,
    Fetched,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Shared,
}

/// What a fetch ends with.
pub(crate) type Outcome = Result<Arc<Entry>, Error>;

/// Attempts the fetch until it succeeds, fails for good, or runs out of attempts or time.
/// On failure, also returns when the next fetch may start.
pub(super) async fn attempts(core: &Core, reason: FetchReason) -> (Outcome, Option<Instant>) {
    let started = Instant::now();
    let deadline = later(started, core.rules.fetch_timeout);
    let mut attempt = 1;
    loop {
        let error = match once(core, reason, deadline).await {
            Ok((entry, provenance)) => {
                log_success(core, reason, attempt, started, &entry, provenance);
                return (Ok(entry), None);
            }
            Err(error) => error,
        };
        core.stats.fetched(false);
        tracing::warn!(
            grant_type = core.source.grant_type(),
            reason = reason.as_str(),
            attempt,
            elapsed_ms = millis(started),
            error = %error,
            transient = error.is_transient(),
            "token fetch failed"
        );
        let retry_at = core.record_failure(&error);
        let retry =
            error.is_transient() && attempt < core.rules.backoff.attempts && retry_at < deadline;
        if !retry {
            record_on_span("error", attempt, started);
            return (Err(error), Some(retry_at));
        }
        tracing::debug!(attempt, "retrying the token fetch after a transient error");
        tokio::time::sleep_until(retry_at).await;
        attempt += 1;
    }
}

/// One attempt. The deadline bounds getting a token, not saving it: once the source has
/// answered, the server may have retired the refresh token before this one.
async fn once(
    core: &Core,
    reason: FetchReason,
    deadline: Instant,
) -> Result<(Arc<Entry>, Provenance), Error> {
    let issued = Instant::now();
    let current = core.state.current();
    let loaded = match current {
        Some(_) => None,
        None => tokio::time::timeout_at(deadline, core.persistence.load())
            .await
            .map_err(timed_out(core))?,
    };
    if let Some(token) = &loaded
        && token.expires_in() != Some(Duration::ZERO)
        // A saved token that cannot be used (say, a hand-edited file) falls through to the
        // source rather than failing every fetch.
        && let Ok(entry) = Entry::new(token.clone(), issued, core.rules.refresh_margin)
    {
        core.stats.loaded();
        return Ok((Arc::new(entry), Provenance::Loaded));
    }
    // An expired saved token still lends its refresh token, and so does one salvaged from an
    // unusable answer, when it is the newer.
    let salvaged = core.salvaged().clone();
    let held = current
        .as_deref()
        .map(|entry| &entry.token)
        .or(loaded.as_ref());
    let previous = Lineage::newest(held, salvaged.as_ref());
    let (token, provenance) = ask(core, reason, previous, deadline).await?;
    let entry = Entry::new(token, issued, core.rules.refresh_margin)?;
    *core.salvaged() = None;
    Ok((Arc::new(entry), provenance))
}

/// Gets a new token to replace `previous`: from the source, or through the fleet when the cache
/// has one, which may hand over another replica's token instead of asking the source.
async fn ask(
    core: &Core,
    reason: FetchReason,
    previous: Option<&Token>,
    deadline: Instant,
) -> Result<(Token, Provenance), Error> {
    // What the source is asked, with the newest token known (the fleet may know a newer one
    // than `previous`): the new token is saved before anyone can use it, since a server that
    // rotates refresh tokens has already retired the one before.
    let grant = |previous: Option<Token>| async move {
        let cx = FetchContext::new(previous.as_ref(), reason);
        let fetched = tokio::time::timeout_at(deadline, core.source.fetch_boxed(cx))
            .await
            .map_err(timed_out(core))?;
        let mut token = match fetched {
            Ok(token) => token,
            Err(error) => return Err(keep_salvaged(core, error, previous.as_ref()).await),
        };
        token.inherit_refresh_token(previous.as_ref());
        token.descend_from(previous.as_ref());
        check_header(&token)?;
        // A bound token is good only with its key, which other replicas do not hold. The
        // crate's grants are refused up front (`TokenCacheBuilder::fleet`); a source of one's
        // own may bind tokens without saying so.
        #[cfg(feature = "redis")]
        if core.fleet.is_some() && token.binding().is_some() {
            return Err(Error::config(
                "a DPoP-bound token cannot be shared through a fleet: build this cache without \
                 TokenCacheBuilder::fleet, or its token client without a DPoP key",
            ));
        }
        core.stats.fetched(true);
        core.persistence.save(&token, &core.stats).await;
        Ok(token)
    };
    #[cfg(feature = "redis")]
    if let Some(fleet) = &core.fleet {
        if reason == FetchReason::Unauthorized
            && let Some(refused) = previous
        {
            fleet.retire(refused).await;
        }
        return match fleet.obtain(previous, deadline, grant).await? {
            crate::fleet::Obtained::Fleet(token) => {
                core.stats.shared();
                Ok((token, Provenance::Shared))
            }
            other => Ok((other.into_token(), Provenance::Fetched)),
        };
    }
    Ok((grant(previous.cloned()).await?, Provenance::Fetched))
}

impl Core {
    fn salvaged(&self) -> std::sync::MutexGuard<'_, Option<Token>> {
        self.salvaged.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps what an unusable answer carried, if anything: its set descends from `previous`, is
/// saved, and lends its refresh token to the next fetch. Returns `error` with that set, so a
/// fleet shares it too.
async fn keep_salvaged(core: &Core, error: Error, previous: Option<&Token>) -> Error {
    let Some(salvaged) = error.salvaged() else {
        return error;
    };
    let mut salvaged = salvaged.clone();
    salvaged.descend_from(previous);
    tracing::warn!(
        grant_type = core.source.grant_type(),
        "the token answer could not be used; its refresh token is kept for the next fetch"
    );
    core.persistence.save(&salvaged, &core.stats).await;
    *core.salvaged() = Some(salvaged.clone());
    error.with_salvaged(salvaged)
}

fn log_success(
    core: &Core,
    reason: FetchReason,
    attempts: u32,
    started: Instant,
    entry: &Entry,
    provenance: Provenance,
) {
    let described = match provenance {
        Provenance::Loaded => "loaded",
        Provenance::Fetched => "ok",
        Provenance::Shared => "shared",
    };
    record_on_span(described, attempts, started);
    let grant_type = core.source.grant_type();
    let reason = reason.as_str();
    let elapsed_ms = millis(started);
    let expires_in_s = entry.token.expires_in().map(|lifetime| lifetime.as_secs());
    match provenance {
        Provenance::Loaded => tracing::info!(
            grant_type,
            reason,
            elapsed_ms,
            expires_in_s,
            "token loaded from the store"
        ),
        Provenance::Fetched => tracing::info!(
            grant_type,
            reason,
            attempts,
            elapsed_ms,
            expires_in_s,
            "token fetched"
        ),
        Provenance::Shared => tracing::info!(
            grant_type,
            reason,
            elapsed_ms,
            expires_in_s,
            "token taken from the fleet"
        ),
    }
}

/// Fills in the fields of the `token_fetch` span the caller runs in.
fn record_on_span(outcome: &str, attempts: u32, started: Instant) {
    let span = tracing::Span::current();
    span.record("outcome", outcome);
    span.record("attempts", attempts);
    span.record("elapsed_ms", millis(started));
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// `at + duration`, or thirty years on when that does not fit in an `Instant`: a setting of
/// `Duration::MAX` means "never", not a panic.
pub(super) fn later(at: Instant, duration: Duration) -> Instant {
    at.checked_add(duration)
        .unwrap_or_else(|| at + Duration::from_secs(30 * 365 * 86_400))
}

fn timed_out(core: &Core) -> impl Fn(tokio::time::error::Elapsed) -> Error + '_ {
    move |_| {
        Error::new(ErrorKind::Timeout).with_detail(format!(
            "the token source did not finish within {} (TokenCacheBuilder::fetch_timeout)",
            crate::error::seconds(core.rules.fetch_timeout)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff() -> Backoff {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
            attempts: 3,
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() {
        for (failures, step_ms) in [(1, 200), (2, 400), (3, 800), (6, 5000), (40, 5000)] {
            for _ in 0..100 {
                let delay = backoff().delay(failures, None).as_millis();
                assert!(
                    (step_ms / 2..=step_ms).contains(&delay),
                    "{failures}: {delay}"
                );
            }
        }
    }

    #[test]
    fn retry_after_wins_when_longer_and_is_bounded() {
        let hour = Duration::from_secs(3600);
        assert_eq!(
            backoff().delay(1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(backoff().delay(1, Some(hour)), MAX_RETRY_AFTER);
        assert!(backoff().delay(1, Some(Duration::ZERO)) <= Duration::from_millis(200));
    }
}
