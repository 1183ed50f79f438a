//! The response future of [`OAuth2`](super::OAuth2): wait for a token if need be, send, and
//! after a 401 answer wait for a new token and send the copy once.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{StatusCode, header::AUTHORIZATION};
use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower_service::Service;

use super::{
    protocol::{self, Next},
    request::sealed::{Request, Response as _},
};
use crate::{BoxError, Error, ErrorKind, HttpResponse, cache::Ticket, source::BoxFuture};

/// A token on its way.
type Waiting = BoxFuture<'static, Result<Ticket, Error>>;

pin_project! {
    /// Response future of [`OAuth2`](super::OAuth2).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, R>
    where
        S: Service<R>,
        R: Request,
    {
        #[pin]
        state: State<S, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, R>
    where
        S: Service<R>,
        R: Request,
    {
        // Not sent yet: the request waits for a token (`token` is `None` once it is here),
        // then for its service, which is made ready only then: a fetch can take long, and may
        // go through this very service.
        Waiting {
            token: Option<Waiting>,
            parked: Option<Box<Parked<S, R>>>,
        },
        // Sent; its answer is on the way. `ticket` names the token it carries (none for a
        // request sent as it came); `replay` is what sending it again takes, if it can be.
        Sent {
            #[pin]
            answer: S::Future,
            ticket: Option<Ticket>,
            replay: Option<Replay<S, R::Copy>>,
        },
        // The answer was 401: the copy waits for a new token.
        AwaitingNewToken {
            token: Waiting,
            copy: Option<Box<(S, R)>>,
        },
        // The copy is out; its answer is final.
        Resent {
            answer: Pin<Box<Oneshot<S, R>>>,
        },
        // Failed before anything was sent.
        Failed {
            error: Option<Error>,
        },
    }
}

/// What sending the copy after a 401 takes.
pub(super) struct Replay<S, C> {
    /// A clone of the inner service; `Oneshot` makes it ready when the copy goes out.
    pub(super) service: S,
    pub(super) copy: C,
}

/// A request waiting to be sent: the service it goes through, its copy for a retry, and its
/// token once that is here.
pub(super) struct Parked<S, R: Request> {
    pub(super) service: S,
    pub(super) request: R,
    pub(super) copy: Option<R::Copy>,
    pub(super) ticket: Option<Ticket>,
}

impl<S, R> ResponseFuture<S, R>
where
    S: Service<R>,
    R: Request,
{
    /// A request sent, with the token `ticket` names or as it came.
    #[inline(always)]
    pub(super) fn sent(
        answer: S::Future,
        ticket: Option<Ticket>,
        replay: Option<Replay<S, R::Copy>>,
    ) -> Self {
        Self::with(State::Sent {
            answer,
            ticket,
            replay,
        })
    }

    /// A request that waits for `token`, then goes out as `parked` says.
    pub(super) fn waiting(token: Waiting, parked: Parked<S, R>) -> Self {
        Self::with(State::Waiting {
            token: Some(token),
            parked: Some(Box::new(parked)),
        })
    }

    pub(super) fn failed(error: Error) -> Self {
        Self::with(State::Failed { error: Some(error) })
    }

    fn with(state: State<S, R>) -> Self {
        Self { state }
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

    // The common case, a sent request's answer, is handled here, small enough to inline; the
    // rest is in cold functions.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            if let StateProj::Sent {
                answer,
                ticket,
                replay,
            } = state.as_mut().project()
            {
                let response = ready!(answer.poll(cx)).map_err(Into::into)?;
                if response.status() != StatusCode::UNAUTHORIZED {
                    return Poll::Ready(Ok(response));
                }
                let Some(ticket) = ticket.take() else {
                    return Poll::Ready(Ok(response));
                };
                let replay = replay.take();
                if let Some(response) = after_401(state.as_mut(), &ticket, replay, response) {
                    return Poll::Ready(Ok(response));
                }
            }
            if let Some(response) = ready!(poll_rare(state.as_mut(), cx))? {
                return Poll::Ready(Ok(response));
            }
        }
    }
}

/// After a 401 answer to a request that carried `ticket`: moves on to resending the copy, or
/// returns the answer when it is final.
#[cold]
#[inline(never)]
fn after_401<S, R>(
    mut state: Pin<&mut State<S, R>>,
    ticket: &Ticket,
    replay: Option<Replay<S, R::Copy>>,
    response: S::Response,
) -> Option<S::Response>
where
    S: Service<R>,
    S::Response: HttpResponse,
    R: Request,
{
    let resend = replay.and_then(|replay| Some((replay.service, R::restore(replay.copy)?)));
    let next = protocol::after_unauthorized(ticket, response.headers(), resend.is_some());
    match (next, resend) {
        (Next::Resend(ticket), Some((service, request))) => {
            state.set(resent(service, request, &ticket));
            None
        }
        (Next::Wait(wait), Some(copy)) => {
            state.set(State::AwaitingNewToken {
                token: Box::pin(wait.ticket()),
                copy: Some(Box::new(copy)),
            });
            None
        }
        _ => Some(response),
    }
}

/// Polls the states other than `Sent`: `Some` is the final answer, `None` means the state
/// moved on and the caller polls again.
#[cold]
#[inline(never)]
fn poll_rare<S, R>(
    mut state: Pin<&mut State<S, R>>,
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
            let Some(waiting) = parked.as_mut() else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            if let Some(pending) = token {
                waiting.ticket = Some(ready!(pending.as_mut().poll(cx))?);
                *token = None;
            }
            ready!(waiting.service.poll_ready(cx)).map_err(Into::into)?;
            let Some(parked) = parked.take() else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            let Parked {
                mut service,
                mut request,
                copy,
                ticket,
            } = *parked;
            if let Some(ticket) = &ticket {
                request.headers_mut().insert(AUTHORIZATION, ticket.header());
            }
            let answer = service.call(request);
            let replay = copy.map(|copy| Replay { service, copy });
            state.set(State::Sent {
                answer,
                ticket,
                replay,
            });
        }
        StateProj::AwaitingNewToken { token, copy } => {
            let ticket = ready!(token.as_mut().poll(cx))?;
            let Some(copy) = copy.take() else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            let (service, request) = *copy;
            state.set(resent(service, request, &ticket));
        }
        StateProj::Resent { answer } => {
            return answer.as_mut().poll(cx).map_ok(Some).map_err(Into::into);
        }
        StateProj::Failed { error } => {
            let error = error.take().unwrap_or_else(polled_after_completion_error);
            return Poll::Ready(Err(error.into()));
        }
    }
    Poll::Ready(Ok(None))
}

/// The state that sends the copy with `ticket`'s token.
fn resent<S, R>(service: S, mut request: R, ticket: &Ticket) -> State<S, R>
where
    S: Service<R>,
    R: Request,
{
    protocol::resending(ticket);
    request.headers_mut().insert(AUTHORIZATION, ticket.header());
    State::Resent {
        answer: Box::pin(Oneshot::new(service, request)),
    }
}

fn polled_after_completion_error() -> Error {
    Error::new(ErrorKind::Interrupted).with_detail("response future polled after completion")
}

fn polled_after_completion() -> BoxError {
    polled_after_completion_error().into()
}

impl<S, R> fmt::Debug for ResponseFuture<S, R>
where
    S: Service<R>,
    R: Request,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Waiting { .. } => "waiting",
            State::Sent { .. } => "sent",
            State::AwaitingNewToken { .. } => "awaiting new token",
            State::Resent { .. } => "resent",
            State::Failed { .. } => "failed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
