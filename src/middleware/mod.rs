//! The middleware: a bearer token on every request, and one retry after a 401.

pub(crate) mod challenge;
mod future;
mod protocol;
mod replay;
mod request;
#[cfg(any(feature = "reqwest", feature = "reqwest-0.12"))]
mod reqwest;
mod resend;
mod routes;
mod snapshot;
mod state;

use std::{
    fmt,
    task::{Context, Poll},
};

use http::header::AUTHORIZATION;
use tower_layer::Layer;
use tower_service::Service;

pub use self::{
    future::ResponseFuture,
    replay::{CloneBodies, EmptyBodies, NoReplay, ReplayPolicy},
    request::{OAuth2Request, OAuth2Response},
};
use self::{
    protocol::{Start, Tokens},
    request::Target,
    routes::Routes,
    state::{Dpop, Parked, Retry},
};
use crate::{BoxError, Error, TokenCache, cache::Ticket, origin::Origins};

/// Wraps a service in [`OAuth2`]: every request gets `Authorization: Bearer <token>` from a
/// shared [`TokenCache`] (`DPoP <token>` and a proof for a DPoP-bound token), and a 401 answer
/// is retried once with a refreshed token.
///
/// By default the token goes to every `https` origin, and to `http` on loopback; see
/// [`allow_origin`](Self::allow_origin) to name the origins instead. A request the token may
/// not go to fails with [`ErrorKind::OriginNotAllowed`](crate::ErrorKind::OriginNotAllowed),
/// whose message names the setting that would allow it, rather than going out without a token
/// to meet a puzzling 401 (or to carry its body over plain http by mistake);
/// [`send_others_without_token`](Self::send_others_without_token) sends such requests as they
/// are instead. See the [crate documentation](crate) for an example.
///
/// With the `reqwest-middleware` feature, the layer is also a `reqwest_middleware::Middleware`
/// with the same behaviour, for requests sent with reqwest's builders and `.send()`: see its
/// implementation below.
#[derive(Clone)]
pub struct OAuth2Layer<P = EmptyBodies> {
    cache: TokenCache,
    policy: P,
    origins: Origins,
    routes: Routes,
}

impl OAuth2Layer {
    /// Creates the layer over `cache`, or over a [`TokenSource`](crate::TokenSource), which
    /// gets a cache with the default settings.
    ///
    /// Every service the layer wraps shares the one cache.
    pub fn new(cache: impl Into<TokenCache>) -> Self {
        Self {
            cache: cache.into(),
            policy: EmptyBodies,
            origins: Origins::default(),
            routes: Routes::default(),
        }
    }
}

impl<P> OAuth2Layer<P> {
    /// Sets which requests are retried after a 401. Default: [`EmptyBodies`].
    pub fn replay<Q>(self, policy: Q) -> OAuth2Layer<Q> {
        OAuth2Layer {
            cache: self.cache,
            policy,
            origins: self.origins,
            routes: self.routes,
        }
    }

    /// Sends the token only to `origin` (scheme, host and port, such as
    /// `https://api.example.com`) and the other origins allowed this way. Requests to any other
    /// origin fail, or go out without a token after
    /// [`send_others_without_token`](Self::send_others_without_token).
    ///
    /// A plain `http` origin is only served on loopback, unless
    /// [`allow_plain_http`](Self::allow_plain_http) was called.
    ///
    /// ```
    /// # use tower_oauth2::{OAuth2Layer, Token};
    /// # let cache = tower_oauth2::TokenCache::new(tower_oauth2::grant::ClientCredentials::new(
    /// #     tower_oauth2::TokenClient::new("https://auth.example.com/token", tower::service_fn(
    /// #         |_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #             Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::<bytes::Bytes>::default()))
    /// #         })).unwrap(),
    /// #     tower_oauth2::ClientAuth::basic("id", "secret")));
    /// let layer = OAuth2Layer::new(cache)
    ///     .allow_origin("https://api.example.com")?
    ///     .allow_origin("https://uploads.example.com:8443")?;
    /// # Ok::<_, tower_oauth2::Error>(())
    /// ```
    pub fn allow_origin(mut self, origin: &str) -> Result<Self, Error> {
        self.origins.allow(origin)?;
        Ok(self)
    }

