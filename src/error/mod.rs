//! The crate's one error type: the opaque [`Error`], how the crate builds one, and how it
//! shows. Its kinds are in `kind.rs`; the text a message may carry is made safe in `text.rs`.

mod kind;
mod text;

use std::{error::Error as StdError, fmt, sync::Arc, time::Duration};

use http::StatusCode;

pub use self::kind::ErrorKind;
pub(crate) use self::text::{sanitize, scrub, seconds};
use crate::Token;

/// A type-erased error, as tower services return.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// An error from obtaining or attaching a token.
///
/// One refresh that fails is reported to every request that waited for it, so the error is cheap
/// to clone (one reference count). Its [`kind`](Error::kind) says what went wrong; when the token
/// endpoint answered, [`status`](Error::status), [`oauth_error`](Error::oauth_error) and
/// [`description`](Error::description) say what it answered.
///
/// Neither `Display` nor `Debug` ever shows a secret: the server's text is trimmed to a short
/// excerpt, stripped of control characters and of every secret the request carried.
///
/// At the [`OAuth2`](crate::OAuth2) service boundary the error is a [`BoxError`]; recover this type
/// with `downcast_ref::<tower_oauth2::Error>()`.
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ErrorKind,
    /// Which endpoint of the authorization server answered (or did not), such as "token
    /// endpoint"; `None` reads as the token endpoint.
    endpoint: Option<&'static str>,
    status: Option<StatusCode>,
    oauth: Option<OAuthError>,
    detail: Option<Box<str>>,
    retry_after: Option<Duration>,
    source: Option<Arc<dyn StdError + Send + Sync>>,
    /// What a 2xx token answer that could not be used still carried: its refresh token, with
    /// an access token that cannot be sent. Boxed, so errors without one stay small.
    salvaged: Option<Box<Token>>,
}

#[derive(Debug, Clone)]
struct OAuthError {
    code: Option<Box<str>>,
    description: Option<Box<str>>,
    uri: Option<Box<str>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Self {
        Self::from_inner(Inner {
            kind,
            endpoint: None,
            status: None,
            oauth: None,
            detail: None,
            retry_after: None,
            source: None,
            salvaged: None,
        })
    }

    /// A configuration that cannot work; `detail` says why.
    pub(crate) fn config(detail: &'static str) -> Self {
        Self::new(ErrorKind::Config).with_detail(detail)
    }

    fn from_inner(inner: Inner) -> Self {
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Creates an error for a user-defined [`TokenSource`](crate::TokenSource) that failed.
    ///
    /// The error's `Display` does not repeat `source`'s; it is reachable through
    /// [`std::error::Error::source`].
    pub fn source_failed(source: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Source).with_source(source.into())
    }

    /// Creates an error for a [`TokenStore`](crate::TokenStore) that could not load or save.
    pub fn store_failed(source: impl Into<BoxError>) -> Self {
        Self::new(ErrorKind::Store).with_source(source.into())
    }

    // Not generic: a generic `Into<BoxError>` here trips the `Send` check of async callers.
    pub(crate) fn with_source(self, source: BoxError) -> Self {
        self.map(|inner| inner.source = Some(Arc::from(source)))
    }

    /// Changes what kind of failure this is, keeping what the server answered.
    pub(crate) fn with_kind(self, kind: ErrorKind) -> Self {
        self.map(|inner| inner.kind = kind)
    }

    /// Names the endpoint the error came from, for its message.
    pub(crate) fn at(self, endpoint: &'static str) -> Self {
        self.map(|inner| inner.endpoint = Some(endpoint))
    }

    /// Names the endpoint unless the error names one already: a credential fetched from
    /// another endpoint (a CI runner's token service) keeps that endpoint's name.
    pub(crate) fn or_at(self, endpoint: &'static str) -> Self {
        if self.inner.endpoint.is_some() {
            return self;
        }
        self.at(endpoint)
    }

    pub(crate) fn with_status(self, status: StatusCode) -> Self {
        self.map(|inner| inner.status = Some(status))
    }

    /// A short, already sanitized note that `Display` prints after the kind.
    pub(crate) fn with_detail(self, detail: impl Into<Box<str>>) -> Self {
        self.map(|inner| inner.detail = Some(detail.into()))
    }

