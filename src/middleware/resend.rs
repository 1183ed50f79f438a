//! After an answer: whether the request goes out once more, and the state that sends it. Two
//! resends are possible, each at most once: with a new token after a 401 (a copy taken before
//! the first send), and with the same token and a new DPoP proof when the server demands a
//! nonce (a second copy, the spare).

use std::{pin::Pin, sync::Arc};

use http::StatusCode;
use tower::util::Oneshot;
use tower_service::Service;

use super::{
    protocol::{self, Next},
    request::{
        Target,
        sealed::{Request, Response as _},
    },
    state::{Dpop, Retry, State},
};
use crate::{OAuth2Response, cache::Ticket};

/// What may still follow an answer: a retry with a new token after a 401 (`ticket` and
/// `retry`, if the answer came from `to`), and a resend with a DPoP nonce (`dpop`).
pub(super) struct Follow<S, R: Request> {
    pub(super) ticket: Option<Ticket>,
    pub(super) to: Target,
    pub(super) retry: Option<Retry<S, R::RequestCopy>>,
    pub(super) dpop: Option<Dpop<S, R::RequestCopy>>,
}

/// After an answer that is a 401 or carries a DPoP nonce: moves on to sending the request
/// again, or returns the answer when it is final.
#[cold]
#[inline(never)]
pub(super) fn answered<S, R>(
    mut state: Pin<&mut State<S, R>>,
    follow: Follow<S, R>,
    response: S::Response,
) -> Option<S::Response>
where
    S: Service<R>,
    S::Response: OAuth2Response,
    R: Request,
{
    let Follow {
        ticket,
        to,
        retry,
        mut dpop,
    } = follow;
    if let Some(bound) = dpop.as_mut()
        && protocol::nonce_demanded(&bound.nonce, to, &response)
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
                retry,
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
    let resend_copy = retry.and_then(|retry| Some((retry.service, R::restore(retry.copy)?)));
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

/// The state that sends the copy to `to` after a 401 with the new token `ticket`: its answer
/// is final, but for a DPoP nonce resend if the request still has its spare copy.
pub(super) fn retried<S, R>(
    service: S,
    request: R,
    ticket: &Ticket,
    to: Target,
    dpop: Option<Dpop<S, R::RequestCopy>>,
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
            retry: None,
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
    dpop: Option<Dpop<S, R::RequestCopy>>,
    then: impl FnOnce(OnTheWay<S, R>) -> State<S, R>,
) -> State<S, R>
where
    S: Service<R>,
    R: Request,
{
    let again = dpop.as_ref().map(|dpop| Arc::clone(&dpop.nonce));
    let nonce = match protocol::authorize_again(&mut request, ticket, again) {
        Ok(nonce) => nonce,
        Err(error) => return State::Failed { error: Some(error) },
    };
    // A token that is not bound needs nothing more; one that is carries the spare copy on,
    // if it is still there.
    let dpop = nonce.map(|nonce| Dpop {
        nonce,
        ticket: ticket.clone(),
        spare: dpop.and_then(|dpop| dpop.spare),
    });
    then((Box::pin(Oneshot::new(service, request)), dpop))
}

/// A request sent again, and what its answer may still lead to.
type OnTheWay<S, R> = (
    Pin<Box<Oneshot<S, R>>>,
    Option<Dpop<S, <R as Request>::RequestCopy>>,
);
