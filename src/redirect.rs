//! A redirect policy for tower-http's `FollowRedirect` below [`OAuth2Layer`](crate::OAuth2Layer)
//! with DPoP-bound tokens.

use http::Request;
use tower_http::follow_redirect::policy::{Action, Attempt, Policy, Standard};

use crate::dpop::DPOP;

/// Keeps DPoP proofs off redirected hops, then follows the policy `P` it wraps
/// (tower-http's [`Standard`] by default).
///
/// tower-http's policies remove `Authorization` from a hop to another origin but leave the
/// `DPoP` header, so the proof made for the first URL would travel with the request to
/// wherever a redirect points. A proof names one method and one URL (RFC 9449 section 4.2):
/// no hop can use it, so this policy removes it from every hop, to any origin.
///
/// A DPoP-bound request that meets a redirect therefore reaches the new URL without a proof,
/// and an API that wants one refuses it; the layer returns that refusal as it came (with the
/// `tower-http` feature it can tell the answer came from elsewhere). To follow redirects with
/// a proof for each hop, put `FollowRedirectLayer` above `OAuth2Layer` instead and name the
/// origins tokens may go to with [`OAuth2Layer::allow_origin`](crate::OAuth2Layer::allow_origin).
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_http::follow_redirect::FollowRedirectLayer;
/// use tower_oauth2::{OAuth2Layer, TokenCache, WithoutDpopOnRedirect};
/// # fn stack(cache: TokenCache) {
/// let layers = ServiceBuilder::new()
///     .layer(OAuth2Layer::new(cache))
///     .layer(FollowRedirectLayer::with_policy(WithoutDpopOnRedirect::default()));
/// # let _ = layers;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct WithoutDpopOnRedirect<P = Standard> {
    policy: P,
    redirected: bool,
}

impl<P> WithoutDpopOnRedirect<P> {
    /// Wraps `policy`, which still decides whether each redirect is followed.
    pub fn new(policy: P) -> Self {
        Self {
            policy,
            redirected: false,
        }
    }
}

impl Default for WithoutDpopOnRedirect {
    /// Around tower-http's [`Standard`]: at most 20 redirects, `Authorization` and cookies
    /// removed on a hop to another origin.
    fn default() -> Self {
        Self::new(Standard::default())
    }
}

impl<B, E, P: Policy<B, E>> Policy<B, E> for WithoutDpopOnRedirect<P> {
    fn redirect(&mut self, attempt: &Attempt<'_>) -> Result<Action, E> {
        let action = self.policy.redirect(attempt)?;
        self.redirected |= matches!(action, Action::Follow);
        Ok(action)
    }

    fn on_request(&mut self, request: &mut Request<B>) {
        // tower-http calls this for the caller's request too: its proof stays.
        if self.redirected {
            request.headers_mut().remove(DPOP);
        }
        self.policy.on_request(request);
    }

    fn clone_body(&self, body: &B) -> Option<B> {
        self.policy.clone_body(body)
    }
}
