//! The pluggable way to obtain a token.

use std::{future::Future, pin::Pin};

use crate::{Error, Token};

/// Obtains a new token: one OAuth 2.0 grant, a metadata server, a file, a fixed value.
///
/// The crate ships the [grants](crate::grant) `client_credentials`, `authorization_code` and
/// `refresh_token`; anything else takes a few lines. A [`TokenCache`](crate::TokenCache) calls `fetch` when it needs a token, never
/// twice at once, and shares the result with every request that waits for it, so an
/// implementation does not cache or deduplicate by itself.
///
/// # Example: a token from the environment
///
/// ```
/// use tower_oauth2::{Error, FetchContext, Token, TokenCache, TokenSource};
///
/// struct FromEnv;
///
/// impl TokenSource for FromEnv {
///     async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, Error> {
///         let token = std::env::var("API_TOKEN").map_err(Error::source_failed)?;
///         Ok(Token::bearer(token))
///     }
/// }
///
/// let cache = TokenCache::new(FromEnv);
/// ```
pub trait TokenSource: Send + Sync + 'static {
    /// Obtains a new token.
    ///
    /// `cx` carries the token being replaced, if any: its refresh token is the one to use next.
    /// The cache keeps that refresh token when the new token comes without one.
    fn fetch(&self, cx: FetchContext<'_>) -> impl Future<Output = Result<Token, Error>> + Send;

    /// Names the grant in logs, such as `client_credentials`. Default: `custom`.
    fn grant_type(&self) -> &'static str {
        "custom"
    }
}

/// A shared source is a source, so a caller can keep a handle to the one a cache uses.
impl<T: TokenSource> TokenSource for std::sync::Arc<T> {
    fn fetch(&self, cx: FetchContext<'_>) -> impl Future<Output = Result<Token, Error>> + Send {
        T::fetch(self, cx)
    }

    fn grant_type(&self) -> &'static str {
        T::grant_type(self)
    }
}

/// What a [`TokenSource`] is told when the cache asks it for a token.
#[derive(Debug, Clone, Copy)]
pub struct FetchContext<'a> {
    previous: Option<&'a Token>,
    reason: FetchReason,
}

impl<'a> FetchContext<'a> {
    /// Creates a context, for calling a [`TokenSource`] directly.
    pub fn new(previous: Option<&'a Token>, reason: FetchReason) -> Self {
        Self { previous, reason }
    }

    /// Returns the token being replaced, if the cache held one.
    pub fn previous(&self) -> Option<&'a Token> {
        self.previous
    }

    /// Returns why the cache needs a new token.
    pub fn reason(&self) -> FetchReason {
        self.reason
    }
}

/// Why a [`TokenCache`](crate::TokenCache) fetches a token.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetchReason {
    /// The cache holds no token yet.
    Cold,
    /// The token is inside its refresh margin: requests keep using it while this fetch runs.
    Stale,
    /// The token has expired: requests wait for this fetch.
    Expired,
    /// A request with the current token got a 401 answer.
    Unauthorized,
    /// [`TokenCache::refresh`](crate::TokenCache::refresh) was called.
    Forced,
}

impl FetchReason {
    /// Returns the reason as a lowercase word, as it appears in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cold => "cold",
            Self::Stale => "stale",
            Self::Expired => "expired",
            Self::Unauthorized => "unauthorized",
            Self::Forced => "forced",
        }
    }
}

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`TokenSource`] in a form that can live behind `dyn`, so the cache needs no type parameter.
pub(crate) trait DynTokenSource: Send + Sync + 'static {
    fn fetch_boxed<'a>(&'a self, cx: FetchContext<'a>) -> BoxFuture<'a, Result<Token, Error>>;

    fn grant_type(&self) -> &'static str;
}

impl<T: TokenSource> DynTokenSource for T {
    fn fetch_boxed<'a>(&'a self, cx: FetchContext<'a>) -> BoxFuture<'a, Result<Token, Error>> {
        Box::pin(self.fetch(cx))
    }

    fn grant_type(&self) -> &'static str {
        TokenSource::grant_type(self)
    }
}
