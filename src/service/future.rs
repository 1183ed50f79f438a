//! The response future of [`OAuth2`](super::OAuth2): wait for a token if need be, send, and on a
//! 401 answer wait for a new token and send the copy once.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{HeaderValue, StatusCode, header::AUTHORIZATION};
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
        R: Request,
    {
        #[pin]
        state: State<S::Future, S, R>,
        // Which token the request carries, to retire after a 401; `None` for a request sent
        // without a token of ours.
        ticket: Option<Ticket>,
        // What sending the copy after a 401 needs; `None` when the request cannot be retried.
        replay: Option<Replay<S, R::Copy>>,
    }
}

/// What sending the copy after a 401 needs.
pub(super) struct Replay<S, C> {
    /// A clone of the inner service; `Oneshot` makes it ready when the copy goes out.
    pub(super) service: S,
    pub(super) copy: C,
}

/// What a waiting request takes of the token the fetch brought, read while the token is
/// borrowed: a clone of its header. A copy of its own would spare the header's shared reference
/// count, but costs two allocations and a zeroing per waiter, which the thousands of requests a
/// cold cache holds back pay all at once (`cargo bench --bench instructions -- herd` counts it).
struct Fresh {
    header: HeaderValue,
    generation: u64,
}

/// A request waiting for a token, and the service it will be sent through, made ready only
/// once the token is there.
struct Parked<S, R: Request> {
    service: S,
    request: R,
    copy: Option<R::Copy>,
}

pin_project! {
    // What the rarer states hold (a request waiting for a token, a copy waiting for a new
    // one, the retry) is boxed, so that the future of the common state, a request sent with
    // a cached token, is little more than the inner service's future.
    #[project = StateProj]
    enum State<F, S, R>
    where
        S: Service<R>,
        R: Request,
    {
        // No usable token yet: the request waits for the fetch (`None` once its token is
        // in), then for the service to be ready.
        Waiting {
            token: Option<BoxFuture<'static, Result<Fresh, Error>>>,
            parked: Option<Box<Parked<S, R>>>,
        },
        // The request is out.
        Sent {
            #[pin]
            future: F,
        },
        // The answer was 401: the copy waits for a new token.
        Refreshing {
            token: BoxFuture<'static, Outcome>,
            copy: Option<Box<(S, R)>>,
        },
        // The copy is out.
        Retried {
            future: Pin<Box<Oneshot<S, R>>>,
        },
    }
}

impl<S, R> ResponseFuture<S, R>
where
    S: Service<R>,
    R: Request,
{
    /// A request sent without a token of ours.
    pub(super) fn unauthenticated(future: S::Future) -> Self {
        Self {
            state: State::Sent { future },
            ticket: None,
            replay: None,
        }
    }

    /// A request to an origin the token may not go to.
    pub(super) fn refused() -> Self {
        let error = super::origin::not_allowed();
        Self {
            state: State::Waiting {
                token: Some(Box::pin(std::future::ready(Err(error)))),
                parked: None,
            },
            ticket: None,
            replay: None,
        }
    }

    /// A request sent with the token `ticket` names.
    #[inline]
    pub(super) fn sent(
        ticket: Ticket,
        replay: Option<Replay<S, R::Copy>>,
        future: S::Future,
    ) -> Self {
        Self {
            state: State::Sent { future },
            ticket: Some(ticket),
            replay,
        }
    }

    /// A request that waits for a token before it is sent through `service`, which is made
    /// ready only then.
    pub(super) fn waiting(
        pending: cache::Pending,
        service: S,
        request: R,
        copy: Option<R::Copy>,
        cache: &TokenCache,
    ) -> Self {
        Self {
            state: State::Waiting {
                token: Some(Box::pin(async move {
                    cache::wait_with(pending?, |cached| Fresh {
                        header: cached.header.clone(),
                        generation: cached.generation,
                    })
                    .await
                })),
                parked: Some(Box::new(Parked {
                    service,
                    request,
                    copy,
                })),
            },
            // The generation is the fetched token's, known once it is in.
            ticket: Some(Ticket::Shared(cache.clone(), 0)),
            replay: None,
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

    // Only the common case, a sent request's answer, is handled here, small enough to be
    // inlined; the rest is in functions of their own.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let StateProj::Sent { future } = this.state.as_mut().project() {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                if response.status() != StatusCode::UNAUTHORIZED || this.ticket.is_none() {
                    return Poll::Ready(Ok(response));
                }
                if let Some(response) =
                    after_401(this.state.as_mut(), this.ticket, this.replay, response)
                {
                    return Poll::Ready(Ok(response));
                }
            }
            if let Some(response) = ready!(poll_other(
                this.state.as_mut(),
                this.ticket,
                this.replay,
                cx
            ))? {
                return Poll::Ready(Ok(response));
            }
        }
    }
}

