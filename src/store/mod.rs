//! Keeping tokens across restarts.

use std::{
    fmt,
    future::Future,
    sync::{Mutex, PoisonError},
};

use crate::{Error, Token, source::BoxFuture};

mod file;

pub use self::file::FileStore;

/// Where a [`TokenCache`](crate::TokenCache) keeps its token so that it survives a restart:
/// above all the refresh token, which a server that rotates them issues only once.
///
/// The cache calls [`save`](Self::save) with every new token before any request uses it, and
/// [`load`](Self::load) when it needs a token and holds none: once at start, and again on each
/// attempt until a token is installed. A loaded token that is
/// still valid is used as it is; an expired one lends its refresh token to the next fetch.
///
/// When `save` fails, the new token is used all the same (the server has already replaced the
/// old one), the failure is logged at `ERROR` level, counted in
/// [`CacheStats::failed_saves`](crate::CacheStats::failed_saves), and kept for
/// [`TokenCache::store_error`](crate::TokenCache::store_error) until a save succeeds.
pub trait TokenStore: Send + Sync + 'static {
    /// Returns the saved token, if there is one, with its [`expires_in`](Token::expires_in)
    /// counted from now: a store that outlives a process records when the token expires, and
    /// gives back the time left (zero once it has passed).
    fn load(&self) -> impl Future<Output = Result<Option<Token>, Error>> + Send;

    /// Saves `token`, replacing the saved one, unless the saved one is newer (of a higher
    /// [`lineage`](Token::lineage)): a save that comes late, after a newer one, must not bring
    /// back a refresh token the server has already replaced.
    fn save(&self, token: &Token) -> impl Future<Output = Result<(), Error>> + Send;
}

/// [`TokenStore`] behind `dyn`, so the cache needs no type parameter.
pub(crate) trait DynTokenStore: Send + Sync + 'static {
    fn load_boxed(&self) -> BoxFuture<'_, Result<Option<Token>, Error>>;
    fn save_boxed<'a>(&'a self, token: &'a Token) -> BoxFuture<'a, Result<(), Error>>;
}

impl<T: TokenStore> DynTokenStore for T {
    fn load_boxed(&self) -> BoxFuture<'_, Result<Option<Token>, Error>> {
        Box::pin(self.load())
    }

    fn save_boxed<'a>(&'a self, token: &'a Token) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.save(token))
    }
}

/// A [`TokenStore`] in memory: it survives a cache, not a process. Useful in tests, and to
/// hand one token set from one cache to the next.
#[derive(Default)]
pub struct MemoryStore {
    token: Mutex<Option<Token>>,
}

impl MemoryStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the saved token.
    pub fn get(&self) -> Option<Token> {
        self.token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl TokenStore for MemoryStore {
    async fn load(&self) -> Result<Option<Token>, Error> {
        Ok(self.get())
    }

    async fn save(&self, token: &Token) -> Result<(), Error> {
        let mut saved = self.token.lock().unwrap_or_else(PoisonError::into_inner);
        if saved
            .as_ref()
            .is_none_or(|saved| saved.lineage() <= token.lineage())
        {
            *saved = Some(token.clone());
        }
        Ok(())
    }
}

impl<T: TokenStore> TokenStore for std::sync::Arc<T> {
    fn load(&self) -> impl Future<Output = Result<Option<Token>, Error>> + Send {
        T::load(self)
    }

    fn save(&self, token: &Token) -> impl Future<Output = Result<(), Error>> + Send {
        T::save(self, token)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("token", &self.get())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Lineage;

    #[tokio::test]
    async fn a_memory_store_keeps_the_newer_of_two_sets_whatever_order_they_are_saved_in() {
        let store = MemoryStore::new();
        let newer = Token::bearer("b").with_lineage(Lineage::from_u64(2));
        let older = Token::bearer("a").with_lineage(Lineage::from_u64(1));
        store.save(&newer).await.unwrap();
        store.save(&older).await.unwrap();
        assert_eq!(store.get().unwrap().access_token().expose(), "b");
    }
}
