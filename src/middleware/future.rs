//! The response future of [`OAuth2`](super::OAuth2): wait for a token if need be, send, and
//! after a 401 answer wait for a new token and send the copy once.
//!
//! The states it goes through, and what each holds, are in `state.rs`; what follows an
//! answer is in `resend.rs`.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::StatusCode;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{
    protocol,
    request::{
        Target,
        sealed::{Request, Response as _},
    },
    resend::{Follow, answered, retried},
    state::{Dpop, Parked, Retry, State, StateProj, TicketFuture},
};
use crate::{BoxError, Error, ErrorKind, OAuth2Response, cache::Ticket};

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
    S::Response: OAuth2Response,
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
    S::Response: OAuth2Response,
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
