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
    flight::{self, Waiter},
    state::{Entry, Stamp},
};
use crate::{Error, secret::sensitive_header};

/// The token a request carries. Cloning it touches only this thread's reference count.
#[derive(Clone)]
pub(crate) struct Ticket {
    copy: Arc<Copy>,
    /// The cache itself, held by a request that may outlive every other handle to it.
    keep: Option<TokenCache>,
}

/// One thread's copy of a token's header.
struct Copy {
    generation: u64,
    header: HeaderValue,
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
        let entry = flight::wait(self.fetch?).await?;
        let stamp = self.cache.core.state.stamp();
        let copy = if stamp.generation() == entry.generation && stamp.phase().is_settled() {
            copy_for(&self.cache, stamp, &entry)
        } else {
            new_copy(&self.cache, &entry)
        };
        Ok(Ticket {
            copy,
            keep: Some(self.cache),
        })
    }
}

impl TokenCache {
    /// A ticket for the current token from this thread's copy, if the token is settled and
    /// the copy is of it.
    #[inline]
    pub(super) fn copied_ticket(&self, stamp: Stamp) -> Option<Ticket> {
        let key = self.key();
        COPIES.with(|copies| {
            let copies = copies.borrow();
            let slot = &copies[bucket(key)];
            let copy = slot.copy.as_ref().filter(|_| slot.stamp == stamp)?;
            Some(Ticket {
                copy: Arc::clone(copy),
                keep: self.keep_for_request(),
            })
        })
    }

    /// A ticket for `entry`, the current token under `stamp`.
    pub(super) fn ticket_for(&self, stamp: Stamp, entry: &Entry) -> Ticket {
        let copy = if stamp.phase().is_settled() {
            copy_for(self, stamp, entry)
        } else {
            new_copy(self, entry)
        };
        Ticket {
            copy,
            keep: self.keep_for_request(),
        }
    }

    /// A request whose service holds the only handle to the cache keeps it alive: the service
    /// may be dropped as soon as the request is sent (`ServiceExt::oneshot` does), and a 401
    /// answer still needs the cache. Anywhere else, a strong handle per request would make
    /// threads share one reference count.
    #[inline]
    fn keep_for_request(&self) -> Option<TokenCache> {
        (Arc::strong_count(&self.core) == 1).then(|| self.clone())
    }

    /// Names the cache among the copies of this thread.
    fn key(&self) -> usize {
        Arc::as_ptr(&self.core).addr()
    }
}

/// This thread's copy of `entry`'s header, stored under `stamp`: the existing one if it is of
/// the same token, else a new one.
fn copy_for(cache: &TokenCache, stamp: Stamp, entry: &Entry) -> Arc<Copy> {
    COPIES.with(|copies| {
        let mut copies = copies.borrow_mut();
        let slot = &mut copies[bucket(cache.key())];
        let copy = match &slot.copy {
            Some(copy)
                if copy.generation == entry.generation
                    && Weak::as_ptr(&copy.cache).addr() == cache.key() =>
            {
                Arc::clone(copy)
            }
            _ => new_copy(cache, entry),
        };
        slot.stamp = stamp;
        slot.copy = Some(Arc::clone(&copy));
        copy
    })
}

fn new_copy(cache: &TokenCache, entry: &Entry) -> Arc<Copy> {
    // Bytes of its own, zeroed when the last request that carries them is dropped.
    let header = sensitive_header(Zeroizing::new(entry.header.as_bytes().to_vec()))
        .unwrap_or_else(|| entry.header.clone());
    Arc::new(Copy {
        generation: entry.generation,
        header,
        cache: Arc::downgrade(&cache.core),
    })
}

/// How many caches one thread keeps copies for at once; more collide and take turns.
const SLOTS: usize = 16;

struct Slot {
    stamp: Stamp,
    copy: Option<Arc<Copy>>,
}

thread_local! {
    static COPIES: RefCell<[Slot; SLOTS]> = const {
        RefCell::new([const { Slot { stamp: Stamp::EMPTY, copy: None } }; SLOTS])
    };
}

fn bucket(key: usize) -> usize {
    // Fibonacci hashing: allocations are aligned, so the low bits of an address say little.
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> (usize::BITS - SLOTS.ilog2())
}
