//! The response future of [`OAuth2`](super::OAuth2): wait for a token if need be, send, and on a
//! 401 answer wait for a new token and send the copy once.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION};
use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower_service::Service;

use super::{Local, own_copy, snapshot::Snapshot};
use crate::{
    BoxError, Error, ErrorKind, TokenCache,
    cache::{self, Cached, Lookup, Outcome},
    source::BoxFuture,
};

/// What a retry needs: the cache to ask for a new token, and which token the first attempt
/// carried.
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
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, S, B>,
        // What sending the copy after a 401 needs; `None` when the request cannot be retried,
        // or carries no token of ours.
        retry: Option<Retry<S, B>>,
    }
}

/// What sending the copy after a 401 needs.
pub(super) struct Retry<S, B> {
    /// A clone of the inner service; `Oneshot` makes it ready when the copy goes out.
    pub(super) service: S,
    pub(super) snapshot: Snapshot<B>,
    pub(super) ticket: Ticket,
}

/// What a waiting request takes of the token the fetch brought: a header of its own, so that
/// the thousands of requests a cold cache can hold back do not all contend on the reference
/// count of one shared header when they are released.
struct Fresh {
    header: HeaderValue,
    generation: u64,
}

/// A request waiting for the cache's first token, with the service made ready for it.
struct Parked<S, B> {
    service: S,
    request: Request<B>,
    snapshot: Option<Snapshot<B>>,
    cache: TokenCache,
}

pin_project! {
    // What the rarer states hold (a request waiting for a token, a copy waiting for a new
    // one, the retry) is boxed, so that the future of the common state, a request sent with
    // a cached token, is little more than the inner service's future.
    #[project = StateProj]
    enum State<F, S, B>
    where
        S: Service<Request<B>>,
    {
        // No usable token yet: the request waits for the fetch.
        Waiting {
            token: BoxFuture<'static, Result<Fresh, Error>>,
            parked: Option<Box<Parked<S, B>>>,
        },
        // The request is out.
        Sent {
            #[pin]
            future: F,
        },
        // The answer was 401: the copy waits for a new token.
        Refreshing {
            token: BoxFuture<'static, Outcome>,
            copy: Option<Box<(S, Request<B>)>>,
        },
        // The copy is out.
        Retried {
            future: Pin<Box<Oneshot<S, Request<B>>>>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// A request sent without a token of ours.
    pub(super) fn unauthenticated(future: S::Future) -> Self {
        Self {
            state: State::Sent { future },
            retry: None,
        }
    }

    /// A request to an origin the token may not go to.
    pub(super) fn refused() -> Self {
        let error = Error::new(ErrorKind::OriginNotAllowed)
            .with_detail("the request's origin may not receive the token");
        Self {
            state: State::Waiting {
                token: Box::pin(std::future::ready(Err(error))),
                parked: None,
            },
            retry: None,
        }
    }

    /// A request sent with a token.
    #[inline]
    pub(super) fn sent(future: S::Future, retry: Option<Retry<S, B>>) -> Self {
        Self {
            state: State::Sent { future },
            retry,
        }
    }

    /// A request that waits for a token before it is sent through `service`.
    pub(super) fn waiting(
        pending: cache::Pending,
        service: S,
        request: Request<B>,
        snapshot: Option<Snapshot<B>>,
        cache: &TokenCache,
    ) -> Self {
        Self {
            state: State::Waiting {
                token: Box::pin(async move {
                    cache::wait_with(pending?, |cached| Fresh {
                        header: own_copy(&cached.header),
                        generation: cached.generation,
                    })
                    .await
                }),
                parked: Some(Box::new(Parked {
                    service,
                    request,
                    snapshot,
                    cache: cache.clone(),
                })),
            },
            retry: None,
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResBody>, BoxError>;

    // Only the common case, a sent request's answer, is handled here, small enough to be
    // inlined; the rest is in functions of its own.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let StateProj::Sent { future } = this.state.as_mut().project() {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                if response.status() != StatusCode::UNAUTHORIZED || this.retry.is_none() {
                    return Poll::Ready(Ok(response));
                }
                if let Some(response) = after_401(this.state.as_mut(), this.retry, response) {
                    return Poll::Ready(Ok(response));
                }
            }
            if let Some(response) = ready!(poll_other(this.state.as_mut(), this.retry, cx))? {
                return Poll::Ready(Ok(response));
            }
        }
    }
}

/// After a 401 answer to a request that can be retried: invalidates the token it carried and
/// moves to sending the copy. Returns the answer if the copy cannot be rebuilt.
#[cold]
#[inline(never)]
fn after_401<S, B, ResBody>(
    mut state: Pin<&mut State<S::Future, S, B>>,
    retry: &mut Option<Retry<S, B>>,
    response: Response<ResBody>,
) -> Option<Response<ResBody>>
where
    S: Service<Request<B>>,
{
    let Some((service, request, ticket)) = retry.take().and_then(|retry| {
        let request = retry.snapshot.into_request()?;
        Some((retry.service, request, retry.ticket))
    }) else {
        tracing::debug!("401 answer, but the request could not be replayed");
        return Some(response);
    };
    tracing::debug!("401 answer; retrying once with a new token");
    let cache = ticket.cache();
    cache.record_retry();
    cache.invalidate_generation(ticket.generation());
    match cache.lookup() {
        Lookup::Ready(cached, _) => state.set(self::retry(service, request, &cached)),
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
fn poll_other<S, B, ResBody>(
    mut state: Pin<&mut State<S::Future, S, B>>,
    retry: &mut Option<Retry<S, B>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Option<Response<ResBody>>, BoxError>>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    match state.as_mut().project() {
        StateProj::Sent { .. } => {}
        StateProj::Waiting { token, parked } => {
            let fresh = ready!(token.as_mut().poll(cx))?;
            let Some(parked) = parked.take() else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            let Parked {
                mut service,
                mut request,
                snapshot,
                cache,
            } = *parked;
            request.headers_mut().insert(AUTHORIZATION, fresh.header);
            let future = service.call(request);
            *retry = snapshot.map(|snapshot| Retry {
                service,
                snapshot,
                ticket: Ticket::Shared(cache, fresh.generation),
            });
            state.set(State::Sent { future });
        }
        StateProj::Refreshing { token, copy } => {
            let cached = ready!(token.as_mut().poll(cx))?;
            let Some(copy) = copy.take() else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            let (service, request) = *copy;
            state.set(self::retry(service, request, &cached));
        }
        StateProj::Retried { future } => {
            return future.as_mut().poll(cx).map_ok(Some).map_err(Into::into);
        }
    }
    Poll::Ready(Ok(None))
}

/// The state that sends the copy with the token of `cached`.
fn retry<F, S, B>(service: S, mut request: Request<B>, cached: &Cached) -> State<F, S, B>
where
    S: Service<Request<B>>,
{
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

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("replayable", &self.retry.is_some())
            .finish_non_exhaustive()
    }
}
