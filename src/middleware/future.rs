//! The response future of [`OAuth2`](super::OAuth2): wait for a token if need be, send, and
//! after a 401 answer wait for a new token and send the copy once.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::StatusCode;
use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower_service::Service;

use super::{
    protocol::{self, Next},
    request::{
        Target,
        sealed::{Request, Response as _},
    },
};
use crate::{
    BoxError, Error, ErrorKind, HttpResponse, cache::Ticket, dpop::Slot, source::BoxFuture,
};

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
        // request sent as it came) and `to` where it went; `replay` is what sending it again
        // takes, if it can be; `dpop` is there when the token is DPoP-bound.
        Sent {
            #[pin]
            answer: S::Future,
            ticket: Option<Ticket>,
            to: Target,
            replay: Option<Replay<S, R::Copy>>,
            dpop: Option<Dpop<S, R::Copy>>,
        },
        // The answer was 401: the copy waits for a new token.
        AwaitingNewToken {
            token: Waiting,
            copy: Option<Box<(S, R)>>,
            to: Target,
            dpop: Option<Dpop<S, R::Copy>>,
        },
        // Sent again, after a 401 with a new token or with a DPoP nonce. Its answer is final
        // unless what is left here allows the other kind of resend.
        Resent {
            answer: Pin<Box<Oneshot<S, R>>>,
            ticket: Option<Ticket>,
            to: Target,
            replay: Option<Replay<S, R::Copy>>,
            dpop: Option<Dpop<S, R::Copy>>,
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

/// A request that carries a DPoP-bound token: the nonces of its origin, and a second copy,
/// for sending it once more when the server demands a nonce. That resend is apart from the
/// one after a 401 with a new token, so each happens at most once. Held in the future itself,
/// so that a bound request allocates nothing beyond its proof and its copies' buffers.
pub(super) struct Dpop<S, C> {
    pub(super) slot: Arc<Slot>,
    pub(super) ticket: Ticket,
    pub(super) spare: Option<Replay<S, C>>,
}

/// A request waiting to be sent: the service it goes through, its copies for a retry, and
/// its token once that is here.
pub(super) struct Parked<S, R: Request> {
    pub(super) service: S,
    pub(super) request: R,
    pub(super) copy: Option<R::Copy>,
    /// The copy for a DPoP nonce resend, taken in case the token turns out to be bound.
    pub(super) spare: Option<Replay<S, R::Copy>>,
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
        replay: Option<Replay<S, R::Copy>>,
    ) -> Self {
        Self::with(State::Sent {
            answer,
            ticket,
            to,
            replay,
            dpop: None,
        })
    }

    /// A request sent with a DPoP-bound token.
    pub(super) fn sent_with_proof(
        answer: S::Future,
        ticket: Ticket,
        to: Target,
        replay: Option<Replay<S, R::Copy>>,
        dpop: Dpop<S, R::Copy>,
    ) -> Self {
        Self::with(State::Sent {
            answer,
            ticket: Some(ticket),
            to,
            replay,
            dpop: Some(dpop),
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
                to,
                replay,
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
                    replay: replay.take(),
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

/// What may still follow an answer: a retry with a new token after a 401 (`ticket` and
/// `replay`, if the answer came from `to`), and a resend with a DPoP nonce (`dpop`).
struct Follow<S, R: Request> {
    ticket: Option<Ticket>,
    to: Target,
    replay: Option<Replay<S, R::Copy>>,
    dpop: Option<Dpop<S, R::Copy>>,
}

/// After an answer that is a 401 or carries a DPoP nonce: moves on to sending the request
/// again, or returns the answer when it is final.
#[cold]
#[inline(never)]
fn answered<S, R>(
    mut state: Pin<&mut State<S, R>>,
    follow: Follow<S, R>,
    response: S::Response,
) -> Option<S::Response>
where
    S: Service<R>,
    S::Response: HttpResponse,
    R: Request,
{
    let Follow {
        ticket,
        to,
        replay,
        mut dpop,
    } = follow;
    if let Some(bound) = dpop.as_mut()
        && protocol::nonce_demanded(&bound.slot, response.status(), response.headers())
    {
        // Once only: a server that demands a nonce again gets its answer back.
        let Some((service, request)) = bound
            .spare
            .take()
            .and_then(|spare| Some((spare.service, R::restore(spare.copy)?)))
        else {
            return Some(response);
        };
        let same_token = bound.ticket.clone();
        state.set(resend(
            service,
            request,
            &same_token,
            dpop,
            |(answer, dpop)| State::Resent {
                answer,
                ticket,
                to,
                replay,
                dpop,
            },
        ));
        return None;
    }
    if response.status() != StatusCode::UNAUTHORIZED {
        return Some(response);
    }
    let Some(ticket) = ticket else {
        return Some(response);
    };
    let resend_copy = replay.and_then(|replay| Some((replay.service, R::restore(replay.copy)?)));
    let next = protocol::after_unauthorized(&ticket, to, &response, resend_copy.is_some());
    match (next, resend_copy) {
        (Next::Resend(ticket), Some((service, request))) => {
            protocol::resending(&ticket);
            state.set(retried(service, request, &ticket, to, dpop));
            None
        }
        (Next::Wait(wait), Some(copy)) => {
            state.set(State::AwaitingNewToken {
                token: Box::pin(wait.ticket()),
                copy: Some(Box::new(copy)),
                to,
                dpop,
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
            let slot = match &ticket {
                Some(ticket) => protocol::authorize(&mut request, ticket)?,
                None => None,
            };
            let to = request.target();
            let answer = service.call(request);
            let replay = copy.map(|copy| Replay { service, copy });
            let dpop = slot.zip(ticket.as_ref()).map(|(slot, ticket)| Dpop {
                slot,
                ticket: ticket.clone(),
                spare,
            });
            state.set(State::Sent {
                answer,
                ticket,
                to,
                replay,
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
            replay,
            dpop,
        } => {
            let response = ready!(answer.as_mut().poll(cx)).map_err(Into::into)?;
            if dpop.is_none() {
                return Poll::Ready(Ok(Some(response)));
            }
            let follow = Follow {
                ticket: ticket.take(),
                to: *to,
                replay: replay.take(),
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

/// The state that sends the copy to `to` after a 401 with the new token `ticket`: its answer
/// is final, but for a DPoP nonce resend if the request still has its spare copy.
fn retried<S, R>(
    service: S,
    request: R,
    ticket: &Ticket,
    to: Target,
    dpop: Option<Dpop<S, R::Copy>>,
) -> State<S, R>
where
    S: Service<R>,
    R: Request,
{
    resend(service, request, ticket, dpop, |(answer, dpop)| {
        State::Resent {
            answer,
            ticket: None,
            to,
            replay: None,
            dpop,
        }
    })
}

/// Sends `request` through `service` with `ticket`'s token (and a new DPoP proof), keeping
/// what `dpop` has left for the answer; `then` makes the state from the answer's future.
fn resend<S, R>(
    service: S,
    mut request: R,
    ticket: &Ticket,
    dpop: Option<Dpop<S, R::Copy>>,
    then: impl FnOnce(OnTheWay<S, R>) -> State<S, R>,
) -> State<S, R>
where
    S: Service<R>,
    R: Request,
{
    let slot = match protocol::authorize(&mut request, ticket) {
        Ok(slot) => slot,
        Err(error) => return State::Failed { error: Some(error) },
    };
    // A token that is not bound needs nothing more; one that is carries the spare copy on,
    // if it is still there.
    let dpop = slot.map(|slot| Dpop {
        slot,
        ticket: ticket.clone(),
        spare: dpop.and_then(|dpop| dpop.spare),
    });
    then((Box::pin(Oneshot::new(service, request)), dpop))
}

/// A request sent again, and what its answer may still lead to.
type OnTheWay<S, R> = (
    Pin<Box<Oneshot<S, R>>>,
    Option<Dpop<S, <R as Request>::Copy>>,
);

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
