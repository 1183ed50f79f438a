//! What kind of failure an error is, and the few words a message starts with for each kind.

use std::fmt;

/// What kind of failure an [`Error`](super::Error) is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The token endpoint refused the request with an OAuth error: an RFC 6749 section 5.2 body
    /// (`{"error": "invalid_client", ...}`) or a vendor error envelope
    /// (`{"meta": {..}, "errors": [{"httpcode": 400, "message": ".."}]}`).
    Rejected,
    /// The token endpoint answered with a status and body that are not an OAuth error, such as an
    /// HTML error page or an empty 502.
    UnexpectedResponse,
    /// The token endpoint answered 200 but the body is not a usable bearer token: not JSON, no
    /// usable `access_token`, a `token_type` other than `bearer` (or `DPoP` with a DPoP key),
    /// or a `refresh_token` that is not a string. A malformed `expires_in`, `scope` or
    /// `id_token` is left out with a warning instead.
    InvalidResponse,
    /// The response body was larger than the configured limit.
    BodyTooLarge,
    /// The token endpoint did not answer completely within the configured timeout.
    Timeout,
    /// The HTTP client failed to reach the token endpoint (connection refused, reset, TLS).
    Transport,
    /// The token cannot be renewed without the user taking part again, for example an
    /// authorization-code grant that has no refresh token.
    ReauthorizationRequired,
    /// The configuration cannot work, for example a token endpoint URL that is not `https`.
    Config,
    /// A user-defined [`TokenSource`](crate::TokenSource) failed.
    Source,
    /// The task that was fetching the token stopped before it finished, for example because the
    /// runtime shut down or the token source panicked.
    Interrupted,
    /// A [`TokenStore`](crate::TokenStore) could not load or save a token.
    Store,
    /// The request's origin may not receive the token (see
    /// [`OAuth2Layer::allow_origin`](crate::OAuth2Layer::allow_origin)); the message names the
    /// setting that allows it. Nothing was sent.
    OriginNotAllowed,
    /// The `state` of an authorization response is not the one its request carried: the
    /// response belongs to another request, or was forged (cross-site request forgery). Nothing
    /// was sent to the token endpoint.
    StateMismatch,
    /// The authorization server is not the one expected: an authorization response names
    /// another in its `iss` parameter, or none although the grant expects one (RFC 9207), or
    /// the server's metadata names another `issuer` than the configured one (RFC 8414 section
    /// 3.3). The response or document may come from a server the user was steered to (a
    /// mix-up attack). Nothing was sent to the token endpoint.
    IssuerMismatch,
    /// The authorization step did not yield a code: the server redirected back with an error
    /// (such as `access_denied`; see [`oauth_error`](super::Error::oauth_error)), the redirect
    /// had no code, or no redirect arrived in time.
    AuthorizationFailed,
}

/// The kind in a few words. An [`Error`](super::Error)'s message starts with them, naming the
/// endpoint (such as "token endpoint timed out").
impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rejected => "endpoint rejected the request",
            Self::UnexpectedResponse => "unexpected response from endpoint",
            Self::InvalidResponse => "invalid token response",
            Self::BodyTooLarge => "endpoint response body too large",
            Self::Timeout => "endpoint timed out",
            Self::Transport => "could not reach endpoint",
            Self::ReauthorizationRequired => "re-authorization required",
            Self::Config => "invalid configuration",
            Self::Source => "token source failed",
            Self::Interrupted => "token fetch interrupted",
            Self::OriginNotAllowed => "origin not allowed",
            Self::Store => "token store failed",
            Self::StateMismatch => "authorization response state does not match the request",
            Self::IssuerMismatch => "issuer is not the expected authorization server",
            Self::AuthorizationFailed => "authorization failed",
        })
    }
}
