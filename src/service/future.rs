//! The response future of [`OAuth2`](super::OAuth2): wait for a token if need be, send, and on a
//! 401 answer wait for a new token and send the copy once.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{StatusCode, header::AUTHORIZATION};
use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower_service::Service;

use super::{
    Local, challenge,
    request::sealed::{Request, Response as _},
};
use crate::{
    BoxError, Error, ErrorKind, HttpResponse, TokenCache,
    cache::{self, Cached, Lookup, Outcome},
    source::BoxFuture,
};

/// What a 401 answer needs: the cache to invalidate and ask for a new token, and which token the
/// first attempt carried.
pub(crate) enum Ticket {
    /// From the sending clone's own copy.
    Local(Arc<Local>),
    /// From the cache directly, for a clone that sends one request only.
    Shared(TokenCache, u64),
}

impl Ticket {
    fn cache(&self) -> &TokenCache {
        match self {
            Self::Local(local) => &local.cache,
            Self::Shared(cache, _) => cache,
        }
    }

    fn generation(&self) -> u64 {
        match self {
            Self::Local(local) => local.generation,
            Self::Shared(_, generation) => *generation,
        }
    }
}

pin_project! {
    /// Response future of [`OAuth2`](super::OAuth2).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, R>
    where
        S: Service<R>,
    {
        #[pin]
        state: State<S::Future, S, R>,
        // Whether the request carries a token of ours.
        authenticated: bool,
        // Kept only when the request can be retried: the service to send the copy through,
        // and the copy.
        service: Option<S>,
        replay: Option<R>,
        // Which token the request carries, to invalidate after a 401.
        ticket: Option<Ticket>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, R>
    where
        S: Service<R>,
    {
        // No usable token yet: the request waits for the fetch (`None` once it has its
        // token), then for the service to be ready.
        Waiting {
            token: Option<BoxFuture<'static, Outcome>>,
            request: Option<R>,
            cache: Option<TokenCache>,
        },
        // The request is out.
        Sent {
            #[pin]
            future: F,
        },
        // The answer was 401: waiting for a new token for the copy.
        Refreshing {
            token: BoxFuture<'static, Outcome>,
        },
        // The copy is out.
        Retried {
            #[pin]
            future: Oneshot<S, R>,
        },
    }
}

impl<S, R> ResponseFuture<S, R>
where
    S: Service<R>,
{
    /// A request sent without a token of ours.
    pub(super) fn unauthenticated(future: S::Future) -> Self {
        Self {
            state: State::Sent { future },
            authenticated: false,
            service: None,
            replay: None,
            ticket: None,
        }
    }

    /// A request to an origin the token may not go to.
    pub(super) fn refused() -> Self {
        let error = Error::new(ErrorKind::OriginNotAllowed)
            .with_detail("the request's origin may not receive the token");
        Self {
            state: State::Waiting {
                token: Some(Box::pin(std::future::ready(Err(error)))),
                request: None,
                cache: None,
            },
            authenticated: false,
            service: None,
            replay: None,
            ticket: None,
        }
    }

    /// A request sent with a token.
    pub(super) fn sent(
        future: S::Future,
        service: S,
        replay: Option<R>,
        ticket: Option<Ticket>,
    ) -> Self {
        Self {
            state: State::Sent { future },
            authenticated: true,
            service: replay.is_some().then_some(service),
            replay,
            ticket,
        }
    }

    /// A request that waits for a token before it is sent through `service`, which is made
    /// ready only then.
    pub(super) fn waiting(
        pending: cache::Pending,
        service: S,
        request: R,
        replay: Option<R>,
        cache: &TokenCache,
    ) -> Self {
        Self {
            state: State::Waiting {
                token: Some(Box::pin(async move { cache::wait(pending?).await })),
                request: Some(request),
                cache: Some(cache.clone()),
            },
            authenticated: true,
            service: Some(service),
            replay,
            ticket: None,
        }
    }
}

impl<S, R> Future for ResponseFuture<S, R>
where
    R: Request,
    S: Service<R>,
    S::Response: HttpResponse,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Waiting {
                    token,
                    request,
                    cache,
                } => {
                    if let Some(pending) = token {
                        let cached = ready!(pending.as_mut().poll(cx))?;
                        *token = None;
                        let Some(request) = request.as_mut() else {
                            return Poll::Ready(Err(polled_after_completion()));
                        };
                        request
                            .headers_mut()
                            .insert(AUTHORIZATION, cached.header.clone());
                        *this.ticket = cache
                            .take()
                            .map(|cache| Ticket::Shared(cache, cached.generation));
                    }
                    let Some(service) = this.service.as_mut() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    ready!(service.poll_ready(cx)).map_err(Into::into)?;
                    let Some(request) = request.take() else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let future = service.call(request);
                    if this.replay.is_none() {
                        *this.service = None;
                    }
                    this.state.set(State::Sent { future });
                }
                StateProj::Sent { future } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if response.status() != StatusCode::UNAUTHORIZED || !*this.authenticated {
                        return Poll::Ready(Ok(response));
                    }
                    // The token stays: it was not what the server objected to.
                    if !challenge::new_token_may_help(response.headers()) {
                        tracing::debug!("401 answer that a new token cannot meet; not retrying");
                        return Poll::Ready(Ok(response));
                    }
                    let Some(ticket) = this.ticket.as_ref() else {
                        return Poll::Ready(Ok(response));
                    };
                    // Whether or not this request can be sent again, the next ones must not
                    // carry the token the server has just refused.
                    let cache = ticket.cache();
                    cache.invalidate_generation(ticket.generation());
                    if this.replay.is_none() {
                        tracing::debug!("401 answer, but the request could not be replayed");
                        return Poll::Ready(Ok(response));
                    }
                    tracing::debug!("401 answer; retrying once with a new token");
                    match cache.lookup() {
                        Lookup::Ready(cached, _) => {
                            let Some(retry) =
                                retry(this.service, this.replay, Some(ticket), &cached)
                            else {
                                return Poll::Ready(Ok(response));
                            };
                            this.state.set(retry);
                        }
                        Lookup::Wait(pending) => {
                            let token = Box::pin(async move { cache::wait(pending?).await });
                            this.state.set(State::Refreshing { token });
                        }
                    }
                }
                StateProj::Refreshing { token } => {
                    let cached = ready!(token.as_mut().poll(cx))?;
                    let ticket = this.ticket.as_ref();
                    let Some(retry) = retry(this.service, this.replay, ticket, &cached) else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    this.state.set(retry);
                }
                StateProj::Retried { future } => {
                    return future.poll(cx).map_err(Into::into);
                }
            }
        }
    }
}

/// The state that sends the copy with the token of `cached`.
fn retry<F, S, R: Request>(
    service: &mut Option<S>,
    replay: &mut Option<R>,
    ticket: Option<&Ticket>,
    cached: &Cached,
) -> Option<State<F, S, R>>
where
    S: Service<R>,
{
    let (service, mut request) = (service.take()?, replay.take()?);
    // Counted only now: a request whose new token never came is not sent again.
    if let Some(ticket) = ticket {
        ticket.cache().record_retry();
    }
    request
        .headers_mut()
        .insert(AUTHORIZATION, cached.header.clone());
    Some(State::Retried {
        future: Oneshot::new(service, request),
    })
}

fn polled_after_completion() -> BoxError {
    Error::new(ErrorKind::Interrupted)
        .with_detail("response future polled after completion")
        .into()
}

impl<S, R> fmt::Debug for ResponseFuture<S, R>
where
    S: Service<R>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("authenticated", &self.authenticated)
            .field("replayable", &self.replay.is_some())
            .finish_non_exhaustive()
    }
}