    /// Gives requests to `destination` (an origin, such as `https://billing.example.com`, or
    /// an origin and a path, such as `https://api.example.com/billing`, which covers what is
    /// below it) their token from `cache` instead of the layer's own: one client for APIs that
    /// each want their own audience, scopes or client. Each destination's cache has its own
    /// single flight. A request goes to the most specific destination that covers it; one that
    /// no destination covers gets the layer's own token if its origin is allowed, as without
    /// destinations (name the layer's own origins with [`allow_origin`](Self::allow_origin) to
    /// keep its token to them).
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) unless `destination` is an
    /// absolute `https` URL, or `http` on loopback (or anywhere after
    /// [`allow_plain_http`](Self::allow_plain_http)).
    ///
    /// ```
    /// # use tower_oauth2::{OAuth2Layer, TokenCache, TokenClient, ClientAuth, grant::ClientCredentials};
    /// # let http = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::<bytes::Bytes>::default()))
    /// # });
    /// # let endpoint = TokenClient::new("https://auth.example.com/token", http)?;
    /// let orders = ClientCredentials::new(endpoint.clone(), ClientAuth::basic("app", "secret"))
    ///     .param("audience", "https://orders.example.com");
    /// let billing = ClientCredentials::new(endpoint, ClientAuth::basic("app", "secret"))
    ///     .param("audience", "https://api.example.com/billing");
    ///
    /// let layer = OAuth2Layer::new(orders)
    ///     .allow_origin("https://orders.example.com")?
    ///     .route("https://api.example.com/billing", billing)?;
    /// # Ok::<_, tower_oauth2::Error>(())
    /// ```
    pub fn route(mut self, destination: &str, cache: impl Into<TokenCache>) -> Result<Self, Error> {
        let plain_http = self.origins.plain_http();
        self.routes.add(destination, cache.into(), plain_http)?;
        Ok(self)
    }

    /// Also sends the token over plain `http` to hosts that are not loopback. Only for networks
    /// where something else encrypts the traffic: the token crosses the network readable.
    pub fn allow_plain_http(mut self) -> Self {
        self.origins.allow_plain_http();
        self
    }

    /// Sends requests to origins the token may not go to as they are, without a token,
    /// instead of failing them with
    /// [`ErrorKind::OriginNotAllowed`](crate::ErrorKind::OriginNotAllowed): for a client that
    /// also calls hosts that need no token.
    pub fn send_others_without_token(mut self) -> Self {
        self.origins.send_others();
        self
    }

    /// Returns the token cache.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }
}

impl<S, P: Clone> Layer<S> for OAuth2Layer<P> {
    type Service = OAuth2<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        OAuth2 {
            inner,
            cache: self.cache.clone(),
            policy: self.policy.clone(),
            origins: self.origins.clone(),
            routes: self.routes.clone(),
        }
    }
}

impl<P: fmt::Debug> fmt::Debug for OAuth2Layer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Layer")
            .field("cache", &self.cache)
            .field("policy", &self.policy)
            .field("origins", &self.origins)
            .field("routes", &self.routes)
            .finish()
    }
}

