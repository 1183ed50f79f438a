//! Where a token exchange's subject and actor tokens come from, and what each is good for.

use std::{
    fmt,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::{
    BoxError, CachedToken, Error, ErrorKind, Secret, TokenCache,
    credential::{Holds, jwt_remaining, read_file},
};

type TokenFn = dyn Fn() -> Result<Secret, Error> + Send + Sync;

/// A security token that a [`TokenExchange`](super::TokenExchange) presents as its subject
/// or actor token, with its token type (RFC 8693 section 3). Its value is asked for anew for
/// every token request.
///
/// ```
/// use tower_oauth2::grant::SecurityToken;
///
/// // A Kubernetes projected service account token, rotated by the kubelet.
/// let subject = SecurityToken::from_file("/var/run/secrets/tokens/identity")
///     .token_type(SecurityToken::JWT);
/// assert_eq!(subject.type_uri(), "urn:ietf:params:oauth:token-type:jwt");
/// ```
#[derive(Clone)]
pub struct SecurityToken {
    from: Supply,
    token_type: String,
}

#[derive(Clone)]
enum Supply {
    Cache(TokenCache),
    File(Arc<PathBuf>),
    Function(Arc<TokenFn>),
}

/// A security token as presented in one request.
pub(super) struct Presented {
    pub(super) value: Secret,
    /// How long the token is good for from now, when known.
    pub(super) remaining: Option<Duration>,
    /// The cached token it is, so a server's refusal can retire it.
    cached: Option<(TokenCache, CachedToken)>,
}

impl Presented {
    /// Tells the cache it came from, if any, that the server refused it: the next exchange
    /// gets another.
    pub(super) fn retire(&self) {
        if let Some((cache, token)) = &self.cached {
            cache.invalidate(token);
        }
    }
}

impl SecurityToken {
    /// `urn:ietf:params:oauth:token-type:access_token`, the default type.
    pub const ACCESS_TOKEN: &'static str = "urn:ietf:params:oauth:token-type:access_token";
    /// `urn:ietf:params:oauth:token-type:refresh_token`.
    pub const REFRESH_TOKEN: &'static str = "urn:ietf:params:oauth:token-type:refresh_token";
    /// `urn:ietf:params:oauth:token-type:id_token`: an OpenID Connect id token.
    pub const ID_TOKEN: &'static str = "urn:ietf:params:oauth:token-type:id_token";
    /// `urn:ietf:params:oauth:token-type:jwt`: any JWT, such as a workload identity token.
    pub const JWT: &'static str = "urn:ietf:params:oauth:token-type:jwt";
    /// `urn:ietf:params:oauth:token-type:saml2`: a base64url-encoded SAML 2.0 assertion.
    pub const SAML2: &'static str = "urn:ietf:params:oauth:token-type:saml2";

    /// The access token `cache` holds, fetched through it when it has none. The exchanged
    /// token expires no later than it does, and a server that refuses it (`invalid_grant`)
    /// makes `cache` fetch a new one for the next exchange.
    pub fn from_cache(cache: TokenCache) -> Self {
        Self::with(Supply::Cache(cache))
    }

    /// The token in the file at `path`, read again for every token request (surrounding
    /// whitespace is dropped), so a file the platform rotates is picked up. It is read off
    /// the runtime's workers, at most 64 KiB; a missing, empty or larger file fails the fetch
    /// as an [`ErrorKind::Source`](crate::ErrorKind::Source) error that names the file, never
    /// its content.
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        Self::with(Supply::File(Arc::new(path.into())))
    }

    /// The token `token` returns, called once for every token request. An error it returns
    /// fails that request as an [`ErrorKind::Source`](crate::ErrorKind::Source) error.
    pub fn from_fn<F, S, E>(token: F) -> Self
    where
        F: Fn() -> Result<S, E> + Send + Sync + 'static,
        S: Into<Secret>,
        E: Into<BoxError>,
    {
        let token = move || {
            token()
                .map(Into::into)
                .map_err(|error| Error::source_failed(error))
        };
        Self::with(Supply::Function(Arc::new(token)))
    }

    fn with(from: Supply) -> Self {
        Self {
            from,
            token_type: Self::ACCESS_TOKEN.to_owned(),
        }
    }

    /// Sets the token type sent with it. Default: [`ACCESS_TOKEN`](Self::ACCESS_TOKEN).
    #[must_use]
    pub fn token_type(mut self, token_type: impl Into<String>) -> Self {
        self.token_type = token_type.into();
        self
    }

    /// Returns the token type sent with it.
    pub fn type_uri(&self) -> &str {
        &self.token_type
    }

    /// The token's value now, and how long it is good for.
    pub(super) async fn present(&self) -> Result<Presented, Error> {
        let (value, cached) = match &self.from {
            Supply::Cache(cache) => {
                let token = cache.token().await?;
                let value = token.token().access_token().clone();
                let remaining = token.remaining();
                return Ok(Presented {
                    value,
                    remaining,
                    cached: Some((cache.clone(), token)),
                });
            }
            Supply::File(path) => (
                read_file(path, Holds::TOKEN)
                    .await
                    .map_err(|error| error.with_kind(ErrorKind::Source))?,
                None,
            ),
            Supply::Function(token) => (token()?, None),
        };
        // Read, not verified: it only bounds how long an exchanged token is kept, which the
        // server that verifies the JWT decides anyway.
        let remaining = jwt_remaining(value.expose(), SystemTime::now());
        Ok(Presented {
            value,
            remaining,
            cached,
        })
    }

    /// A name for whom this token stands for that is the same in every process with the
    /// same configuration, when there is one: for a cache whose source has an identity, a
    /// digest of that identity. Files and functions have none.
    pub(super) fn derived_name(&self) -> Option<String> {
        match &self.from {
            Supply::Cache(cache) => Some(format!("token-set:{}", cache.identity()?.digest())),
            Supply::File(_) | Supply::Function(_) => None,
        }
    }
}

impl fmt::Debug for SecurityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("SecurityToken");
        match &self.from {
            Supply::Cache(cache) => debug.field("cache", cache),
            Supply::File(path) => debug.field("file", path),
            Supply::Function(_) => debug.field("function", &"given"),
        };
        debug.field("token_type", &self.token_type).finish()
    }
}
