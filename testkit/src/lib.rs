//! A fake OAuth 2.0 authorization server and the API it protects, shared by tower-oauth2's
//! tests, examples and benchmarks.
//!
//! [`AuthServer`] is one model of the server, reached two ways with the same behaviour:
//!
//! - in process, as tower services ([`AuthServer::token_endpoint`], [`AuthServer::api`]), for
//!   fast hermetic tests, paused clocks included;
//! - over HTTP on `127.0.0.1` ([`AuthServer::serve`]), for the examples and for tests that run
//!   a binary or need a real socket.
//!
//! [`FaultServer`] is the token endpoint at the socket level instead: raw HTTP/1.1 written by
//! hand, so that hangs, resets and refused connections are real.
//!
//! [`redis_proxy::RedisProxy`] does the same for Redis: a proxy in front of a real
//! redis-server that delays, fails or cuts off the commands its rules pick.
//!
//! The kit speaks plain `http`, `hyper`, `tokio` and `tower`; it does not depend on
//! tower-oauth2, whose tests would otherwise see two copies of its types. Helpers that need the
//! crate's types (a grant against this server, say) live with the tests.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use tower_oauth2_testkit::AuthServer;
//!
//! let server = AuthServer::demo();
//! let loopback = server.serve().await?;
//! // A client gets tokens from `loopback.token_url()` as `CLIENT_ID` with `CLIENT_SECRET`,
//! // and calls `loopback.api_url("/orders")`; then the test looks at what the server saw.
//! assert_eq!(server.grants(), 0);
//! # Ok(())
//! # }
//! ```

mod fault;
pub mod keys;
pub mod redis_proxy;
mod server;
pub mod workload;

pub use fault::{Fault, FaultServer};
pub use server::{AuthServer, DeviceUser, Endpoint, FederatedCredential, Loopback, Received};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;

/// The body of the requests and answers of the in-process services.
pub type Body = Full<Bytes>;

/// The client id [`AuthServer::demo`] knows.
pub const CLIENT_ID: &str = "demo-client";
/// The secret of [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "demo-secret";
/// A refresh token [`AuthServer::demo`] knows from the start.
pub const REFRESH_TOKEN: &str = "demo-refresh-token";

/// The header in which the API names the access token it accepted.
const ACCEPTED_TOKEN: &str = "x-accepted-token";

/// The access token the API accepted for `response`, or `None` if it refused the request.
pub fn accepted_token<B>(response: &Response<B>) -> Option<&str> {
    response.headers().get(ACCEPTED_TOKEN)?.to_str().ok()
}

/// A `GET` of `uri` with an empty body.
pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .body(Body::default())
        .expect("a valid URI")
}