    /// What `with_detail` set: for an error that another error's detail quotes.
    #[cfg(feature = "jwt")]
    pub(crate) fn detail(&self) -> Option<&str> {
        self.inner.detail.as_deref()
    }

    pub(crate) fn with_retry_after(self, retry_after: Option<Duration>) -> Self {
        self.map(|inner| inner.retry_after = retry_after)
    }

    /// Records an OAuth error body. All three strings must already be sanitized.
    pub(crate) fn with_oauth(
        self,
        code: Option<String>,
        description: Option<String>,
        uri: Option<String>,
    ) -> Self {
        self.map(|inner| {
            inner.oauth = Some(OAuthError {
                code: code.map(Into::into),
                description: description.map(Into::into),
                uri: uri.map(Into::into),
            })
        })
    }

    /// Attaches what an unusable 2xx token answer still carried, so that a rotated refresh
    /// token is not lost with the answer: `token` has an empty access token, which the cache
    /// never sends, and a refresh token to save.
    pub(crate) fn with_salvaged(self, token: Token) -> Self {
        self.map(|inner| inner.salvaged = Some(Box::new(token)))
    }

    /// Returns the token [salvaged](Self::with_salvaged) from an unusable 2xx token answer:
    /// its refresh token (and id token) are the server's; its access token is empty and its
    /// lifetime zero.
    pub(crate) fn salvaged(&self) -> Option<&Token> {
        self.inner.salvaged.as_deref()
    }

