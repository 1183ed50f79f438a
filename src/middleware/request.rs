//! The request and response types [`OAuth2`](super::OAuth2) can serve.
//!
//! One state machine serves every client: it needs only a request's headers, where it goes,
//! and a copy made before it is sent; and a response's status. Each client's types provide
//! those through the sealed traits here, so `http::Request` and `reqwest::Request` share the
//! code that attaches tokens and retries after a 401.

use http::{HeaderMap, StatusCode};

use super::{replay::ReplayPolicy, snapshot::Snapshot};
use crate::origin::Destination;

/// Where a request went, as a fingerprint of its URI: a 401 answer from somewhere else (the
/// end of a redirect that dropped the token) says nothing about the token. Equal URIs give
/// equal fingerprints; two different URIs sharing one only make a 401 retire the token, as it
/// would without the check.
// Public in a private module: the sealed traits name it.
#[allow(unreachable_pub)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target(u64);

impl Target {
    /// A request whose answer never says where it came from, or that carries no token:
    /// nothing to compare.
    pub(crate) const UNKNOWN: Self = Self(0);

    /// The fingerprint of `parts`, the pieces of one URI.
    #[inline]
    pub(crate) fn of(parts: &[&str]) -> Self {
        use std::hash::{Hash, Hasher};
        // `str`'s `Hash` ends each part, so `ab` + `c` and `a` + `bc` differ.
        let mut hasher = std::hash::DefaultHasher::new();
        parts.hash(&mut hasher);
        Self(hasher.finish())
    }

    /// The fingerprint of `uri`.
    #[cfg_attr(not(feature = "tower-http"), allow(dead_code))]
    #[inline]
    pub(crate) fn of_uri(uri: &http::Uri) -> Self {
        Self::of(&[
            uri.scheme_str().unwrap_or_default(),
            uri.authority().map_or("", http::uri::Authority::as_str),
            uri.path_and_query()
                .map_or("", http::uri::PathAndQuery::as_str),
        ])
    }
}

/// A request type [`OAuth2<S, P>`](super::OAuth2) can authenticate and, under its
/// [`ReplayPolicy`] `P`, copy for a retry.
///
/// Implemented for:
///
/// - [`http::Request<B>`] for every body `B` and every policy `P: ReplayPolicy<B>`;
/// - `reqwest::Request` (with the `reqwest` feature) for the three policies this crate ships:
///   [`EmptyBodies`](super::EmptyBodies) copies requests without a body or with an empty one,
///   [`CloneBodies`](super::CloneBodies) copies every request whose body is in memory (through
///   `reqwest::Request::try_clone`; a streaming body is never copied), and
///   [`NoReplay`](super::NoReplay) copies none.
///
/// This trait is sealed: it cannot be implemented outside this crate.
pub trait OAuth2Request<P>: sealed::Request + sealed::Replay<P> {}

impl<R: sealed::Request + sealed::Replay<P>, P> OAuth2Request<P> for R {}

/// A response type whose status [`OAuth2`](super::OAuth2) reads: [`http::Response<B>`], and
/// `reqwest::Response` with the `reqwest` feature.
///
/// This trait is sealed: it cannot be implemented outside this crate.
pub trait OAuth2Response: sealed::Response {}

impl<R: sealed::Response> OAuth2Response for R {}

pub(crate) mod sealed {
    use http::{HeaderMap, StatusCode};

    use crate::origin::Destination;

    // Public in a private module, so the public traits can name them and nobody else can
    // implement them.
    #[allow(unreachable_pub)]
    pub trait Request: Sized {
        /// What is kept of a request, before it is first sent, to send it again after a 401.
        type RequestCopy;

        fn headers(&self) -> &HeaderMap;

        fn headers_mut(&mut self) -> &mut HeaderMap;

        /// The request method, for DPoP proofs.
        fn method(&self) -> &str;

        /// The scheme of where the request goes; `None` for a relative URI.
        fn scheme(&self) -> Option<&str>;

        /// Where the request goes.
        fn destination(&self) -> Destination<'_>;

        /// Where the request goes, to compare with where its answer says it came from.
        fn target(&self) -> super::Target;

        /// The request to send again; `None` if the copy cannot be read back.
        fn restore(copy: Self::RequestCopy) -> Option<Self>;
    }

    /// How replay policy `P` copies this request.
    #[allow(unreachable_pub)]
    pub trait Replay<P>: Request {
        /// A copy to send again after a 401, made before the request is first sent.
        fn replay(&self, policy: &P) -> Option<Self::RequestCopy>;
    }

    #[allow(unreachable_pub)]
    pub trait Response {
        fn status(&self) -> StatusCode;

        fn headers(&self) -> &HeaderMap;

        /// Where the answer came from, when the client says: after redirects, that may not be
        /// where the request was sent.
        fn answered_from(&self) -> Option<super::Target>;
    }
}

impl<B> sealed::Request for http::Request<B> {
    type RequestCopy = Snapshot<B>;

    #[inline]
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }

    #[inline]
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }

    fn method(&self) -> &str {
        self.method().as_str()
    }

    #[inline]
    fn scheme(&self) -> Option<&str> {
        self.uri().scheme_str()
    }

    fn destination(&self) -> Destination<'_> {
        Destination::of(self.uri())
    }

    #[inline]
    fn target(&self) -> Target {
        // Only an answer that tower-http's `FollowRedirect` marked says where it came from.
        #[cfg(feature = "tower-http")]
        {
            Target::of_uri(self.uri())
        }
        #[cfg(not(feature = "tower-http"))]
        {
            Target::UNKNOWN
        }
    }

    fn restore(copy: Snapshot<B>) -> Option<Self> {
        copy.into_request()
    }
}

impl<B, P: ReplayPolicy<B>> sealed::Replay<P> for http::Request<B> {
    #[inline]
    fn replay(&self, policy: &P) -> Option<Snapshot<B>> {
        policy
            .replay_body(self.body())
            .and_then(|body| Snapshot::take(self, body))
    }
}

impl<B> sealed::Response for http::Response<B> {
    #[inline]
    fn status(&self) -> StatusCode {
        self.status()
    }

    fn headers(&self) -> &HeaderMap {
        self.headers()
    }

    fn answered_from(&self) -> Option<Target> {
        #[cfg(feature = "tower-http")]
        {
            self.extensions()
                .get::<tower_http::follow_redirect::RequestUri>()
                .map(|uri| Target::of_uri(&uri.0))
        }
        #[cfg(not(feature = "tower-http"))]
        {
            None
        }
    }
}
