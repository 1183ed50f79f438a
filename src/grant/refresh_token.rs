//! The refresh token grant (RFC 6749 section 6): a new access token for a refresh token.

use std::fmt;

use super::asks::asks;
use crate::{
    ClientAuth, Error, ErrorKind, FetchContext, Secret, Token, TokenClient, TokenRequest,
    TokenSetId, TokenSource,
};

/// A [`TokenSource`] for `grant_type=refresh_token`, starting from a refresh token obtained
/// earlier: by another program, a past authorization, a secret store.
///
/// The refresh token given here is used for the first fetch only. Every later fetch uses the
/// newest refresh token the cache holds: the one the server sent with the last token when it
/// rotates them, the one before when it does not. With a [store](crate::TokenCacheBuilder::store)
/// that holds a token, the saved refresh token wins over the one given here, so a restarted
/// program picks up where it left off.
///
/// A server that answers a refresh with `invalid_grant` (the refresh token expired, was revoked,
/// or was already used) makes the fetch fail with [`ErrorKind::ReauthorizationRequired`]: only
/// a new authorization by the user helps. The server's code stays readable through
/// [`Error::oauth_error`].
///
/// ```
/// # use bytes::Bytes;
/// # use http::{Request, Response};
/// # use http_body_util::Full;
/// # use tower::service_fn;
/// use tower_oauth2::{ClientAuth, TokenCache, TokenClient, grant::RefreshToken};
///
/// # fn main() -> Result<(), tower_oauth2::Error> {
/// # let http = service_fn(|_: Request<Full<Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
/// # });
/// # let stored_refresh_token = String::from("r1");
/// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
/// let grant = RefreshToken::new(endpoint, ClientAuth::none("my-app"), stored_refresh_token)
///     // Ask for less than the refresh token grants.
///     .scopes(["orders:read"]);
/// let cache = TokenCache::new(grant);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RefreshToken {
    endpoint: TokenClient,
    auth: ClientAuth,
    initial: Secret,
    request: TokenRequest,
    subject: Option<String>,
}

impl RefreshToken {
    /// Creates the grant against `endpoint`, authenticating with `auth`
    /// ([`ClientAuth::none`] for a public client), starting from `refresh_token`.
    pub fn new(endpoint: TokenClient, auth: ClientAuth, refresh_token: impl Into<Secret>) -> Self {
        Self {
            endpoint,
            auth,
            initial: refresh_token.into(),
            request: TokenRequest::new("refresh_token"),
            subject: None,
        }
    }

    /// Names whose tokens these are (a user, a service account), so that caches in other
    /// processes may share them through a fleet (`TokenCacheBuilder::fleet`), and so the one
    /// refresh token that a rotating server accepts. Tokens of different subjects are never
    /// shared; without a subject, they are never shared at all.
    #[must_use]
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    asks!(
        request,
        first: "every refresh request",
        every: "every refresh request",
        scopes: "They must be among those the refresh token grants (RFC 6749 section 6); without \
                  them, the new token has the scopes of the original grant.",
    );
}

impl TokenSource for RefreshToken {
    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, Error> {
        let refresh_token = cx
            .previous()
            .and_then(Token::refresh_token)
            .unwrap_or(&self.initial);
        refresh(&self.endpoint, &self.auth, &self.request, refresh_token).await
    }

    fn grant_type(&self) -> &'static str {
        "refresh_token"
    }

    fn identity(&self) -> Option<TokenSetId> {
        let subject = self.subject.as_deref()?;
        let url = self.endpoint.url().to_string();
        Some(
            self.request
                .identity(&url, self.auth.client_id())
                .subject(subject)
                .dpop_bound(self.endpoint.binds_tokens()),
        )
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .field("request", &self.request)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Renews the token of a grant whose first token came from a user's sign-in (the authorization
/// code and device grants): with the refresh token of the token it replaces, never by running
/// the sign-in again. `base` is the grant's `refresh_token` request.
pub(crate) async fn renew(
    cx: FetchContext<'_>,
    endpoint: &TokenClient,
    auth: &ClientAuth,
    base: &TokenRequest,
    sign_in: &str,
) -> Result<Token, Error> {
    let Some(refresh_token) = cx.previous().and_then(Token::refresh_token) else {
        let detail = if cx.previous().is_some() {
            "the token has no refresh token; the user must authorize again".to_owned()
        } else {
            format!("no token yet; {sign_in} and seed the cache with its token")
        };
        return Err(Error::new(ErrorKind::ReauthorizationRequired).with_detail(detail));
    };
    refresh(endpoint, auth, base, refresh_token).await
}

/// Sends one refresh request: `base` (a `refresh_token` request with any scopes and fields)
/// plus `refresh_token`. `invalid_grant` becomes [`ErrorKind::ReauthorizationRequired`].
pub(crate) async fn refresh(
    endpoint: &TokenClient,
    auth: &ClientAuth,
    base: &TokenRequest,
    refresh_token: &Secret,
) -> Result<Token, Error> {
    let request = base
        .clone()
        .secret_param("refresh_token", refresh_token.clone());
    endpoint.request(&request, auth).await.map_err(|error| {
        if error.oauth_error() == Some("invalid_grant") {
            error.with_kind(ErrorKind::ReauthorizationRequired)
        } else {
            error
        }
    })
}
