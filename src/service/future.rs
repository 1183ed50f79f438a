//! The response future of [`OAuth2`](super::OAuth2): wait for a token if need be, send, and on a
//! 401 answer wait for a new token and send the copy once.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower_service::Service;

use crate::{
    BoxError, Error, ErrorKind, TokenCache,
    cache::{self, Lookup, Outcome},
    source::BoxFuture,
};

pin_project! {
    /// Response future of [`OAuth2`](super::OAuth2).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, S, B>,
        // Kept only when the request can be retried: the service to send the copy through,
        // the copy, the cache to ask for a new token, and which token the first attempt used.
        service: Option<S>,
        replay: Option<Request<B>>,
        cache: Option<TokenCache>,
        used: u64,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, B>
    where
        S: Service<Request<B>>,
    {
        // No usable token yet: the ready service and the request wait for the fetch.
        Waiting {
            token: BoxFuture<'static, Outcome>,
            request: Option<Request<B>>,
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
            future: Oneshot<S, Request<B>>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    /// A request sent without a token of ours: the caller set `Authorization` itself.
    pub(super) fn unauthenticated(future: S::Future) -> Self {
        Self {
            state: State::Sent { future },
            service: None,
            replay: None,
            cache: None,
            used: 0,
        }
    }

    /// A request sent with the token of `generation`.
    pub(super) fn sent(
        future: S::Future,
        service: S,
        replay: Option<Request<B>>,
        cache: &TokenCache,
        generation: u64,
    ) -> Self {
        let retry = replay.is_some();
        Self {
            state: State::Sent { future },
            service: retry.then_some(service),
            cache: retry.then(|| cache.clone()),
            replay,
            used: generation,
        }
    }

    /// A request that waits for a token before it is sent through `service`.
    pub(super) fn waiting(
        pending: cache::Pending,
        service: S,
        request: Request<B>,
        replay: Option<Request<B>>,
        cache: &TokenCache,
    ) -> Self {
        Self {
            state: State::Waiting {
                token: Box::pin(async move { cache::wait(pending?).await }),
                request: Some(request),
            },
            service: Some(service),
            cache: replay.is_some().then(|| cache.clone()),
            replay,
            used: 0,
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Waiting { token, request } => {
                    let cached = ready!(token.as_mut().poll(cx))?;
                    let (Some(mut request), Some(service)) =
                        (request.take(), this.service.as_mut())
                    else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    request
                        .headers_mut()
                        .insert(AUTHORIZATION, cached.header.clone());
                    *this.used = cached.generation;
                    let future = service.call(request);
                    if this.replay.is_none() {
                        *this.service = None;
                    }
                    this.state.set(State::Sent { future });
                }
                StateProj::Sent { future } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    let Some(cache) = this.cache.as_ref() else {
                        return Poll::Ready(Ok(response));
                    };
                    if response.status() != StatusCode::UNAUTHORIZED {
                        return Poll::Ready(Ok(response));
                    }
                    tracing::debug!("401 answer; retrying once with a new token");
                    cache.invalidate_generation(*this.used);
                    match cache.lookup() {
                        Lookup::Ready(cached, _) => {
                            let Some(retry) = retry(this.service, this.replay, &cached) else {
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
                    let Some(retry) = retry(this.service, this.replay, &cached) else {
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
fn retry<F, S, B>(
    service: &mut Option<S>,
    replay: &mut Option<Request<B>>,
    cached: &cache::Cached,
) -> Option<State<F, S, B>>
where
    S: Service<Request<B>>,
{
    let (service, mut request) = (service.take()?, replay.take()?);
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

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("retry", &self.replay.is_some())
            .finish_non_exhaustive()
    }
}
