//! The server in process: each endpoint as a tower `Service`, with no socket in between.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower_service::Service;

use super::{AuthServer, Route};
use crate::Body;

type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// An endpoint of an [`AuthServer`] (token, revocation, device authorization or API) as a tower `Service` for
/// requests with a body of type `B`.
///
/// Every request it gets is one for its endpoint, whatever the URI.
pub struct Endpoint<B = Body> {
    server: AuthServer,
    route: Route,
    // One body type, not any: with a service for every body, a token client could not infer
    // the body it sends, nor `ServiceExt` calls the request they take.
    body: PhantomData<fn(B)>,
}

impl AuthServer {
    /// The token endpoint, in process.
    pub fn token_endpoint(&self) -> Endpoint {
        self.endpoint(Route::Token)
    }

    /// The revocation endpoint, in process.
    pub fn revocation_endpoint(&self) -> Endpoint {
        self.endpoint(Route::Revocation)
    }

    /// The device authorization endpoint (RFC 8628 section 3.1), in process.
    pub fn device_endpoint(&self) -> Endpoint {
        self.endpoint(Route::Device)
    }

    /// The protected API, in process, for requests with a body of type `B`.
    pub fn api<B>(&self) -> Endpoint<B> {
        self.endpoint(Route::Api)
    }

    fn endpoint<B>(&self, route: Route) -> Endpoint<B> {
        Endpoint {
            server: self.clone(),
            route,
            body: PhantomData,
        }
    }
}

impl<B> Service<Request<B>> for Endpoint<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> ResponseFuture {
        let (server, route) = (self.server.clone(), self.route);
        Box::pin(async move { Ok(server.answer(route, request).await) })
    }
}

impl<B> Clone for Endpoint<B> {
    fn clone(&self) -> Self {
        self.server.endpoint(self.route)
    }
}

impl<B> fmt::Debug for Endpoint<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("server", &self.server)
            .field("route", &self.route)
            .finish()
    }
}