/// Middleware that authenticates every request with a bearer token. Made by [`OAuth2Layer`].
///
/// - A request that already has an `Authorization` header is sent as it is.
/// - A request to an origin the token may not go to fails with
///   [`ErrorKind::OriginNotAllowed`](crate::ErrorKind::OriginNotAllowed) and is not sent, or
///   is sent as it is after [`OAuth2Layer::send_others_without_token`].
/// - Any other request gets the cached token; when there is none, or it has expired, the
///   request waits for one fetch shared with all other requests.
/// - When the answer is 401, the token is invalidated (unless another request already replaced
///   it). If the [`ReplayPolicy`] could copy the request before it was sent, the copy is sent
///   once with the new token; otherwise the 401 is returned as it came. A second 401 is
///   returned as it came, and so is any 403. If no new token can be had, the error says why.
/// - A 401 answer whose `WWW-Authenticate` only names other schemes (`Basic`, `Negotiate`,
///   `DPoP`), or whose bearer challenge says `error="insufficient_scope"`, is returned as it
///   came, and the token is kept: a new bearer token cannot meet that challenge.
/// - So is a 401 answer from another URI than the token was sent to, after redirects: with
///   the `tower-http` feature, when tower-http's `FollowRedirect` says so (its `RequestUri`
///   extension); over `reqwest::Client`, by the response's URL. See
///   [middleware ordering](crate#middleware-ordering) for where redirects belong.
/// - A request that could be copied keeps the token cache alive until its answer is final,
///   so a clone dropped as soon as it has sent (`client.clone().oneshot(request)`, even as the
///   last handle) still retries.
///
/// Errors from the inner service pass through unchanged, as [`BoxError`]. When no token can be
/// had, the error is a [`tower_oauth2::Error`](crate::Error).
///
/// It serves `http::Request<B>` for any client that takes them and, with the `reqwest`
/// feature, `reqwest::Request`: see [`OAuth2Request`].
///
/// ```
/// # use std::{convert::Infallible, sync::{Arc, atomic::{AtomicUsize, Ordering}}};
/// # use bytes::Bytes;
/// # use http::{Request, Response, StatusCode};
/// # use http_body_util::Full;
/// # use tower::{service_fn, ServiceExt};
/// use tower_oauth2::{Error, FetchContext, OAuth2, Token, TokenSource};
///
/// // Hands out `token-1`, `token-2`, ...
/// struct Counter(AtomicUsize);
///
/// impl TokenSource for Counter {
///     async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> {
///         let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
///         Ok(Token::bearer(format!("token-{n}")))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_oauth2::BoxError> {
/// // An API that has revoked `token-1`.
/// let api = service_fn(|request: Request<Full<Bytes>>| async move {
///     let mut response = Response::new(Full::<Bytes>::default());
///     if request.headers()["authorization"] == "Bearer token-1" {
///         *response.status_mut() = StatusCode::UNAUTHORIZED;
///     }
///     Ok::<_, Infallible>(response)
/// });
/// let client = OAuth2::new(api, Counter(AtomicUsize::new(0)));
///
/// // The first attempt carries token-1 and gets a 401; the retry carries token-2.
/// let request = Request::get("https://api.example.com/").body(Full::default())?;
/// let response = client.clone().oneshot(request).await?;
/// assert_eq!(response.status(), StatusCode::OK);
/// assert_eq!(client.cache().stats().retries_after_401, 1);
/// # Ok(())
/// # }
/// ```
pub struct OAuth2<S, P = EmptyBodies> {
    inner: S,
    cache: TokenCache,
    policy: P,
    origins: Origins,
    routes: Routes,
}

impl<S> OAuth2<S> {
    /// Wraps `inner`, taking tokens from `cache`, or from a [`TokenSource`](crate::TokenSource)
    /// with a cache of the default settings.
    pub fn new(inner: S, cache: impl Into<TokenCache>) -> Self {
        OAuth2Layer::new(cache).layer(inner)
    }

    /// Returns a layer that wraps services in this middleware.
    pub fn layer(cache: impl Into<TokenCache>) -> OAuth2Layer {
        OAuth2Layer::new(cache)
    }
}

impl<S, P> OAuth2<S, P> {
    /// Returns a reference to the inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Returns a mutable reference to the inner service.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Returns the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Returns the token cache.
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }
}

