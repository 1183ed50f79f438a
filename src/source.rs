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

    /// What this source's tokens are for, so that caches in other processes can tell whether
    /// they may share them (see `TokenCacheBuilder::fleet`). `None`, the default: they are
    /// never shared. The grants of this crate say it: `ClientCredentials` always, the grants
    /// that act for a user once given a [subject](TokenSetId::subject).
    fn identity(&self) -> Option<TokenSetId> {
        None
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

    fn identity(&self) -> Option<TokenSetId> {
        T::identity(self)
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

    fn identity(&self) -> Option<TokenSetId>;
}

impl<T: TokenSource> DynTokenSource for T {
    fn fetch_boxed<'a>(&'a self, cx: FetchContext<'a>) -> BoxFuture<'a, Result<Token, Error>> {
        Box::pin(self.fetch(cx))
    }

    fn grant_type(&self) -> &'static str {
        TokenSource::grant_type(self)
    }

    fn identity(&self) -> Option<TokenSetId> {
        TokenSource::identity(self)
    }
}

/// What identifies the tokens a [`TokenSource`] issues, across processes: the token endpoint,
/// the client, the grant type and what it asks for. Two sources with equal identities get
/// interchangeable tokens. It holds no secret: the client secret and the tokens are no part
/// of it.
///
/// ```
/// use tower_oauth2::TokenSetId;
///
/// let id = TokenSetId::new("https://auth.example.com/oauth2/token", "my-client", "client_credentials")
///     .scopes(["orders:read"])
///     .audience("https://api.example.com");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSetId {
    pub(crate) token_endpoint: String,
    pub(crate) client_id: String,
    pub(crate) grant_type: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) resources: Vec<String>,
    pub(crate) audiences: Vec<String>,
    pub(crate) subject: Option<String>,
    pub(crate) params: Vec<String>,
    /// Whether the tokens are DPoP-bound to a key of this process, which no fleet can share.
    pub(crate) dpop_bound: bool,
}

impl TokenSetId {
    /// The tokens `client_id` gets from `token_endpoint` with `grant_type`.
    pub fn new(
        token_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        grant_type: impl Into<String>,
    ) -> Self {
        Self {
            token_endpoint: token_endpoint.into(),
            client_id: client_id.into(),
            grant_type: grant_type.into(),
            scopes: Vec::new(),
            resources: Vec::new(),
            audiences: Vec::new(),
            subject: None,
            params: Vec::new(),
            dpop_bound: false,
        }
    }

    /// Marks the tokens as DPoP-bound when `bound`: the token client that gets them signs its
    /// requests with a key of this process.
    pub(crate) fn dpop_bound(mut self, bound: bool) -> Self {
        self.dpop_bound = bound;
        self
    }

    /// The scopes asked for, in any order.
    #[must_use]
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes.extend(scopes.into_iter().map(Into::into));
        self
    }

    /// A resource indicator asked for (RFC 8707 `resource`).
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }

    /// An audience asked for (`audience`, as some servers name the API a token is for).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Whose tokens these are, for grants that act for a user or a service account: tokens of
    /// different subjects are never shared.
    #[must_use]
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Another form field that changes what the server issues. Never a secret.
    #[must_use]
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push(format!("{name}={value}"));
        self
    }

    /// A short name of this identity, equal for equal identities: the hex SHA-256 of its
    /// parts, each length-prefixed, lists sorted. Another identity can name it as its subject
    /// (a token exchanged for a cache's token acts for whoever that cache's tokens act for).
    pub(crate) fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        fn put(hasher: &mut Sha256, field: &str) {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field.as_bytes());
        }
        let mut hasher = Sha256::new();
        hasher.update(b"tower-oauth2 token set id v1");
        for field in [&self.token_endpoint, &self.client_id, &self.grant_type] {
            put(&mut hasher, field);
        }
        put(&mut hasher, self.subject.as_deref().unwrap_or_default());
        hasher.update([u8::from(self.subject.is_some())]);
        for list in [&self.scopes, &self.resources, &self.audiences, &self.params] {
            let mut sorted: Vec<&str> = list.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            sorted.dedup();
            hasher.update((sorted.len() as u64).to_be_bytes());
            for item in sorted {
                put(&mut hasher, item);
            }
        }
        hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}
