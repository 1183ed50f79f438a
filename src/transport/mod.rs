//! The HTTP clients the crate sends its own requests through (to the token endpoint and the
//! other endpoints of the authorization server), and the one type they are all erased to.
//!
//! Any tower HTTP client will do ([`AuthServerTransport`]); the `https` feature adds a ready-made one
//! ([`https`]), and the `reqwest` features turn a reqwest client into one (`reqwest.rs`), for
//! `TokenClient::reqwest`. Nothing here knows the token client: it stands above.

#[cfg(feature = "https")]
#[cfg_attr(docsrs, doc(cfg(feature = "https")))]
pub mod https;
#[cfg(any(feature = "reqwest", feature = "reqwest-0.12"))]
mod reqwest;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use tower::{Service, ServiceExt, util::BoxCloneSyncService};

#[cfg(feature = "reqwest")]
pub(crate) use self::reqwest::reqwest_without_redirects;
#[cfg(feature = "reqwest-0.12")]
pub(crate) use self::reqwest::reqwest012_without_redirects;
use crate::BoxError;

pub(crate) type ErasedResponse = Response<UnsyncBoxBody<Bytes, BoxError>>;
/// Every HTTP client, as a [`TokenClient`](crate::TokenClient) holds it.
pub(crate) type HttpService = BoxCloneSyncService<Request<Bytes>, ErasedResponse, BoxError>;

/// What the crate's own requests to the authorization server (token, discovery, revocation)
/// go through, as [`TokenClient`](crate::TokenClient) and [`Discovery`](crate::Discovery)
/// take it: any tower [`Service`] that takes `http::Request<B>`, for a request body `B` that
/// can be made from [`Bytes`], and answers an `http::Response` whose body yields [`Bytes`].
///
/// hyper-util's legacy `Client`, a tower-http stack over it, and a [`tower::service_fn`] that
/// takes `Request<Full<Bytes>>` all are. In full, the service must be `Clone + Send + Sync +
/// 'static`, with a `Send + 'static` future and errors that convert into [`BoxError`]; `B` must
/// be `From<Bytes> + Send + 'static`; the response body must be `Send + 'static`, with errors
/// that convert into [`BoxError`].
///
/// `reqwest::Client` is not one (it takes `reqwest::Request`); with the `reqwest` feature,
/// `TokenClient::reqwest` sends through it.
///
/// Every type that meets those bounds implements this trait; it exists so that they are
/// written once. This trait is sealed: it cannot be implemented outside this crate.
pub trait AuthServerTransport<B>: sealed::Erase<B> {}

impl<S: sealed::Erase<B>, B> AuthServerTransport<B> for S {}

pub(crate) mod sealed {
    use super::*;

    /// Turns a client into the one type every [`TokenClient`](crate::TokenClient) holds.
    // Public in a private module, so the public trait can name it and nobody else can
    // implement it.
    #[allow(unreachable_pub)]
    pub trait Erase<B> {
        fn erase(self) -> HttpService;
    }

    impl<S, B, ResBody> Erase<B> for S
    where
        S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + Sync + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
        B: From<Bytes> + Send + 'static,
        ResBody: Body<Data = Bytes> + Send + 'static,
        ResBody::Error: Into<BoxError>,
    {
        fn erase(self) -> HttpService {
            let http = self
                .map_request(|request: Request<Bytes>| request.map(B::from))
                .map_response(|response: Response<ResBody>| {
                    response.map(|body| body.map_err(Into::into).boxed_unsync())
                })
                .map_err(Into::into);
            BoxCloneSyncService::new(http)
        }
    }
}
