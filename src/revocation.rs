//! Token revocation (RFC 7009): telling the authorization server a token is no longer needed,
//! when a user signs out or an app is uninstalled.

use std::fmt;

use crate::{
    ClientAuth, Error, Secret, Token, TokenClient, TokenRequest,
    endpoint::{Endpoint, parse},
};

/// Revokes tokens at an authorization server's revocation endpoint (RFC 7009).
///
/// It posts to the revocation endpoint (the `revocation_endpoint` of the server's metadata)
/// through the HTTP client of a [`TokenClient`] of the same server, with its timeout and body
/// limit, and the client authenticates as it does at the token endpoint. Revoking a refresh
/// token also revokes the access tokens of its grant at most servers.
///
/// Signing a user out: drop the [`TokenCache`](crate::TokenCache) and the clients that share
/// it, revoke the token its [store](crate::TokenCacheBuilder::store) holds, and delete what the
/// store saved (for a [`FileStore`](crate::FileStore), its file). Revoke what the store holds
/// rather than what the cache handed out last: a refresh that was under way may have saved a
/// newer token.
///
/// Errors name the revocation endpoint: `revocation endpoint rejected the request`, ...
///
/// ```
/// # use bytes::Bytes;
/// # use http::{Request, Response};
/// # use http_body_util::Full;
/// # use tower::service_fn;
/// use tower_oauth2::{ClientAuth, Revocation, Token, TokenClient};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_oauth2::Error> {
/// # let http = service_fn(|_: Request<Full<Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
/// # });
/// # let token = Token::bearer("access").with_refresh_token("refresh");
/// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
/// let revocation = Revocation::new(
///     "https://auth.example.com/oauth2/revoke",
///     &endpoint,
///     ClientAuth::none("my-cli"),
/// )?;
///
/// // On sign-out: the refresh token first, so no new access token can be had, then the
/// // access token.
/// revocation.revoke_token(&token).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Revocation {
    endpoint: Endpoint,
    auth: ClientAuth,
}

/// Which kind of token is being revoked: a hint that spares the server a search (RFC 7009
/// section 2.1).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    /// An access token.
    AccessToken,
    /// A refresh token.
    RefreshToken,
}

impl TokenTypeHint {
    fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

impl Revocation {
    /// Creates a client of the revocation endpoint at `url`, sending through `via`'s HTTP
    /// client, and authenticating with `auth`.
    ///
    /// Fails unless `url` is `https`, or `http` to a loopback host (or to any host when `via`
    /// was made [`with_plain_http`](TokenClient::with_plain_http)).
    pub fn new(url: &str, via: &TokenClient, auth: ClientAuth) -> Result<Self, Error> {
        Ok(Self {
            endpoint: via.sibling(url, "revocation endpoint")?,
            auth,
        })
    }

    /// Revokes `token`, of the kind `hint` says.
    ///
    /// A token the server does not know, or has already revoked, counts as revoked: the server
    /// answers 200 (RFC 7009 section 2.2).
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::Rejected`](crate::ErrorKind::Rejected) when the server refuses, such as
    ///   `unsupported_token_type` or `invalid_client`.
    /// - The other kinds of [`TokenClient::request`]; a 503 is
    ///   [transient](Error::is_transient) and may carry [`Error::retry_after`].
    pub async fn revoke(&self, token: &Secret, hint: TokenTypeHint) -> Result<(), Error> {
        let request = TokenRequest::without_grant_type()
            .secret_param("token", token.clone())
            .param("token_type_hint", hint.as_str());
        self.endpoint
            .post(&request, &self.auth, parse::parse_acknowledgement)
            .await
    }

    /// Revokes what `token` holds: its refresh token first, so that no new access token can be
    /// had, then its access token.
    ///
    /// Servers must be able to revoke refresh tokens, but not access tokens (RFC 7009 section
    /// 2.1). Once the refresh token is revoked, a server that answers `unsupported_token_type`
    /// for the access token counts as done: that token expires by itself.
    ///
    /// # Errors
    ///
    /// The errors of [`revoke`](Self::revoke); when the refresh token cannot be revoked, the
    /// access token is not tried.
    pub async fn revoke_token(&self, token: &Token) -> Result<(), Error> {
        let Some(refresh_token) = token.refresh_token() else {
            return self
                .revoke(token.access_token(), TokenTypeHint::AccessToken)
                .await;
        };
        self.revoke(refresh_token, TokenTypeHint::RefreshToken)
            .await?;
        match self
            .revoke(token.access_token(), TokenTypeHint::AccessToken)
            .await
        {
            Err(error) if error.oauth_error() == Some("unsupported_token_type") => Ok(()),
            outcome => outcome,
        }
    }
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocation")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .finish()
    }
}