    fn map(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            kind: shared.kind,
            endpoint: shared.endpoint,
            status: shared.status,
            oauth: shared.oauth.clone(),
            detail: shared.detail.clone(),
            retry_after: shared.retry_after,
            source: shared.source.clone(),
            salvaged: shared.salvaged.clone(),
        });
        f(&mut inner);
        Self::from_inner(inner)
    }

    /// Returns what kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// Returns the HTTP status of the token endpoint's answer, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// Returns the OAuth error code (`invalid_client`, `invalid_grant`, ...) of an RFC 6749
    /// section 5.2 error body. A vendor error envelope has no code, so this is `None` for it.
    pub fn oauth_error(&self) -> Option<&str> {
        self.inner.oauth.as_ref()?.code.as_deref()
    }

    /// Returns the server's description of the error: `error_description` of an RFC 6749 body,
    /// or the first `message` of a vendor error envelope, sanitized.
    pub fn description(&self) -> Option<&str> {
        self.inner.oauth.as_ref()?.description.as_deref()
    }

    /// Returns the `error_uri` of an RFC 6749 error body.
    pub fn error_uri(&self) -> Option<&str> {
        self.inner.oauth.as_ref()?.uri.as_deref()
    }

    /// Returns how long the token endpoint asked clients to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// Returns `true` when trying again later may succeed: timeouts, transport failures, an
    /// interrupted fetch, 5xx and 429 answers, and the OAuth errors `temporarily_unavailable`,
    /// `slow_down` and `server_error`.
    ///
    /// Other errors, such as `invalid_client` or `invalid_grant`, will fail the same way until
    /// the configuration or the credentials change.
    pub fn is_transient(&self) -> bool {
        match self.kind() {
            ErrorKind::Timeout | ErrorKind::Transport | ErrorKind::Interrupted => true,
            ErrorKind::Rejected | ErrorKind::UnexpectedResponse => {
                let transient_code = matches!(
                    self.oauth_error(),
                    Some("temporarily_unavailable" | "slow_down" | "server_error")
                );
                let transient_status = self.status().is_some_and(|status| {
                    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
                });
                transient_code || transient_status
            }
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let name = inner.endpoint.unwrap_or("token endpoint");
        match inner.kind {
            ErrorKind::Rejected => write!(f, "{name} rejected the request")?,
            ErrorKind::UnexpectedResponse => write!(f, "unexpected response from {name}")?,
            ErrorKind::BodyTooLarge => write!(f, "{name} response body too large")?,
            ErrorKind::Timeout => write!(f, "{name} timed out")?,
            ErrorKind::Transport => write!(f, "could not reach {name}")?,
            ErrorKind::InvalidResponse if inner.endpoint.is_some_and(|e| e != "token endpoint") => {
                write!(f, "invalid response from {name}")?;
            }
            kind => fmt::Display::fmt(&kind, f)?,
        }
        if let Some(status) = inner.status {
            write!(f, " (HTTP {})", status.as_u16())?;
        }
        if let Some(oauth) = &inner.oauth {
            match (&oauth.code, &oauth.description) {
                (Some(code), Some(description)) => write!(f, ": {code}: {description}")?,
                (Some(code), None) => write!(f, ": {code}")?,
                (None, Some(description)) => write!(f, ": {description}")?,
                (None, None) => {}
            }
        }
        if let Some(detail) = &inner.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        let mut debug = f.debug_struct("Error");
        debug.field("kind", &inner.kind);
        if let Some(endpoint) = inner.endpoint {
            debug.field("endpoint", &endpoint);
        }
        if let Some(status) = inner.status {
            debug.field("status", &status);
        }
        if let Some(oauth) = &inner.oauth {
            debug.field("oauth_error", &oauth.code);
            debug.field("description", &oauth.description);
            debug.field("error_uri", &oauth.uri);
        }
        if let Some(detail) = &inner.detail {
            debug.field("detail", detail);
        }
        if let Some(retry_after) = inner.retry_after {
            debug.field("retry_after", &retry_after);
        }
        if let Some(source) = &inner.source {
            debug.field("source", source);
        }
        // The token's secrets are redacted by its own `Debug`, but even their shape stays out.
        if inner.salvaged.is_some() {
            debug.field("salvaged", &true);
        }
        debug.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        let source: &(dyn StdError + 'static) = self.inner.source.as_deref()?;
        Some(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_errors_message_names_its_endpoint_in_its_kinds_words() {
        let error = Error::new(ErrorKind::Timeout).with_detail("after 30 s");
        assert_eq!(ErrorKind::Timeout.to_string(), "endpoint timed out");
        assert_eq!(error.to_string(), "token endpoint timed out: after 30 s");
        let revocation = error.at("revocation endpoint");
        assert_eq!(
            revocation.to_string(),
            "revocation endpoint timed out: after 30 s"
        );
    }

    #[test]
    fn error_is_send_sync_and_one_pointer_wide() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn display_names_kind_status_code_and_description() {
        let error = Error::new(ErrorKind::Rejected)
            .with_status(StatusCode::UNAUTHORIZED)
            .with_oauth(
                Some("invalid_client".into()),
                Some("bad secret".into()),
                None,
            );
        assert_eq!(
            error.to_string(),
            "token endpoint rejected the request (HTTP 401): invalid_client: bad secret"
        );
        assert!(!error.is_transient());
    }

    #[test]
    fn server_errors_and_slow_down_are_transient() {
        let unavailable =
            Error::new(ErrorKind::UnexpectedResponse).with_status(StatusCode::SERVICE_UNAVAILABLE);
        let slow_down = Error::new(ErrorKind::Rejected)
            .with_status(StatusCode::BAD_REQUEST)
            .with_oauth(Some("slow_down".into()), None, None);
        assert!(unavailable.is_transient());
        assert!(slow_down.is_transient());
        assert!(Error::new(ErrorKind::Timeout).is_transient());
        assert!(!Error::new(ErrorKind::InvalidResponse).is_transient());
    }

    #[test]
    fn a_salvaged_token_survives_changes_to_the_error_and_never_shows() {
        let token = Token::bearer("")
            .with_expires_in(Duration::ZERO)
            .with_refresh_token("sentinel-refresh");
        let error = Error::new(ErrorKind::InvalidResponse)
            .with_detail("unsupported `token_type` `mac`")
            .with_salvaged(token);
        // A shared error is copied by the next change; the copy keeps the token.
        let shared = error.clone();
        let changed = error.with_status(StatusCode::OK).at("token endpoint");
        for error in [&shared, &changed] {
            let salvaged = error.salvaged().unwrap();
            assert_eq!(
                salvaged.refresh_token().map(crate::Secret::expose),
                Some("sentinel-refresh")
            );
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("sentinel"), "{shown}");
            assert!(format!("{error:?}").contains("salvaged: true"), "{error:?}");
        }
        assert_eq!(
            changed.to_string(),
            "invalid token response (HTTP 200): unsupported `token_type` `mac`"
        );
        assert!(Error::new(ErrorKind::Timeout).salvaged().is_none());
    }

    #[test]
    fn sources_are_reachable_but_not_displayed() {
        let error = Error::source_failed("metadata server said no");
        assert_eq!(error.to_string(), "token source failed");
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("metadata server said no")
        );
    }
}
