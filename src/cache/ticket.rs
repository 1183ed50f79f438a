//! Tickets: the header a request carries, and which token it is, so that a 401 answer retires
//! exactly that token.
//!
//! Each thread keeps its own copy of the current header, so that threads sending requests side
//! by side never touch one shared reference count (`cargo bench --bench contention` measures
//! it). The copies are keyed by the cache's stamp; a stamp names one token of one cache, so a
//! copy is used only while its token is current and settled.

use std::{
    cell::RefCell,
    fmt,
    sync::{Arc, Weak},
};

use http::HeaderValue;
use zeroize::Zeroizing;

use super::{
    Core, TokenCache,
    entry::Entry,
    flight::{self, Waiter},
    stamp::Stamp,
};
use crate::{Error, dpop::Bound, secret::sensitive_header};

/// The token a request carries. Cloning it touches only this thread's reference count, and
/// the cache's when the ticket [holds it for a retry](Self::hold_for_retry).
#[derive(Clone)]
pub(crate) struct Ticket {
    copy: Arc<HeaderCopy>,
    /// The cache itself, held by a request that can be sent again after a 401: it may outlive
    /// every other handle to the cache.
    keep: Option<TokenCache>,
}

/// One thread's copy of a token's header.
struct HeaderCopy {
    generation: u64,
    header: HeaderValue,
    dpop: Option<Arc<Bound>>,
    cache: Weak<Core>,
}

impl Ticket {
    /// The `Authorization` header to attach.
    #[inline]
    pub(crate) fn header(&self) -> HeaderValue {
        self.copy.header.clone()
    }

    pub(crate) fn generation(&self) -> u64 {
        self.copy.generation
    }

    /// The token's DPoP binding, if it is bound.
    #[inline]
    pub(crate) fn dpop(&self) -> Option<&Bound> {
        self.copy.dpop.as_deref()
    }

    /// Keeps the ticket's cache alive as long as the ticket, for a request that can be sent
    /// again after a 401: the service that sent it may be dropped as soon as it is out
    /// (`ServiceExt::oneshot` does), with every other handle, and the retry needs the cache
    /// for its new token. A request that cannot be sent again needs the cache only to retire
    /// the token, which matters only while some handle can still hand the token out: it holds
    /// none, and spares threads that send side by side one shared reference count.
    #[inline]
    pub(crate) fn hold_for_retry(&mut self) {
        if self.keep.is_none() {
            self.keep = self.cache();
        }
    }

    /// The cache the token came from, unless every handle to it was dropped.
    pub(crate) fn cache(&self) -> Option<TokenCache> {
        self.keep.clone().or_else(|| {
            let core = self.copy.cache.upgrade()?;
            Some(TokenCache { core })
        })
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("generation", &self.copy.generation)
            .finish_non_exhaustive()
    }
}

/// A request that needs a token waits for this fetch.
pub(crate) struct Wait {
    fetch: Result<Waiter, Error>,
    cache: TokenCache,
}

impl Wait {
    pub(super) fn new(fetch: Result<Waiter, Error>, cache: TokenCache) -> Self {
        Self { fetch, cache }
    }

    /// Waits for the fetch and returns a ticket for the token it brought, or its error.
    pub(crate) async fn ticket(self) -> Result<Ticket, Error> {
        let cache = self.cache;
        let copy = flight::wait_with(self.fetch?, |entry| {
            let stamp = cache.core.state.stamp();
            if stamp.generation() == entry.generation && stamp.is_settled() {
                copy_for(&cache, stamp, entry)
            } else {
                new_copy(&cache, entry)
            }
        })
        .await?;
        Ok(Ticket {
            copy,
            keep: Some(cache),
        })
    }
}

impl TokenCache {
    /// A ticket for a token other than `refused`'s, which a 401 answer has just refused: the
    /// current one if it is newer, else the fetch to wait for. While that fetch is held back,
    /// requests that were not refused keep the token ([`Core::held_back`]); this one waits.
    pub(crate) fn ticket_after(&self, refused: u64) -> Result<Ticket, Wait> {
        loop {
            match self.ticket() {
                Ok(ticket) if ticket.generation() == refused => {}
                other => return other,
            }
            // `None`: a newer token came meanwhile, which the next look finds.
            if let Some(fetch) = self.core.join(crate::FetchReason::Unauthorized) {
                return Err(Wait::new(fetch, self.clone()));
            }
        }
    }

    /// A ticket for the current token from this thread's copy, if the token is settled and
    /// the copy is of it.
    #[inline]
    pub(super) fn copied_ticket(&self, stamp: Stamp) -> Option<Ticket> {
        COPIES.with(|copies| {
            let copies = copies.borrow();
            let slot = &copies[self.core.state.slot()];
            let copy = slot.copy.as_ref().filter(|_| slot.stamp == stamp)?;
            Some(Ticket {
                copy: Arc::clone(copy),
                keep: None,
            })
        })
    }

    /// A ticket for `entry`, the current token under `stamp`.
    pub(super) fn ticket_for(&self, stamp: Stamp, entry: &Entry) -> Ticket {
        let copy = if stamp.is_settled() {
            copy_for(self, stamp, entry)
        } else {
            new_copy(self, entry)
        };
        Ticket { copy, keep: None }
    }

