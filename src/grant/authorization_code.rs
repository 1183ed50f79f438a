//! The authorization code grant (RFC 6749 section 4.1) with PKCE (RFC 7636): a user signs in
//! at the authorization server and the client acts on their behalf.
//!
//! The grant has an interactive step no token source can run by itself, so it comes in two
//! parts: [`AuthorizationCode::authorize_url`] and [`AuthorizationCode::exchange`] run once, when
//! the user signs in; the token they yield seeds a [`TokenCache`](crate::TokenCache), which
//! then renews it with its refresh token, through this same grant as its
//! [`TokenSource`].

use std::fmt;

use url::Url;

use super::{
    Callback, PendingAuthorization,
    asks::{Asks, asks},
    par,
    pending::AuthorizationRequest,
    refresh_token::renew,
};
#[cfg(doc)]
use crate::ErrorKind;
use crate::{
    ClientAuth, Error, FetchContext, Secret, Token, TokenClient, TokenSetId, TokenSource,
    discovery::metadata_lacks, endpoint::Endpoint, origin::secure_url,
};

/// A [`TokenSource`] for the authorization code grant with PKCE (S256).
///
/// 1. [`authorize_url`](Self::authorize_url) makes the URL to send the user to, with a random
///    `state` and a PKCE challenge. Keep the [`PendingAuthorization`] it returns.
/// 2. The server redirects the user back to the redirect URI with a code, the `state` and,
///    when it supports RFC 9207, its `iss`.
/// 3. [`exchange`](Self::exchange) checks the `state` (and the `iss`, when the grant has an
///    [`issuer`](Self::issuer)) and trades the code for a token.
/// 4. [`TokenCache::seed`](crate::TokenCache::seed) installs the token (and saves it to the
///    cache's [store](crate::TokenCacheBuilder::store)).
///
/// From then on the cache renews the token with its refresh token, through this grant. The
/// interactive step never runs again by itself: when there is no refresh token, or the server
/// answers the refresh with `invalid_grant`, renewal fails with
/// [`ErrorKind::ReauthorizationRequired`] and the application decides when to ask the user
/// again. A cache whose [store](crate::TokenCacheBuilder::store) holds a token needs no
/// interactive step at start.
///
/// Command-line and desktop apps can let
/// [`LoopbackRedirect`](crate::grant::LoopbackRedirect) run steps 1 to 3.
///
/// With a [pushed authorization request endpoint](Self::pushed_authorization_request_endpoint)
/// (RFC 9126), step 1 is [`authorization_request`](Self::authorization_request): the request's
/// parameters go to the server first, with the client's authentication, and the URL carries
/// only `client_id` and the `request_uri` the server answered. A grant made by
/// [`discover`](Self::discover) for a server that requires it does this by itself.
///
/// ```
/// # use std::convert::Infallible;
/// # use bytes::Bytes;
/// # use http::{Request, Response};
/// # use http_body_util::Full;
/// # use tower::service_fn;
/// use tower_oauth2::{ClientAuth, TokenCache, TokenClient};
/// use tower_oauth2::grant::{AuthorizationCode, Callback};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_oauth2::Error> {
/// # let http = service_fn(|_: Request<Full<Bytes>>| async {
/// #     let body = r#"{"access_token":"a","token_type":"Bearer","expires_in":3600,"refresh_token":"r"}"#;
/// #     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
/// # });
/// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
/// let grant = AuthorizationCode::new(
///     endpoint,
///     ClientAuth::none("my-app"),
///     "https://auth.example.com/oauth2/authorize",
///     "https://app.example.com/callback",
/// )?
/// .scopes(["openid", "orders:read"]);
/// let cache = TokenCache::new(grant.clone());
///
/// // Send the user to `pending.url()`; keep `pending` for the callback.
/// let pending = grant.authorize_url();
/// # let query = format!("code=c0de&state={}", pending.state());
///
/// // The callback: https://app.example.com/callback?code=...&state=...
/// let callback = Callback::from_query(&query)?;
/// let token = grant.exchange(pending, callback).await?;
/// cache.seed(token).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AuthorizationCode {
    endpoint: TokenClient,
    auth: ClientAuth,
    authorize_url: Url,
    redirect_uri: String,
    /// Scopes, resources and audiences, and the authorization URL's extra parameters.
    asks: Asks,
    issuer: Option<String>,
    subject: Option<String>,
    /// Where authorization requests are pushed (RFC 9126), when they are.
    pushed_to: Option<Endpoint>,
}

