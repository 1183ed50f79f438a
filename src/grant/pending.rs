//! An authorization request between the user's departure to the authorization server and
//! their return: what the callback must be checked against.

use std::{fmt, time::Duration};

use super::PkceVerifier;

/// An authorization request on its way: the URL to send the user to, and what the callback
/// must be checked against. Made by
/// [`AuthorizationCode::authorization_request`](super::AuthorizationCode::authorization_request)
/// or [`AuthorizationCode::authorize_url`](super::AuthorizationCode::authorize_url), used up
/// by [`AuthorizationCode::exchange`](super::AuthorizationCode::exchange).
///
/// Not `Clone`: one request, one exchange. A web app that handles the callback in another
/// request keeps [`state`](Self::state) and the verifier's
/// [`expose`](PkceVerifier::expose)d value in a server-side session, and rebuilds this with
/// [`resume`](Self::resume).
pub struct PendingAuthorization {
    pub(super) url: String,
    pub(super) state: String,
    pub(super) verifier: PkceVerifier,
    /// `None` when resumed: the grant's own redirect URI.
    pub(super) redirect_uri: Option<String>,
    /// For a pushed request, how long its `request_uri` is good for.
    pub(super) expires_in: Option<Duration>,
}

impl PendingAuthorization {
    /// Rebuilds a pending request from its `state` and PKCE verifier, for a callback handled
    /// elsewhere than the request was made. Its redirect URI is the grant's.
    pub fn resume(state: impl Into<String>, verifier: PkceVerifier) -> Self {
        Self {
            url: String::new(),
            state: state.into(),
            verifier,
            redirect_uri: None,
            expires_in: None,
        }
    }

    /// Returns the URL to send the user to (empty for a [resumed](Self::resume) request).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Returns the `state` the callback must carry.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// Returns the PKCE verifier.
    pub fn verifier(&self) -> &PkceVerifier {
        &self.verifier
    }

    /// Returns the redirect URI sent, if it is not the grant's own.
    pub fn redirect_uri(&self) -> Option<&str> {
        self.redirect_uri.as_deref()
    }

    /// Returns how long the server keeps a pushed request (RFC 9126 `expires_in`), counted
    /// from its answer: the user must reach the [`url`](Self::url) within it. `None` for a
    /// request that was not pushed.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }
}

impl fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The state guards the callback like a password for its few minutes, and the URL
        // carries it: only the URL's part before its query is shown.
        let url = match self.url.split_once('?') {
            Some((before, _)) => format!("{before}?[redacted]"),
            None => self.url.clone(),
        };
        f.debug_struct("PendingAuthorization")
            .field("url", &url)
            .field("state", &"[redacted]")
            .field("verifier", &self.verifier)
            .field("redirect_uri", &self.redirect_uri)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}
