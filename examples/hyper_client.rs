//! A production-shaped client stack: hyper-util over rustls (the `https` feature), with
//! tower-http tracing, a timeout, `OAuth2Layer`, and redirects followed below it, stored in a
//! struct as a `BoxCloneSyncService`.
//!
//! ```sh
//! cargo run --features https --example hyper_client
//! ```
//!
//! It calls the demo API on loopback and exits 0 only if the calls succeeded with one grant.
//! The trace (tower-http's `api_call` spans, the crate's `token_fetch` span, hyper's events)
//! goes to stderr at `DEBUG`, in colour only when stderr is a terminal.

use std::{io::IsTerminal, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use tower::{BoxError, ServiceBuilder, ServiceExt, util::BoxCloneSyncService};
use tower_http::{follow_redirect::FollowRedirectLayer, trace::TraceLayer};
use tower_oauth2::{ClientAuth, OAuth2Layer, TokenClient, grant::ClientCredentials, https};

use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET};

/// The response body every layer's body is boxed into, so the stack has a name.
type ApiBody = UnsyncBoxBody<Bytes, BoxError>;

/// An API client to keep in application state: cheap to clone, `Send + Sync`, and its type
/// does not change when a layer is added.
#[derive(Clone)]
struct Api {
    http: BoxCloneSyncService<Request<Full<Bytes>>, Response<ApiBody>, BoxError>,
    base: String,
}

impl Api {
    fn new(token_url: &str, base: String) -> Result<Self, BoxError> {
        // One line for a token endpoint client over HTTPS (or loopback http).
        let endpoint = TokenClient::https(token_url)?;
        let grant = ClientCredentials::new(endpoint, ClientAuth::basic(CLIENT_ID, CLIENT_SECRET))
            .scopes(["orders:read"]);

        // Outermost first. Trace sees one span per call, whatever the layers below retry;
        // Timeout bounds the whole call, the token fetch and the retry included; OAuth2Layer
        // attaches the token once, above FollowRedirect, whose default policy strips
        // `Authorization` when a redirect leaves the origin.
        let stack = ServiceBuilder::new()
            .map_response(boxed)
            .layer(
                // Method and path only: a query string may carry secrets.
                TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                    tracing::debug_span!(
                        "api_call",
                        method = %request.method(),
                        path = request.uri().path(),
                    )
                }),
            )
            .timeout(Duration::from_secs(10))
            .layer(OAuth2Layer::new(grant))
            .layer(FollowRedirectLayer::new())
            .service(https::client()?);
        Ok(Self {
            http: BoxCloneSyncService::new(stack),
            base,
        })
    }

    async fn get(&self, path: &str) -> Result<(u16, Bytes), BoxError> {
        let request = Request::get(format!("{}{path}", self.base)).body(Full::default())?;
        let response = self.http.clone().oneshot(request).await?;
        let status = response.status().as_u16();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }
}

fn boxed<B>(response: Response<B>) -> Response<ApiBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    response.map(|body| body.map_err(Into::into).boxed_unsync())
}

#[tokio::main]
async fn main() -> Result<std::process::ExitCode, BoxError> {
    // Colours only on a terminal: a log file or a CI log gets plain text.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let server = AuthServer::demo();
    let loopback = server.serve().await?;
    let api = Api::new(&loopback.token_url(), loopback.api_url(""))?;

    let mut ok = true;
    for path in ["/orders", "/orders/1", "/orders/2"] {
        let (status, body) = api.get(path).await?;
        println!("GET {path}: {status} {}", String::from_utf8_lossy(&body));
        ok &= status == 200;
    }
    println!("The server issued {} token for 3 calls.", server.grants());
    ok &= server.grants() == 1;
    Ok(if ok {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