impl AuthorizationCode {
    /// Creates the grant: `endpoint` is the token endpoint, `auth` the client authentication
    /// ([`ClientAuth::none`] for a public client such as a native app), `authorize_url` the
    /// authorization endpoint, and `redirect_uri` the registered URI the server sends the user
    /// back to.
    ///
    /// Fails with [`ErrorKind::Config`] unless `authorize_url` is `https` (or `http` on
    /// loopback) and `redirect_uri` is an absolute URI without a fragment.
    pub fn new(
        endpoint: TokenClient,
        auth: ClientAuth,
        authorize_url: &str,
        redirect_uri: &str,
    ) -> Result<Self, Error> {
        let authorize = secure_url(authorize_url, "the authorization endpoint URL", false)?;
        Self::with_authorize_url(endpoint, auth, authorize, redirect_uri)
    }

    fn with_authorize_url(
        endpoint: TokenClient,
        auth: ClientAuth,
        authorize: Url,
        redirect_uri: &str,
    ) -> Result<Self, Error> {
        let redirect = Url::parse(redirect_uri)
            .map_err(|_| Error::config("the redirect URI is not a valid URI"))?;
        if redirect.fragment().is_some() {
            return Err(Error::config("the redirect URI must not have a fragment"));
        }
        Ok(Self {
            endpoint,
            auth,
            authorize_url: authorize,
            redirect_uri: redirect_uri.to_owned(),
            asks: Asks::default(),
            issuer: None,
            subject: None,
            pushed_to: None,
        })
    }

    /// Creates the grant for the server `discovery` finds: its token endpoint (see
    /// [`TokenClient::discover`]) and its authorization endpoint, and, when its metadata says
    /// the server sends `iss` in authorization responses (RFC 9207), the discovered issuer as
    /// the one [`exchange`](Self::exchange) expects.
    ///
    /// When the metadata says `require_pushed_authorization_requests` (RFC 9126), the grant
    /// pushes its requests to the server's pushed authorization request endpoint: make them
    /// with [`authorization_request`](Self::authorization_request). A server that offers the
    /// endpoint without requiring it is not pushed to unless you ask, by passing
    /// [`ServerMetadata::pushed_authorization_request_endpoint`](crate::ServerMetadata::pushed_authorization_request_endpoint)
    /// to [`pushed_authorization_request_endpoint`](Self::pushed_authorization_request_endpoint).
    ///
    /// # Errors
    ///
    /// Those of [`Discovery::metadata`](crate::Discovery::metadata), and
    /// [`ErrorKind::InvalidResponse`] when the metadata names no authorization endpoint, or
    /// requires pushed authorization requests and names no endpoint for them;
    /// [`ErrorKind::Config`] for a bad `redirect_uri`.
    pub async fn discover(
        discovery: &crate::Discovery,
        auth: ClientAuth,
        redirect_uri: &str,
    ) -> Result<Self, Error> {
        let endpoint = TokenClient::discover(discovery).await?;
        let metadata = discovery.metadata().await?;
        let authorize_url = metadata
            .authorization_endpoint()
            .ok_or_else(|| metadata_lacks("the metadata has no `authorization_endpoint`"))?;
        let authorize = secure_url(
            authorize_url,
            "the authorization endpoint URL",
            discovery.plain_http(),
        )?;
        let mut grant = Self::with_authorize_url(endpoint, auth, authorize, redirect_uri)?;
        if metadata.require_pushed_authorization_requests() {
            let url = metadata
                .pushed_authorization_request_endpoint()
                .ok_or_else(|| {
                    metadata_lacks(
                        "the metadata requires pushed authorization requests and has no \
                         `pushed_authorization_request_endpoint`",
                    )
                })?;
            grant = grant.pushed_authorization_request_endpoint(url)?;
        }
        if metadata.authorization_response_iss_parameter_supported() {
            grant = grant.issuer(metadata.issuer());
        }
        Ok(grant)
    }

