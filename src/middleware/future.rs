//! The response future of [`OAuth2`](super::OAuth2): wait for a token if need be, send, and
//! after a 401 answer wait for a new token and send the copy once.
//!
//! The states a request's future goes through (`State` below); `call` picks the first:
//!
//! ```text
//!  call ──token cached──────────────────────────────┐
//!   │ no token yet                                  │
//!   ▼                                               ▼
//!  Waiting ──token here, service ready: send─────► Sent ──not a 401─────────────► done
//!  (for the token,                                  │ 401 seen
//!   then the service)                               ├──no copy or ticket, or the 401 came
//!   │ fetch failed                                  │  from elsewhere─────────────► done (the 401)
//!   ▼                                               ├──a newer token is here──────┐
//!  done (the error)                                 ▼                             │
//!                                           AwaitingNewToken                      │
//!                                           (waiting for the refresh)             │
//!                                                   │ new token: send the copy    │
//!                                                   ▼                             │
//!                                           Resent (retrying) ◄───────────────────┘
//!                                                   │ answer
//!                                                   ▼
//!                                                 done, unless the other resend is left
//!
//!  Sent, Resent ──DPoP nonce demanded, spare copy left──► Resent (same token, new proof)
//!  Failed: refused before sending, or a resend's proof failed ──► done (the error)
//! ```
//!
//! Terms: the **copy** is what is kept of a request before it is first sent, to send it again
//! after a 401; the **spare** is a second copy, for a DPoP nonce resend; the **ticket** names
//! the token a request carries, so that a 401 retires that token and no other. Each resend
//! happens at most once; the decisions after an answer are in `resend.rs`.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::StatusCode;
use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower_service::Service;

use super::{
    protocol,
    request::{
        Target,
        sealed::{Request, Response as _},
    },
    resend::{Dpop, Follow, Retry, answered, retried},
};
use crate::{BoxError, Error, ErrorKind, HttpResponse, cache::Ticket, source::BoxFuture};

/// A token on its way.
type TicketFuture = BoxFuture<'static, Result<Ticket, Error>>;

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
    pub(super) enum State<S, R>
    where
        S: Service<R>,
        R: Request,
    {
        // Not sent yet: the request waits for a token (`token` is `None` once it is here),
        // then for its service, which is made ready only then: a fetch can take long, and may
        // go through this very service.
        Waiting {
            token: Option<TicketFuture>,
            parked: Option<Box<Parked<S, R>>>,
        },
        // Sent; its answer is on the way. `ticket` names the token it carries (none for a
        // request sent as it came) and `to` where it went; `retry` is what sending it again
        // takes, if it can be; `dpop` is there when the token is DPoP-bound.
        Sent {
            #[pin]
            answer: S::Future,
            ticket: Option<Ticket>,
            to: Target,
            retry: Option<Retry<S, R::RequestCopy>>,
            dpop: Option<Dpop<S, R::RequestCopy>>,
        },
        // The answer was 401: the copy waits for a new token.
        AwaitingNewToken {
            token: TicketFuture,
            copy: Option<Box<(S, R)>>,
            to: Target,
            dpop: Option<Dpop<S, R::RequestCopy>>,
        },
        // Sent again, after a 401 with a new token or with a DPoP nonce. Its answer is final
        // unless what is left here allows the other kind of resend.
        Resent {
            answer: Pin<Box<Oneshot<S, R>>>,
            ticket: Option<Ticket>,
            to: Target,
            retry: Option<Retry<S, R::RequestCopy>>,
            dpop: Option<Dpop<S, R::RequestCopy>>,
        },
        // Failed before anything was sent.
        Failed {
            error: Option<Error>,
        },
    }
}

/// A request waiting to be sent: the service it goes through, its copies for a retry, and
/// its token once that is here.
pub(super) struct Parked<S, R: Request> {
    pub(super) service: S,
    pub(super) request: R,
    pub(super) copy: Option<R::RequestCopy>,
    /// The copy for a DPoP nonce resend, taken in case the token turns out to be bound.
    pub(super) spare: Option<Retry<S, R::RequestCopy>>,
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
        to: Target,
        retry: Option<Retry<S, R::RequestCopy>>,
    ) -> Self {
        Self::with(State::Sent {
            answer,
            ticket,
            to,
            retry,
            dpop: None,
        })
    }

    /// A request sent with a DPoP-bound token.
    pub(super) fn sent_with_proof(
        answer: S::Future,
        ticket: Ticket,
        to: Target,
        retry: Option<Retry<S, R::RequestCopy>>,
        dpop: Dpop<S, R::RequestCopy>,
    ) -> Self {
        Self::with(State::Sent {
            answer,
            ticket: Some(ticket),
            to,
            retry,
            dpop: Some(dpop),
        })
    }

    /// A request that waits for `token`, then goes out as `parked` says.
    pub(super) fn waiting(token: TicketFuture, parked: Parked<S, R>) -> Self {
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
                to,
                retry,
                dpop,
            } = state.as_mut().project()
            {
                let response = ready!(answer.poll(cx)).map_err(Into::into)?;
                if response.status() != StatusCode::UNAUTHORIZED && dpop.is_none() {
                    return Poll::Ready(Ok(response));
                }
                let follow = Follow {
                    ticket: ticket.take(),
                    to: *to,
                    retry: retry.take(),
                    dpop: dpop.take(),
                };
                if let Some(response) = answered(state.as_mut(), follow, response) {
                    return Poll::Ready(Ok(response));
                }
            }
            if let Some(response) = ready!(poll_rare(state.as_mut(), cx))? {
                return Poll::Ready(Ok(response));
            }
        }
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
    S::Response: HttpResponse,
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
                spare,
                ticket,
            } = *parked;
            let nonce = match &ticket {
                Some(ticket) => protocol::authorize(&mut request, ticket)?,
                None => None,
            };
            let to = request.target();
            let answer = service.call(request);
            let retry = copy.map(|copy| Retry { service, copy });
            let dpop = nonce.zip(ticket.as_ref()).map(|(nonce, ticket)| Dpop {
                nonce,
                ticket: ticket.clone(),
                spare,
            });
            state.set(State::Sent {
                answer,
                ticket,
                to,
                retry,
                dpop,
            });
        }
        StateProj::AwaitingNewToken {
            token,
            copy,
            to,
            dpop,
        } => {
            let ticket = ready!(token.as_mut().poll(cx))?;
            let Some(copy) = copy.take() else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            let (service, request) = *copy;
            protocol::resending(&ticket);
            let (to, dpop) = (*to, dpop.take());
            state.set(retried(service, request, &ticket, to, dpop));
        }
        StateProj::Resent {
            answer,
            ticket,
            to,
            retry,
            dpop,
        } => {
            let response = ready!(answer.as_mut().poll(cx)).map_err(Into::into)?;
            if dpop.is_none() {
                return Poll::Ready(Ok(Some(response)));
            }
            let follow = Follow {
                ticket: ticket.take(),
                to: *to,
                retry: retry.take(),
                dpop: dpop.take(),
            };
            return Poll::Ready(Ok(answered(state.as_mut(), follow, response)));
        }
        StateProj::Failed { error } => {
            let error = error.take().unwrap_or_else(polled_after_completion_error);
            return Poll::Ready(Err(error.into()));
        }
    }
    Poll::Ready(Ok(None))
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
