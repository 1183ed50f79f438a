//! Running the grant for the fleet: as the lease holder, renewing the lease while the grant
//! runs, then sharing the token set and waking the waiters; or alone, when Redis failed, then
//! writing the set back once Redis answers. Either way a token the server issued is kept.

use std::{future::Future, pin::pin};

use super::{
    FleetScope, Obtained, RedisFleet,
    redis::{Failure, Redis},
    stats::Event,
};
use crate::{Error, Token};

impl RedisFleet {
    /// Runs the grant for the fleet under `lease`, then shares its token set.
    pub(super) async fn lead<G, F>(
        &self,
        scope: &FleetScope,
        mut lease: Lease<'_>,
        previous: Option<Token>,
        expected: Option<Vec<u8>>,
        grant: G,
    ) -> Result<Obtained, Error>
    where
        G: FnOnce(Option<Token>) -> F,
        F: Future<Output = Result<Token, Error>>,
    {
        tracing::debug!("lease won; running the grant for the fleet");
        let granted = self.renewing(scope, &lease, grant(previous.clone())).await;
        match granted {
            Ok(mut token) => {
                token.inherit_refresh_token(previous.as_ref());
                self.marks.saw(&scope.token, token.lineage());
                self.share(scope, &mut lease, expected.as_deref(), &token)
                    .await;
                Ok(Obtained::Granted(token))
            }
            Err(error) => {
                // An unusable answer's refresh token is the server's newest: share it, with
                // its access token expired, so that no replica presents the one before.
                if let Some(salvaged) = error.salvaged() {
                    self.marks.saw(&scope.token, salvaged.lineage());
                    self.share(scope, &mut lease, expected.as_deref(), salvaged)
                        .await;
                    return Err(error);
                }
                // The waiters take the lease over at once and try for themselves.
                if let Err(failure) = lease.release().await {
                    self.health.failed("release", &failure);
                }
                self.wake(scope).await;
                Err(error)
            }
        }
    }

    /// Runs `grant` while renewing the lease every third of its length, until the grant ends.
    /// A lease that is lost meanwhile is reported, and the grant goes on: a token the server
    /// has issued (a rotated refresh token above all) must not be thrown away.
    async fn renewing<F>(&self, scope: &FleetScope, lease: &Lease<'_>, grant: F) -> F::Output
    where
        F: Future,
    {
        let mut grant = pin!(grant);
        let renewals = async {
            loop {
                tokio::time::sleep(self.lease / 3).await;
                match self.redis.renew(lease.key, &lease.holder, self.lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            set = %scope.hash,
                            "the lease expired while the grant ran; another replica may run one too"
                        );
                        return;
                    }
                    Err(failure) => self.health.failed("renew", &failure),
                }
            }
        };
        tokio::select! {
            output = &mut grant => return output,
            () = renewals => {}
        }
        grant.await
    }

    /// Writes `token`'s set sealed where the token key still holds `expected`, releases the
    /// lease in the same step, and wakes the waiters. A set that could not be written is
    /// written back in the background.
    async fn share(
        &self,
        scope: &FleetScope,
        lease: &mut Lease<'_>,
        expected: Option<&[u8]>,
        token: &Token,
    ) {
        let sealed = self
            .ttl(token)
            .and_then(|ttl| Some((self.seal(scope, token)?, ttl)));
        let Some((value, ttl)) = sealed else {
            tracing::debug!("token set too short-lived to share");
            if let Err(failure) = lease.release().await {
                self.health.failed("release", &failure);
            }
            self.wake(scope).await;
            return;
        };
        let committed = self
            .redis
            .commit(
                &scope.token,
                lease.key,
                expected,
                &value,
                ttl,
                &lease.holder,
            )
            .await;
        match committed {
            Ok(committed) if committed.written => {
                lease.open = false;
                if !committed.lease_held {
                    tracing::warn!(
                        "the lease expired before the token set was written; \
                         another replica may have run a grant too"
                    );
                }
                tracing::debug!(ttl_s = ttl.as_secs(), "token set shared");
            }
            Ok(_) => {
                // Someone wrote meanwhile: their set stays if newer, else this one goes in.
                // The lease stays held till then: released now, a waiter would find the
                // older set there and lead with its spent refresh token.
                self.write_back_holding(scope, token, lease);
                return;
            }
            Err(failure) => {
                self.health.failed("write", &failure);
                self.write_back_holding(scope, token, lease);
                return;
            }
        }
        self.wake(scope).await;
    }

    async fn wake(&self, scope: &FleetScope) {
        if let Err(failure) = self.redis.publish(&scope.wake).await {
            // Waiters poll as well; a lost wake-up costs them one poll interval.
            tracing::debug!(error = %failure, "could not wake the waiting replicas");
        }
    }

    /// Runs the grant without the fleet, then writes its set back once Redis answers: a
    /// refresh token rotated meanwhile must reach the other replicas.
    pub(super) async fn fallback<G, F>(
        &self,
        scope: &FleetScope,
        local: Option<&Token>,
        grant: G,
    ) -> Result<Obtained, Error>
    where
        G: FnOnce(Option<Token>) -> F,
        F: Future<Output = Result<Token, Error>>,
    {
        self.counters.count(Event::Fallback);
        tracing::debug!("running the grant locally");
        let previous = local.cloned();
        let mut token = match grant(previous.clone()).await {
            Ok(token) => token,
            Err(error) => {
                if let Some(salvaged) = error.salvaged() {
                    self.marks.saw(&scope.token, salvaged.lineage());
                    self.write_back(scope, salvaged);
                }
                return Err(error);
            }
        };
        token.inherit_refresh_token(previous.as_ref());
        self.marks.saw(&scope.token, token.lineage());
        self.write_back(scope, &token);
        Ok(Obtained::Fallback(token))
    }
}

/// A lease this replica holds. Dropped while still held (its grant abandoned or cancelled), it
/// is released in the background, so the others need not wait for it to expire.
pub(super) struct Lease<'a> {
    redis: &'a Redis,
    key: &'a str,
    holder: String,
    open: bool,
}

impl<'a> Lease<'a> {
    /// The lease at `key`, just won by `holder`.
    pub(super) fn new(redis: &'a Redis, key: &'a str, holder: String) -> Self {
        Self {
            redis,
            key,
            holder,
            open: true,
        }
    }

    pub(super) fn holder(&self) -> &str {
        &self.holder
    }

    /// Hands the lease to a task that releases it itself: dropping this one leaves it alone.
    pub(super) fn hand_over(&mut self) {
        self.open = false;
    }

    pub(super) async fn release(&mut self) -> Result<(), Failure> {
        self.open = false;
        self.redis
            .compare_and_delete(self.key, self.holder.as_bytes())
            .await
            .map(drop)
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.open {
            self.redis
                .spawn_compare_and_delete(self.key, self.holder.as_bytes());
        }
    }
}
