//! A token as the cache holds it: its `Authorization` header built once, its DPoP binding,
//! and when it turns stale and expires. The timer that acts on those instants is the state's.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use http::HeaderValue;
use tokio::{task::AbortHandle, time::Instant};
use zeroize::Zeroizing;

use super::stamp::Phase;
use crate::{Error, ErrorKind, Token, dpop::Bound, secret::sensitive_header};

/// The `Authorization` header of `token`. Fails when the access token cannot be sent in a
/// header, which only a broken or hostile server causes.
fn header_of(token: &Token) -> Result<HeaderValue, Error> {
    let access = token.access_token().expose();
    if access.is_empty() {
        return Err(Error::new(ErrorKind::InvalidResponse).with_detail("access token is empty"));
    }
    let value = Zeroizing::new(format!("{} {access}", token.scheme()).into_bytes());
    sensitive_header(value).ok_or_else(|| {
        Error::new(ErrorKind::InvalidResponse)
            .with_detail("access token has characters not allowed in a header")
    })
}

/// Checks that `token` can be sent in a header, before it is saved anywhere.
pub(crate) fn check_header(token: &Token) -> Result<(), Error> {
    header_of(token).map(drop)
}

/// A new generation, unique across every cache of the process.
fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A token as the cache holds it: its `Authorization` header built once, and when it turns
/// stale and expires.
pub(crate) struct Entry {
    pub(crate) generation: u64,
    /// When the token was requested.
    pub(crate) issued: Instant,
    pub(crate) header: HeaderValue,
    /// What requests need to prove they hold the key of a DPoP-bound token.
    pub(crate) dpop: Option<Arc<Bound>>,
    pub(crate) token: Token,
    pub(super) stale_at: Option<Instant>,
    pub(super) expires_at: Option<Instant>,
    /// The task that moves the stamp as the token ages (`State::watch`).
    pub(super) timer: Mutex<Option<AbortHandle>>,
}

impl Entry {
    /// Builds the entry for `token`, requested at `issued`, with a new generation.
    ///
    /// Fails when the access token cannot be sent in a header, which only a broken or hostile
    /// server causes.
    pub(crate) fn new(token: Token, issued: Instant, margin: Duration) -> Result<Self, Error> {
        let header = header_of(&token)?;
        let (stale_at, expires_at) = match token.expires_in() {
            // A token that came already expired is used until something better arrives.
            Some(Duration::ZERO) => (Some(issued), None),
            Some(lifetime) => {
                let margin = margin.min(lifetime / 2);
                // A lifetime too long for an `Instant`, such as `Duration::MAX`, is forever.
                (
                    issued.checked_add(lifetime - margin),
                    issued.checked_add(lifetime),
                )
            }
            None => (None, None),
        };
        let dpop = token
            .binding()
            .map(|binding| Arc::new(Bound::new(binding.clone(), token.access_token().expose())));
        Ok(Self {
            generation: next_generation(),
            issued,
            header,
            dpop,
            token,
            stale_at,
            expires_at,
            timer: Mutex::new(None),
        })
    }

    /// When the token expires, if it does.
    pub(crate) fn expires_at(&self) -> Option<Instant> {
        self.expires_at
    }

    /// The phase the token is in now, by the clock.
    pub(super) fn phase_now(&self) -> Phase {
        let now = Instant::now();
        if self.expires_at.is_some_and(|at| at <= now) {
            Phase::Expired
        } else if self.stale_at.is_some_and(|at| at <= now) {
            Phase::Stale
        } else {
            Phase::Fresh
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let timer = self.timer.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(timer) = timer.take() {
            timer.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARGIN: Duration = Duration::from_secs(60);

    #[tokio::test(start_paused = true)]
    async fn margin_is_capped_at_half_the_lifetime() {
        let now = Instant::now();
        let long = Token::bearer("a").with_expires_in(Duration::from_secs(3600));
        let entry = Entry::new(long, now, MARGIN).unwrap();
        assert_eq!(entry.stale_at, Some(now + Duration::from_secs(3540)));
        assert_eq!(entry.expires_at, Some(now + Duration::from_secs(3600)));

        let short = Token::bearer("a").with_expires_in(Duration::from_secs(2));
        let entry = Entry::new(short, now, MARGIN).unwrap();
        assert_eq!(entry.stale_at, Some(now + Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_lifetime_token_is_stale_at_once_but_never_expires() {
        let token = Token::bearer("a").with_expires_in(Duration::ZERO);
        let entry = Entry::new(token, Instant::now(), MARGIN).unwrap();
        assert_eq!(entry.phase_now(), Phase::Stale);
        assert_eq!(entry.expires_at, None);
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_an_invalid_response() {
        for bad in ["", "line\nbreak", "nul\0"] {
            let error = Entry::new(Token::bearer(bad), Instant::now(), MARGIN)
                .err()
                .unwrap();
            assert_eq!(error.kind(), ErrorKind::InvalidResponse);
        }
    }

    #[test]
    fn the_header_is_marked_sensitive() {
        let entry = Entry::new(Token::bearer("abc"), Instant::now(), MARGIN).unwrap();
        assert_eq!(entry.header, "Bearer abc");
        assert!(entry.header.is_sensitive());
    }

    #[test]
    fn every_entry_gets_a_new_generation() {
        let a = Entry::new(Token::bearer("a"), Instant::now(), MARGIN).unwrap();
        let b = Entry::new(Token::bearer("a"), Instant::now(), MARGIN).unwrap();
        assert_ne!(a.generation, b.generation);
    }
}
