//! The cache's side of a [`RedisFleet`]: the token set this cache shares, and the two calls a
//! fetch makes (take or run the fleet's grant; after a 401, retire the refused token).

use std::{future::Future, sync::Arc};

use crate::{
    Error, Token, TokenSetId,
    fleet::{FleetScope, Obtained, RedisFleet},
};

pub(super) struct Fleet {
    fleet: Arc<RedisFleet>,
    scope: FleetScope,
}

impl Fleet {
    pub(super) fn new(
        fleet: Arc<RedisFleet>,
        id: &TokenSetId,
        refresh_margin: std::time::Duration,
    ) -> Self {
        let scope = fleet.scope(id).refresh_margin(refresh_margin);
        Self { fleet, scope }
    }

    /// A token to replace `previous`: the fleet's, or one from `grant` run for the fleet (or
    /// alone, when Redis fails), waiting for other replicas no later than `deadline`.
    pub(super) async fn obtain<G, F>(
        &self,
        previous: Option<&Token>,
        deadline: tokio::time::Instant,
        grant: G,
    ) -> Result<Obtained, Error>
    where
        G: FnOnce(Option<Token>) -> F,
        F: Future<Output = Result<Token, Error>>,
    {
        self.fleet
            .obtain(&self.scope, previous, deadline, grant)
            .await
    }

    /// Removes the shared token set if it still holds `refused`, so that one grant replaces it
    /// for the whole fleet.
    pub(super) async fn retire(&self, refused: &Token) {
        self.fleet.retire(&self.scope, refused).await;
    }
}
