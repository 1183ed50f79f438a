//! The cache's side of a [`TokenStore`](crate::TokenStore): loading at a cold start, saving
//! every new token, each bounded by a timeout, neither ever failing a fetch.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use super::stats::Stats;
use crate::{Error, ErrorKind, Token, store::DynTokenStore};

pub(crate) struct Persistence {
    store: Option<Box<dyn DynTokenStore>>,
    timeout: Duration,
    /// The last failed save, until a save succeeds.
    last_error: Mutex<Option<Error>>,
}

impl Persistence {
    pub(crate) fn new(store: Option<Box<dyn DynTokenStore>>, timeout: Duration) -> Self {
        Self {
            store,
            timeout,
            last_error: Mutex::new(None),
        }
    }

    /// The saved token, if there is a store and it holds one. A store that fails or hangs is
    /// logged and reads as empty: the source can still be asked.
    pub(crate) async fn load(&self) -> Option<Token> {
        let store = self.store.as_ref()?;
        match tokio::time::timeout(self.timeout, store.load_boxed()).await {
            Ok(Ok(token)) => token,
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "could not load the saved token");
                None
            }
            Err(_) => {
                tracing::warn!("loading the saved token timed out");
                None
            }
        }
    }

    /// Saves `token`. A failure is reported, never returned: the token is good, and the server
    /// may already have retired the one before it.
    pub(crate) async fn save(&self, token: &Token, stats: &Stats) {
        let Some(store) = &self.store else {
            return;
        };
        let saved = tokio::time::timeout(self.timeout, store.save_boxed(token))
            .await
            .unwrap_or_else(|_| {
                Err(Error::new(ErrorKind::Store).with_detail("saving the token timed out"))
            });
        let mut last = self.last_error();
        match saved {
            Ok(()) => *last = None,
            Err(error) => {
                tracing::error!(error = %error, "could not save the new token; it is used anyway");
                stats.save_failed();
                *last = Some(error);
            }
        }
    }

    pub(crate) fn error(&self) -> Option<Error> {
        self.last_error().clone()
    }

    fn last_error(&self) -> std::sync::MutexGuard<'_, Option<Error>> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