    /// Names the cache among the copies of this thread.
    fn key(&self) -> usize {
        Arc::as_ptr(&self.core).addr()
    }
}

/// This thread's copy of `entry`'s header, stored under `stamp`: the existing one if it is of
/// the same token, else a new one.
fn copy_for(cache: &TokenCache, stamp: Stamp, entry: &Entry) -> Arc<HeaderCopy> {
    COPIES.with(|copies| {
        let mut copies = copies.borrow_mut();
        let slot = &mut copies[cache.core.state.slot()];
        slot.stamp = stamp;
        if let Some(copy) = &slot.copy
            && copy.generation == entry.generation
            && Weak::as_ptr(&copy.cache).addr() == cache.key()
        {
            return Arc::clone(copy);
        }
        let copy = new_copy(cache, entry);
        slot.copy = Some(Arc::clone(&copy));
        copy
    })
}

fn new_copy(cache: &TokenCache, entry: &Entry) -> Arc<HeaderCopy> {
    // Bytes of its own, zeroed when the last request that carries them is dropped.
    let header = sensitive_header(Zeroizing::new(entry.header.as_bytes().to_vec()))
        .unwrap_or_else(|| entry.header.clone());
    Arc::new(HeaderCopy {
        generation: entry.generation,
        header,
        dpop: entry.dpop.clone(),
        cache: Arc::downgrade(&cache.core),
    })
}

/// How many caches one thread keeps copies for at once; more share slots and take turns.
pub(super) const SLOTS: usize = 64;

/// One cache's copy on this thread, and the stamp it is good for.
struct Slot {
    stamp: Stamp,
    copy: Option<Arc<HeaderCopy>>,
}

thread_local! {
    static COPIES: RefCell<[Slot; SLOTS]> = const {
        RefCell::new([const { Slot { stamp: Stamp::EMPTY, copy: None } }; SLOTS])
    };
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{FetchContext, Token, TokenSource};

    struct Numbered(std::sync::atomic::AtomicUsize);

    impl TokenSource for Numbered {
        async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Ok(Token::bearer(format!("t{n}")).with_expires_in(Duration::from_secs(3600)))
        }
    }

    fn cache() -> TokenCache {
        TokenCache::new(Numbered(0.into()))
    }

    async fn ticket(cache: &TokenCache) -> Ticket {
        match cache.ticket() {
            Ok(ticket) => ticket,
            Err(wait) => wait.ticket().await.unwrap(),
        }
    }

    #[tokio::test]
    async fn a_thread_reuses_its_copy_while_the_token_is_current() {
        let cache = cache();
        let first = ticket(&cache).await;
        let second = ticket(&cache).await;
        let third = ticket(&cache).await;
        assert!(Arc::ptr_eq(&second.copy, &third.copy));
        assert_eq!(first.header(), "Bearer t1");
        assert_eq!(third.header(), "Bearer t1");
        assert!(third.header().is_sensitive());
    }

    #[tokio::test]
    async fn a_retired_token_is_never_handed_out_again() {
        let cache = cache();
        let used = ticket(&cache).await;
        cache.retire(used.generation());
        let next = ticket(&cache).await;
        assert_eq!(next.header(), "Bearer t2");
        assert_ne!(next.generation(), used.generation());
        // Retiring an old token leaves the new one alone.
        cache.retire(used.generation());
        assert_eq!(ticket(&cache).await.header(), "Bearer t2");
    }

    #[tokio::test]
    async fn two_caches_on_one_thread_keep_their_own_copies() {
        let (a, b) = (cache(), TokenCache::new(Numbered(100.into())));
        for _ in 0..3 {
            assert_eq!(ticket(&a).await.header(), "Bearer t1");
            assert_eq!(ticket(&b).await.header(), "Bearer t101");
        }
    }

    #[tokio::test]
    async fn a_ticket_held_for_a_retry_keeps_its_cache_alive_and_one_that_is_not_does_not() {
        let cache = cache();
        let waited = ticket(&cache).await;
        assert!(
            waited.keep.is_some(),
            "a request that waited holds its cache"
        );
        drop(waited);
        let mut held = ticket(&cache).await;
        let unheld = ticket(&cache).await;
        assert!(
            held.keep.is_none() && unheld.keep.is_none(),
            "only when asked"
        );
        held.hold_for_retry();
        // The ticket of a clone of the cache, held the same way, once every handle is gone.
        let clone = cache.clone();
        drop(cache);
        let mut last = ticket(&clone).await;
        last.hold_for_retry();
        drop(clone);
        assert!(held.cache().is_some());
        assert!(last.cache().is_some());
        drop(held);
        assert!(last.cache().is_some(), "either held ticket keeps the cache");
        drop(last);
        assert!(unheld.cache().is_none(), "the cache outlived every handle");
    }

    #[tokio::test]
    async fn a_ticket_after_a_refused_token_is_never_for_that_token() {
        let cache = cache();
        let used = ticket(&cache).await;
        cache.retire(used.generation());
        let next = match cache.ticket_after(used.generation()) {
            Ok(ticket) => ticket,
            Err(wait) => wait.ticket().await.unwrap(),
        };
        assert_eq!(next.header(), "Bearer t2");
        // A token newer than the refused one is handed out as it is.
        let again = cache.ticket_after(used.generation()).ok().unwrap();
        assert_eq!(again.generation(), next.generation());
    }
}
