//! An authorization request: the parameters it carries to the authorization server, and,
//! between the user's departure and their return, what the callback must be checked against.

use std::{borrow::Cow, fmt, time::Duration};

use url::Url;

use super::{PkceVerifier, asks::Asks, par::Pushed};
use crate::{Secret, TokenRequest, secret::random_token};

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

impl PendingAuthorization {
    /// The form of the code exchange (RFC 6749 section 4.1.3, RFC 7636 section 4.5): `code`,
    /// the redirect URI the request sent (`default`, the grant's, when resumed), the PKCE
    /// verifier, and the resources and audiences of `asks`.
    pub(super) fn code_exchange(self, code: Secret, default: &str, asks: &Asks) -> TokenRequest {
        let redirect_uri = self.redirect_uri.as_deref().unwrap_or(default);
        let request = TokenRequest::new("authorization_code")
            .secret_param("code", code)
            .param("redirect_uri", redirect_uri)
            .secret_param("code_verifier", self.verifier.expose());
        asks.with_targets(request)
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

/// One authorization request as it is made: a new random `state` and PKCE verifier, for the
/// redirect URI the callback comes back to.
pub(super) struct AuthorizationRequest {
    redirect_uri: String,
    state: String,
    verifier: PkceVerifier,
    challenge: String,
}

impl AuthorizationRequest {
    pub(super) fn new(redirect_uri: String) -> Self {
        let (state, verifier) = (random_token(), PkceVerifier::generate());
        let challenge = verifier.challenge();
        Self {
            redirect_uri,
            state,
            verifier,
            challenge,
        }
    }

    /// The request's parameters but `client_id`, `response_type` first, with what `asks`
    /// asks for.
    pub(super) fn parameters<'a>(&'a self, asks: &'a Asks) -> Vec<(&'a str, Cow<'a, str>)> {
        let mut params = vec![
            ("response_type", "code".into()),
            ("redirect_uri", self.redirect_uri.as_str().into()),
        ];
        if !asks.scopes.is_empty() {
            params.push(("scope", asks.scopes.join(" ").into()));
        }
        params.extend([
            ("state", self.state.as_str().into()),
            ("code_challenge", self.challenge.as_str().into()),
            ("code_challenge_method", "S256".into()),
        ]);
        let extra = asks.targets.iter().map(|(name, value)| (*name, value));
        let extra = extra.chain(
            asks.params
                .iter()
                .map(|(name, value)| (name.as_str(), value)),
        );
        params.extend(extra.map(|(name, value)| (name, value.as_str().into())));
        params
    }

    /// The request with every parameter in the query of `authorize_url`, for `client_id`.
    pub(super) fn in_url(
        self,
        mut authorize_url: Url,
        client_id: &str,
        asks: &Asks,
    ) -> PendingAuthorization {
        {
            let mut params = self.parameters(asks);
            // After `response_type`, as this crate always sent it.
            params.insert(1, ("client_id", client_id.into()));
            authorize_url.query_pairs_mut().extend_pairs(&params);
        }
        self.pending(authorize_url, None)
    }

    /// The request once `pushed` (RFC 9126): the query of `authorize_url` carries only
    /// `client_id` and the `request_uri` the server answered.
    pub(super) fn pushed(
        self,
        mut authorize_url: Url,
        client_id: &str,
        pushed: Pushed,
    ) -> PendingAuthorization {
        authorize_url
            .query_pairs_mut()
            .append_pair("client_id", client_id)
            .append_pair("request_uri", &pushed.request_uri);
        self.pending(authorize_url, Some(pushed.expires_in))
    }

    fn pending(self, url: Url, expires_in: Option<Duration>) -> PendingAuthorization {
        PendingAuthorization {
            url: url.into(),
            state: self.state,
            verifier: self.verifier,
            redirect_uri: Some(self.redirect_uri),
            expires_in,
        }
    }
}
