//! What the middleware does for one request, written once for both front-ends (the tower
//! [`OAuth2`](super::OAuth2) service and the reqwest-middleware middleware): whether the request
//! gets a token, and what follows a 401 answer. The log lines live here too.

use std::sync::Arc;

use http::header::AUTHORIZATION;

use super::{
    challenge,
    request::{
        Target,
        sealed::{Request, Response},
    },
    routes::Routes,
};
use crate::{
    Error, TokenCache,
    cache::{Ticket, Wait},
    dpop::{Bound, DPOP, OriginNonce},
    origin::{Decision, Origins},
};

/// How a request starts.
pub(crate) enum Start {
    /// Send it as it is: it has an `Authorization` header of its own, or goes to an origin
    /// the token may not go to and the layer sends such requests without a token.
    AsIs,
    /// Fail it: its origin may not get the token.
    Refuse(Error),
    /// Send it with this token.
    Send(Ticket),
    /// Wait for a token first.
    Wait(Wait),
}

/// Where a request's token comes from: the layer's cache, for the origins the layer allows,
/// and the caches of destinations that have one of their own.
pub(crate) struct Tokens<'a> {
    pub(crate) cache: &'a TokenCache,
    pub(crate) origins: &'a Origins,
    pub(crate) routes: &'a Routes,
}

/// Decides how `request` starts.
#[inline(always)]
pub(crate) fn start(tokens: Tokens<'_>, request: &impl Request) -> Start {
    let headers = request.headers();
    // The caller's own credentials are never replaced.
    if !headers.is_empty() {
        if headers.contains_key(AUTHORIZATION) {
            return Start::AsIs;
        }
        if let Some(host) = headers.get(http::header::HOST)
            && let Some(refused) = host_elsewhere(host, &request.destination())
        {
            return Start::Refuse(refused);
        }
    }
    let Tokens {
        mut cache,
        origins,
        routes,
    } = tokens;
    if let Some(routed) = routed(routes, request) {
        cache = routed;
    } else if !origins.attaches_any(request.scheme()) {
        match origins.decide(&request.destination()) {
            Decision::Attach => {}
            Decision::SendAsIs => {
                tracing::debug!("origin not allowed for the token; sending without it");
                return Start::AsIs;
            }
            Decision::Refuse(error) => return Start::Refuse(error),
        }
    }
    match cache.ticket() {
        Ok(ticket) => Start::Send(ticket),
        Err(wait) => Start::Wait(wait),
    }
}

/// A refusal when the request's `Host` header names another authority than its URI: clients
/// such as hyper-util's send a caller's `Host` as it is, and a front end that routes by it
/// would take the token elsewhere than the origin rule allowed.
#[cold]
fn host_elsewhere(host: &http::HeaderValue, to: &crate::origin::Destination<'_>) -> Option<Error> {
    let (Some(scheme), Some(authority)) = (to.scheme, to.authority) else {
        return None;
    };
    let fold = |authority| crate::dpop::origin_authority(scheme, authority);
    let same = host
        .to_str()
        .is_ok_and(|host| fold(host).eq_ignore_ascii_case(fold(authority)));
    (!same).then(|| {
        Error::new(crate::ErrorKind::OriginNotAllowed)
            .with_detail("the Host header names another authority than the request's URI")
    })
}

/// Puts `ticket`'s token on `request`: the `Authorization` header and, for a DPoP-bound
/// token, a proof of its own. For a bound token, returns the nonce of the request's origin,
/// which the answer's nonce goes into.
#[inline(always)]
pub(crate) fn authorize(
    request: &mut impl Request,
    ticket: &Ticket,
) -> Result<Option<Arc<OriginNonce>>, Error> {
    request.headers_mut().insert(AUTHORIZATION, ticket.header());
    match ticket.dpop() {
        None => Ok(None),
        Some(bound) => prove(request, bound, None).map(Some),
    }
}