    /// Pushes every authorization request to the server's pushed authorization request
    /// endpoint at `url` (RFC 9126), through the HTTP client of the grant's token endpoint,
    /// with its timeout and body limit, no redirects, and the grant's client authentication
    /// (any [`ClientAuth`], assertions and mutual TLS included).
    /// [`authorization_request`](Self::authorization_request) then makes a URL that carries
    /// only `client_id` and the `request_uri` the server answered.
    ///
    /// Fails with [`ErrorKind::Config`] unless `url` is `https`, or `http` to a loopback host
    /// (or to any host when the token endpoint's client was made
    /// [`with_plain_http`](TokenClient::with_plain_http)).
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use http::{Request, Response, StatusCode};
    /// # use http_body_util::{BodyExt, Full};
    /// # use tower::service_fn;
    /// use tower_oauth2::{ClientAuth, TokenClient, grant::AuthorizationCode};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_oauth2::Error> {
    /// # let http = service_fn(|_: Request<Full<Bytes>>| async {
    /// #     let body = r#"{"request_uri":"urn:ietf:params:oauth:request_uri:x1","expires_in":60}"#;
    /// #     let mut response = Response::new(Full::new(Bytes::from(body)));
    /// #     *response.status_mut() = StatusCode::CREATED;
    /// #     Ok::<_, std::convert::Infallible>(response)
    /// # });
    /// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
    /// let grant = AuthorizationCode::new(
    ///     endpoint,
    ///     ClientAuth::basic("my-web-app", "my-secret"),
    ///     "https://auth.example.com/oauth2/authorize",
    ///     "https://app.example.com/callback",
    /// )?
    /// .scopes(["openid"])
    /// .pushed_authorization_request_endpoint("https://auth.example.com/oauth2/par")?;
    ///
    /// let pending = grant.authorization_request().await?;
    /// assert_eq!(
    ///     pending.url(),
    ///     "https://auth.example.com/oauth2/authorize?client_id=my-web-app\
    ///      &request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax1"
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn pushed_authorization_request_endpoint(mut self, url: &str) -> Result<Self, Error> {
        self.pushed_to = Some(self.endpoint.sibling(url, par::NAME)?);
        Ok(self)
    }

    asks!(
        asks,
        first: "the authorization request",
        every: "the authorization request, the code exchange and every refresh",
        scopes: "Renewals ask for the scopes of the original grant.",
    );

    /// Expects authorization responses to name `issuer` in their `iss` parameter (RFC 9207).
    ///
    /// Set it when the authorization server sends `iss`: its metadata says
    /// `"authorization_response_iss_parameter_supported": true`, and `issuer` is the metadata's
    /// `issuer`. An app that signs users in at more than one server then cannot be tricked into
    /// sending a code from one server to another's token endpoint (a mix-up attack): a
    /// response whose `iss` is missing or different fails with [`ErrorKind::IssuerMismatch`]
    /// before anything is sent. The comparison is exact, character for character.
    ///
    /// The check protects only an app that exchanges each response with the grant that made
    /// its request: one that picks the grant by the response's `iss` lets the attacker pick.
    /// Without an issuer, `iss` is not checked.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Binds the tokens to `key` (DPoP, RFC 9449): the code exchange and every refresh carry a
    /// proof, as with [`TokenClient::dpop`], which this sets on the grant's token client. For
    /// a grant made with [`discover`](Self::discover), whose token client is its own.
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    #[must_use]
    pub fn dpop(mut self, key: &crate::DpopKey) -> Self {
        self.endpoint = self.endpoint.dpop(key);
        self
    }

    /// Names the user these tokens are for, so that caches in other processes may share them
    /// through a fleet (`TokenCacheBuilder::fleet`). Tokens of different subjects are never
    /// shared; without a subject, they are never shared at all.
    #[must_use]
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Returns the redirect URI.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Makes the URL to send the user to: `response_type=code`, `client_id`, `redirect_uri`,
    /// `scope`, a random `state`, the S256 `code_challenge` of a new PKCE verifier, and the
    /// [extra parameters](Self::param). Keep the returned [`PendingAuthorization`] until the
    /// callback arrives.
    ///
    /// It never pushes: for a grant with a
    /// [pushed authorization request endpoint](Self::pushed_authorization_request_endpoint),
    /// use [`authorization_request`](Self::authorization_request), or a server that requires
    /// pushed requests refuses this URL.
    pub fn authorize_url(&self) -> PendingAuthorization {
        if self.pushed_to.is_some() {
            tracing::warn!(
                "authorize_url makes a URL that is not pushed, for a grant that pushes its \
                 authorization requests; authorization_request pushes it"
            );
        }
        let request = AuthorizationRequest::new(self.redirect_uri.clone());
        request.in_url(
            self.authorize_url.clone(),
            self.auth.client_id(),
            &self.asks,
        )
    }

