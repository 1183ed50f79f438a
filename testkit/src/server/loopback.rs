//! The server over HTTP/1.1 and HTTP/2 on 127.0.0.1: the same endpoints as in process, routed
//! by path.

use std::{convert::Infallible, net::SocketAddr};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::{net::TcpListener, task::AbortHandle};

use super::{AuthServer, Route, wire::respond};
use crate::Body;

/// An [`AuthServer`] listening on a port of 127.0.0.1 the system picked, until this is
/// dropped.
///
/// It serves `POST /token`, `POST /revoke`, `POST /device` (device authorization, RFC 8628),
/// the API under `/api`, and the metadata document
/// an [`AuthServer::metadata`] sets at its well-known path; any other path is 404.
#[derive(Debug)]
#[must_use = "the server stops listening when this is dropped"]
pub struct Loopback {
    addr: SocketAddr,
    accepting: AbortHandle,
}

impl AuthServer {
    /// Serves this server over HTTP on 127.0.0.1.
    pub async fn serve(&self) -> std::io::Result<Loopback> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepting = tokio::spawn(accept(listener, self.clone())).abort_handle();
        Ok(Loopback { addr, accepting })
    }
}

impl Loopback {
    /// A server listening on `addr` while `accepting` runs.
    pub(crate) fn new(addr: SocketAddr, accepting: AbortHandle) -> Self {
        Self { addr, accepting }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The URL of the token endpoint.
    pub fn token_url(&self) -> String {
        self.url("/token")
    }

    /// The URL of `path` under the API, such as `/orders`.
    pub fn api_url(&self, path: &str) -> String {
        self.url(&format!("/api{path}"))
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

async fn accept(listener: TcpListener, server: AuthServer) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(route(&server, request).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(server: &AuthServer, request: Request<Incoming>) -> Response<Body> {
    let route = match (request.method(), request.uri().path()) {
        (&Method::POST, "/token") => Route::Token,
        // Entra ID's token endpoint: `/{tenant}/oauth2/v2.0/token`.
        (&Method::POST, path) if path.ends_with("/oauth2/v2.0/token") => Route::Token,
        (&Method::POST, "/revoke") => Route::Revocation,
        (&Method::POST, "/device") => Route::Device,
        (_, path) if path.starts_with("/api") => Route::Api,
        (&Method::GET, path) if path.starts_with("/.well-known/") => {
            return server.answer_metadata(path);
        }
        _ => return respond(StatusCode::NOT_FOUND, "not found"),
    };
    server.answer(route, request).await
}
