//! The states of [`ResponseFuture`](super::ResponseFuture), the future a request's call
//! returns, and what each state holds. `call` picks the first; `future.rs` polls them and
//! `resend.rs` decides what follows an answer.
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
//! happens at most once.

use std::{pin::Pin, sync::Arc};

use pin_project_lite::pin_project;
use tower::util::Oneshot;
use tower_service::Service;

use super::request::{Target, sealed::Request};
use crate::{Error, cache::Ticket, dpop::OriginNonce, source::BoxFuture};

/// A token on its way.
pub(super) type TicketFuture = BoxFuture<'static, Result<Ticket, Error>>;

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

/// What sending the copy after a 401 takes.
pub(super) struct Retry<S, C> {
    /// A clone of the inner service; `Oneshot` makes it ready when the copy goes out.
    pub(super) service: S,
    pub(super) copy: C,
}

/// A request that carries a DPoP-bound token: its origin's nonce, and a second copy,
/// for sending it once more when the server demands a nonce. That resend is apart from the
/// one after a 401 with a new token, so each happens at most once. Held in the future itself,
/// so that a bound request allocates nothing beyond its proof and its copies' buffers.
pub(super) struct Dpop<S, C> {
    pub(super) nonce: Arc<OriginNonce>,
    pub(super) ticket: Ticket,
    pub(super) spare: Option<Retry<S, C>>,
}