    /// Makes the authorization request and returns the URL to send the user to, with what the
    /// callback must be checked against.
    ///
    /// A grant with a [pushed authorization request
    /// endpoint](Self::pushed_authorization_request_endpoint) first posts the request's
    /// parameters there (RFC 9126), authenticated as at the token endpoint, and the URL it
    /// returns carries only `client_id` and the `request_uri` the server answered, good for
    /// [`PendingAuthorization::expires_in`]. Any other grant makes the URL of
    /// [`authorize_url`](Self::authorize_url), and sends nothing.
    ///
    /// # Errors
    ///
    /// Only when pushing, naming the `pushed authorization request endpoint`:
    /// - [`ErrorKind::Rejected`] when the server refuses the request with an OAuth error,
    ///   such as `invalid_client` for a wrong client credential or `invalid_request`;
    /// - [`ErrorKind::InvalidResponse`] when its answer has no usable `request_uri` or no
    ///   positive `expires_in`;
    /// - [`ErrorKind::UnexpectedResponse`] for a redirect (never followed) or another answer
    ///   that is not an OAuth error; [`ErrorKind::BodyTooLarge`], [`ErrorKind::Timeout`] and
    ///   [`ErrorKind::Transport`] as for token requests.
    pub async fn authorization_request(&self) -> Result<PendingAuthorization, Error> {
        self.authorization_request_to(self.redirect_uri.clone())
            .await
    }

    /// Like [`authorization_request`](Self::authorization_request), with another redirect
    /// URI, such as a loopback one with the port a listener was given.
    pub(crate) async fn authorization_request_to(
        &self,
        redirect_uri: String,
    ) -> Result<PendingAuthorization, Error> {
        let request = AuthorizationRequest::new(redirect_uri);
        let Some(endpoint) = &self.pushed_to else {
            return Ok(request.in_url(
                self.authorize_url.clone(),
                self.auth.client_id(),
                &self.asks,
            ));
        };
        let pushed = par::push(endpoint, &self.auth, &request.parameters(&self.asks)).await?;
        Ok(request.pushed(self.authorize_url.clone(), self.auth.client_id(), pushed))
    }

    /// Trades the code of `callback` for a token: checks that its `state` is `pending`'s (and
    /// its `iss` the grant's [`issuer`](Self::issuer), when set), then posts `grant_type=authorization_code` with the `code`, the `redirect_uri`, the PKCE
    /// `code_verifier` and the client authentication.
    ///
    /// Seed a [`TokenCache`](crate::TokenCache) with the token it returns.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::StateMismatch`] when the states differ; nothing is sent.
    /// - [`ErrorKind::IssuerMismatch`] when the grant has an [`issuer`](Self::issuer) and the
    ///   callback's `iss` is missing or another; nothing is sent.
    /// - [`ErrorKind::AuthorizationFailed`] when the callback, having passed those checks,
    ///   carries the server's error instead of a code (such as `access_denied`).
    /// - [`ErrorKind::Rejected`] when the server refuses the code, for example `invalid_grant`
    ///   for a code that expired, was already used, or does not match the verifier.
    /// - The other kinds of [`TokenClient::request`].
    pub async fn exchange(
        &self,
        pending: PendingAuthorization,
        callback: Callback,
    ) -> Result<Token, Error> {
        let code = self.verify(callback, pending.state())?;
        self.redeem(pending, code).await
    }

    /// Checks that `callback` answers the request whose state is `state`, from the expected
    /// server, and returns its code.
    pub(crate) fn verify(&self, callback: Callback, state: &str) -> Result<Secret, Error> {
        callback.verify(state, self.issuer.as_deref())
    }

    /// Trades a [verified](Self::verify) code for a token.
    pub(crate) async fn redeem(
        &self,
        pending: PendingAuthorization,
        code: Secret,
    ) -> Result<Token, Error> {
        let request = pending.code_exchange(code, &self.redirect_uri, &self.asks);
        self.endpoint.request(&request, &self.auth).await
    }
}

impl TokenSource for AuthorizationCode {
    /// Renews the token with the refresh token of the one it replaces.
    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, Error> {
        let sign_in = "exchange an authorization code";
        renew(
            cx,
            &self.endpoint,
            &self.auth,
            &self.asks.refresh(),
            sign_in,
        )
        .await
    }

    fn grant_type(&self) -> &'static str {
        "authorization_code"
    }

    fn identity(&self) -> Option<TokenSetId> {
        let subject = self.subject.as_deref()?;
        let client_id = self.auth.client_id();
        Some(
            self.asks
                .token_set(&self.endpoint, client_id, "authorization_code", subject),
        )
    }
}

impl fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCode")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .field("authorize_url", &self.authorize_url.as_str())
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.asks.scopes)
            .field("params", &self.asks.params)
            .field("targets", &self.asks.targets)
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("pushed_to", &self.pushed_to)
            .finish()
    }
}
