//! The middleware: a bearer token on every request, and one retry after a 401.

mod future;
mod replay;

use std::{
    fmt, mem,
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response, header::AUTHORIZATION};
use tower_layer::Layer;
use tower_service::Service;

pub use self::{
    future::ResponseFuture,
    replay::{CloneBodies, EmptyBodies, NoReplay, ReplayPolicy},
};
use crate::{
    BoxError, TokenCache,
    cache::{self, Lookup},
};

/// Wraps a service in [`OAuth2`]: every request gets `Authorization: Bearer <token>` from a
/// shared [`TokenCache`], and a 401 answer is retried once with a refreshed token.
///
/// See the [crate documentation](crate) for an example.
#[derive(Clone)]
pub struct OAuth2Layer<P = EmptyBodies> {
    cache: TokenCache,
    policy: P,
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
        }
    }
}

impl<P> OAuth2Layer<P> {
    /// Sets which requests are retried after a 401. Default: [`EmptyBodies`].
    pub fn replay<Q>(self, policy: Q) -> OAuth2Layer<Q> {
        OAuth2Layer {
            cache: self.cache,
            policy,
        }
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
            local: None,
        }
    }
}

impl<P: fmt::Debug> fmt::Debug for OAuth2Layer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Layer")
            .field("cache", &self.cache)
            .field("policy", &self.policy)
            .finish()
    }
}

/// Middleware that authenticates every request with a bearer token. Made by [`OAuth2Layer`].
///
/// - A request that already has an `Authorization` header is sent as it is.
/// - Any other request gets the cached token; when there is none, or it has expired, the
///   request waits for one fetch shared with all other requests.
/// - When the answer is 401 and the [`ReplayPolicy`] could copy the request before it was sent,
///   the token is invalidated (unless another request already replaced it), and the copy is
///   sent once with the new token. A second 401 is returned as it came, and so is any 403.
///
/// Errors from the inner service pass through unchanged, as [`BoxError`]. When no token can be
/// had, the error is a [`tower_oauth2::Error`](crate::Error).
pub struct OAuth2<S, P = EmptyBodies> {
    inner: S,
    cache: TokenCache,
    policy: P,
    /// The header this clone used last, and the state word it was valid under.
    local: Option<Local>,
}

#[derive(Clone)]
struct Local {
    word: u64,
    generation: u64,
    header: HeaderValue,
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

    /// The header for the next request, with the generation of the token it carries; or the
    /// fetch to wait for.
    #[inline]
    fn authorization(&mut self) -> Result<(HeaderValue, u64), cache::Pending> {
        let word = self.cache.word();
        if let Some(local) = &self.local
            && local.word == word
        {
            return Ok((local.header.clone(), local.generation));
        }
        self.authorization_slow()
    }

    #[cold]
    fn authorization_slow(&mut self) -> Result<(HeaderValue, u64), cache::Pending> {
        match self.cache.lookup() {
            Lookup::Ready(cached, word) => {
                let local = Local {
                    word,
                    generation: cached.generation,
                    header: cached.header.clone(),
                };
                let found = (local.header.clone(), local.generation);
                self.local = Some(local);
                Ok(found)
            }
            Lookup::Wait(waiter) => Err(waiter),
        }
    }
}

impl<S, P, B, ResBody> Service<Request<B>> for OAuth2<S, P>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    P: ReplayPolicy<B>,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The service that was made ready is the one to call; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut service = mem::replace(&mut self.inner, clone);

        if request.headers().contains_key(AUTHORIZATION) {
            return ResponseFuture::unauthenticated(service.call(request));
        }
        let replay = self
            .policy
            .replay_body(request.body())
            .map(|body| replay::snapshot(&request, body));

        match self.authorization() {
            Ok((header, generation)) => {
                request.headers_mut().insert(AUTHORIZATION, header);
                let future = service.call(request);
                ResponseFuture::sent(future, service, replay, &self.cache, generation)
            }
            Err(waiter) => ResponseFuture::waiting(waiter, service, request, replay, &self.cache),
        }
    }
}

impl<S: Clone, P: Clone> Clone for OAuth2<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            cache: self.cache.clone(),
            policy: self.policy.clone(),
            local: self.local.clone(),
        }
    }
}

impl<S: fmt::Debug, P: fmt::Debug> fmt::Debug for OAuth2<S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2")
            .field("inner", &self.inner)
            .field("cache", &self.cache)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