/// [`authorize`] for a request sent once more, whose first proof's origin nonce `again`
/// names: the nonce an answer demanded went there. Apart from `authorize` because one
/// function taking `again` costs every first send 29 instructions (callgrind) to drop it.
#[cold]
pub(crate) fn authorize_again(
    request: &mut impl Request,
    ticket: &Ticket,
    again: Option<Arc<OriginNonce>>,
) -> Result<Option<Arc<OriginNonce>>, Error> {
    request.headers_mut().insert(AUTHORIZATION, ticket.header());
    match ticket.dpop() {
        None => Ok(None),
        Some(bound) => prove(request, bound, again).map(Some),
    }
}

#[cold]
#[inline(never)]
fn prove(
    request: &mut impl Request,
    bound: &Bound,
    again: Option<Arc<OriginNonce>>,
) -> Result<Arc<OriginNonce>, Error> {
    let (proof, nonce) = bound.sign(request.method(), &request.destination(), again)?;
    request.headers_mut().insert(DPOP, proof);
    Ok(nonce)
}

/// Whether the answer `response` to a request with a DPoP proof for `sent_to`, whose
/// origin's nonce `nonce` keeps, asks for the request again with a nonce; the answer's nonce,
/// if any, is kept either way. An answer that says it came from elsewhere (the end of a
/// redirect) speaks for another origin: its nonce is neither kept nor met.
#[cold]
pub(crate) fn nonce_demanded(
    nonce: &OriginNonce,
    sent_to: Target,
    response: &impl Response,
) -> bool {
    if response.answered_from().is_some_and(|from| from != sent_to) {
        return false;
    }
    let (status, headers) = (response.status(), response.headers());
    nonce.record(headers);
    let demanded = status == http::StatusCode::UNAUTHORIZED
        && headers.contains_key("dpop-nonce")
        && challenge::demands_dpop_nonce(headers);
    if demanded {
        tracing::debug!("DPoP nonce demanded; sending the request again with it");
    }
    demanded
}

/// The cache of the destination `request` goes to, when it has one of its own.
#[inline]
fn routed<'a>(routes: &'a Routes, request: &impl Request) -> Option<&'a TokenCache> {
    if routes.is_empty() {
        return None;
    }
    routes.find(&request.destination())
}

/// What follows a 401 answer to a request sent with a token.
pub(crate) enum Next {
    /// The answer is final: return it as it came.
    Return,
    /// Send the request's copy again with this token.
    Resend(Ticket),
    /// Wait for a new token, then send the copy.
    Wait(Wait),
}

/// Decides what follows a 401 answer `response` to a request that carried `used` to `sent_to`;
/// `replayable` says whether a copy of the request can be sent.
#[cold]
pub(crate) fn after_unauthorized(
    used: &Ticket,
    sent_to: Target,
    response: &impl Response,
    replayable: bool,
) -> Next {
    // The answer came from elsewhere, such as the end of a cross-origin redirect that dropped
    // the token: the token was never refused, and neither this request nor any other needs a
    // new one.
    if response.answered_from().is_some_and(|from| from != sent_to) {
        tracing::debug!("401 answer from another URI than the token was sent to; not retrying");
        return Next::Return;
    }
    let headers = response.headers();
    // The token stays: it was not what the server objected to.
    if !challenge::new_token_may_help(headers, used.dpop().is_some()) {
        tracing::debug!("401 answer that a new token cannot meet; not retrying");
        return Next::Return;
    }
    let Some(cache) = used.cache() else {
        tracing::debug!("401 answer after every handle to the token cache was dropped");
        return Next::Return;
    };
    // Whether or not this request can be sent again, the next ones must not carry the token
    // the server has just refused.
    cache.retire(used.generation());
    if !replayable {
        tracing::debug!("401 answer, but the request could not be replayed");
        return Next::Return;
    }
    tracing::info!("401 answer; retrying once with a new token");
    match cache.ticket_after(used.generation()) {
        Ok(ticket) => Next::Resend(ticket),
        Err(wait) => Next::Wait(wait),
    }
}

/// Counts a copy sent with `ticket`'s token. Only copies that go out count: one whose new token
/// never came is not sent again.
pub(crate) fn resending(ticket: &Ticket) {
    if let Some(cache) = ticket.cache() {
        cache.count_retry();
    }
}