/// After a 401 answer to a request that carried a token of ours: retires the token and, if the
/// request can be sent again, moves to sending the copy. Returns the answer when it is final.
#[cold]
#[inline(never)]
fn after_401<S, R>(
    mut state: Pin<&mut State<S::Future, S, R>>,
    ticket: &Option<Ticket>,
    replay: &mut Option<Replay<S, R::Copy>>,
    response: S::Response,
) -> Option<S::Response>
where
    S: Service<R>,
    S::Response: HttpResponse,
    R: Request,
{
    // The token stays: it was not what the server objected to.
    if !challenge::new_token_may_help(response.headers()) {
        tracing::debug!("401 answer that a new token cannot meet; not retrying");
        return Some(response);
    }
    let Some(ticket) = ticket.as_ref() else {
        return Some(response);
    };
    // Whether or not this request can be sent again, the next ones must not carry the token
    // the server has just refused.
    let cache = ticket.cache();
    cache.invalidate_generation(ticket.generation());
    let Some((service, request)) = replay
        .take()
        .and_then(|replay| Some((replay.service, R::restore(replay.copy)?)))
    else {
        tracing::debug!("401 answer, but the request could not be replayed");
        return Some(response);
    };
    tracing::debug!("401 answer; retrying once with a new token");
    match cache.lookup() {
        Lookup::Ready(cached, _) => state.set(retry(service, request, ticket, &cached)),
        Lookup::Wait(pending) => {
            let token = Box::pin(async move { cache::wait(pending?).await });
            let copy = Some(Box::new((service, request)));
            state.set(State::Refreshing { token, copy });
        }
    }
    None
}

/// Polls the states other than `Sent`: `Ok(Some(..))` is the final answer, `Ok(None)` means
/// the state moved on and the caller polls again.
#[cold]
#[inline(never)]
fn poll_other<S, R>(
    mut state: Pin<&mut State<S::Future, S, R>>,
    ticket: &mut Option<Ticket>,
    replay: &mut Option<Replay<S, R::Copy>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Option<S::Response>, BoxError>>
where
    S: Service<R>,
    S::Error: Into<BoxError>,
    R: Request,
{
    match state.as_mut().project() {
        StateProj::Sent { .. } => {}
        StateProj::Waiting { token, parked } => {
            if let Some(pending) = token {
                let fresh = ready!(pending.as_mut().poll(cx))?;
                *token = None;
                let (Some(parked), Some(Ticket::Shared(_, generation))) =
                    (parked.as_mut(), ticket.as_mut())
                else {
                    return Poll::Ready(Err(polled_after_completion()));
                };
                parked
                    .request
                    .headers_mut()
                    .insert(AUTHORIZATION, fresh.header);
                *generation = fresh.generation;
            }
            let Some(ready) = parked.as_mut() else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            ready!(ready.service.poll_ready(cx)).map_err(Into::into)?;
            let Some(parked) = parked.take() else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            let Parked {
                mut service,
                request,
                copy,
            } = *parked;
            let future = service.call(request);
            *replay = copy.map(|copy| Replay { service, copy });
            state.set(State::Sent { future });
        }
        StateProj::Refreshing { token, copy } => {
            let cached = ready!(token.as_mut().poll(cx))?;
            let (Some(copy), Some(ticket)) = (copy.take(), ticket.as_ref()) else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            let (service, request) = *copy;
            state.set(retry(service, request, ticket, &cached));
        }
        StateProj::Retried { future } => {
            return future.as_mut().poll(cx).map_ok(Some).map_err(Into::into);
        }
    }
    Poll::Ready(Ok(None))
}

/// The state that sends the copy with the token of `cached`.
fn retry<S, R>(
    service: S,
    mut request: R,
    ticket: &Ticket,
    cached: &Cached,
) -> State<S::Future, S, R>
where
    S: Service<R>,
    R: Request,
{
    // Counted only now: a request whose new token never came is not sent again.
    ticket.cache().record_retry();
    request
        .headers_mut()
        .insert(AUTHORIZATION, cached.header.clone());
    State::Retried {
        future: Box::pin(Oneshot::new(service, request)),
    }
}

fn polled_after_completion() -> BoxError {
    Error::new(ErrorKind::Interrupted)
        .with_detail("response future polled after completion")
        .into()
}

impl<S, R> fmt::Debug for ResponseFuture<S, R>
where
    S: Service<R>,
    R: Request,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("authenticated", &self.ticket.is_some())
            .field("replayable", &self.replay.is_some())
            .finish_non_exhaustive()
    }
}