impl<S, P, R> Service<R> for OAuth2<S, P>
where
    S: Service<R> + Clone,
    S::Response: OAuth2Response,
    S::Error: Into<BoxError>,
    R: OAuth2Request<P>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, mut request: R) -> Self::Future {
        let tokens = Tokens {
            cache: &self.cache,
            origins: &self.origins,
            routes: &self.routes,
        };
        match protocol::start(tokens, &request) {
            Start::Send(ticket) if ticket.dpop().is_some() => self.call_with_proof(request, ticket),
            Start::Send(mut ticket) => {
                // Copied before the header goes in: the copy gets the new token, not this one.
                let copy = request.replay(&self.policy);
                request.headers_mut().insert(AUTHORIZATION, ticket.header());
                let to = request.target();
                let answer = self.inner.call(request);
                let Some(copy) = copy else {
                    return ResponseFuture::sent(answer, Some(ticket), to, None);
                };
                // The retry needs the cache, and this service may be gone by then.
                ticket.hold_for_retry();
                // A clone for the copy, which `Oneshot` makes ready if it is ever sent.
                let service = self.inner.clone();
                ResponseFuture::sent(answer, Some(ticket), to, Some(Retry { service, copy }))
            }
            // Without a token, a 401 retires nothing: where it came from does not matter.
            Start::AsIs => {
                ResponseFuture::sent(self.inner.call(request), None, Target::UNKNOWN, None)
            }
            Start::Refuse(error) => ResponseFuture::failed(error),
            Start::Wait(wait) => {
                let copy = request.replay(&self.policy);
                // Whether the token will be DPoP-bound is not known yet; a nonce resend needs
                // a copy of its own. Without the feature no token is bound.
                let spare = cfg!(feature = "dpop")
                    .then(|| request.replay(&self.policy))
                    .flatten()
                    .map(|copy| Retry {
                        service: self.inner.clone(),
                        copy,
                    });
                // The wait can be long and the fetch may go through this very service: give
                // back what `poll_ready` reserved (a concurrency permit, a buffer slot), and
                // make the parked clone ready once the token is here.
                let service = self.inner.clone();
                self.inner = service.clone();
                let parked = Parked {
                    service,
                    request,
                    copy,
                    spare,
                    ticket: None,
                };
                ResponseFuture::waiting(Box::pin(wait.ticket()), parked)
            }
        }
    }
}

impl<S, P> OAuth2<S, P> {
    /// Sends `request` with a DPoP-bound token and a proof, keeping two copies: one for a
    /// retry after a 401, one for a resend with the nonce a server demands.
    #[cold]
    #[inline(never)]
    fn call_with_proof<R>(&mut self, mut request: R, mut ticket: Ticket) -> ResponseFuture<S, R>
    where
        S: Service<R> + Clone,
        R: OAuth2Request<P>,
    {
        let copy = || {
            request.replay(&self.policy).map(|copy| Retry {
                service: self.inner.clone(),
                copy,
            })
        };
        let (retry, spare) = (copy(), copy());
        if retry.is_some() {
            ticket.hold_for_retry();
        }
        let nonce = match protocol::authorize(&mut request, &ticket) {
            Ok(nonce) => nonce,
            Err(error) => return ResponseFuture::failed(error),
        };
        let to = request.target();
        let answer = self.inner.call(request);
        match nonce {
            Some(nonce) => {
                let dpop = Dpop {
                    nonce,
                    ticket: ticket.clone(),
                    spare,
                };
                ResponseFuture::sent_with_proof(answer, ticket, to, retry, dpop)
            }
            None => ResponseFuture::sent(answer, Some(ticket), to, retry),
        }
    }
}

impl<S: Clone, P: Clone> Clone for OAuth2<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            cache: self.cache.clone(),
            policy: self.policy.clone(),
            origins: self.origins.clone(),
            routes: self.routes.clone(),
        }
    }
}

impl<S: fmt::Debug, P: fmt::Debug> fmt::Debug for OAuth2<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .field("policy", &self.policy)
            .field("origins", &self.origins)
            .finish_non_exhaustive()
    }
}
