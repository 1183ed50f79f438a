//! Tower middleware that makes any HTTP client an authenticated OAuth 2.0 client.
//!
//! [`OAuth2Layer`] wraps any tower [`Service`](tower_service::Service) that sends
//! `http::Request`s: hyper-util's client, a tower-http stack, the client an axum app uses for
//! outbound calls. Every request gets `Authorization: Bearer <token>`. Tokens come from a
//! [`TokenCache`] shared by all clones of the client: one grant runs at a time however many
//! requests need a token, tokens are refreshed in the background before they expire, and a
//! 401 answer makes the layer fetch a new token and retry the request once.
//!
//! # Example
//!
//! ```
//! # use std::convert::Infallible;
//! # use bytes::Bytes;
//! # use http::{Request, Response, StatusCode};
//! # use http_body_util::Full;
//! # use tower::service_fn;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_oauth2::BoxError> {
//! # // A fake of the authorization server and the API, so this example runs anywhere.
//! # let http = service_fn(|request: Request<Full<Bytes>>| async move {
//! #     let body = match request.uri().path() {
//! #         "/oauth2/token" => r#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#,
//! #         _ if request.headers()["authorization"] == "Bearer abc" => r#"{"orders":[]}"#,
//! #         _ => "",
//! #     };
//! #     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
//! # });
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_oauth2::{ClientAuth, OAuth2Layer, TokenClient, grant::ClientCredentials};
//!
//! // `http` is any tower HTTP client, such as hyper-util's `Client`.
//! let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http.clone())?;
//! let grant = ClientCredentials::new(endpoint, ClientAuth::basic("my-client", "my-secret"))
//!     .scopes(["orders:read"]);
//! let client = ServiceBuilder::new()
//!     .layer(OAuth2Layer::new(grant))
//!     .service(http);
//!
//! let request = Request::get("https://api.example.com/orders").body(Full::default())?;
//! let response = client.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! # Ok(())
//! # }
//! ```
//!
//! # How it fits together
//!
//! - [`OAuth2Layer`] / [`OAuth2`]: attaches the token; on a 401 answer invalidates it, waits
//!   for a new one and sends the request again, once, if its [`ReplayPolicy`] could copy it.
//! - [`TokenCache`]: holds the current token; hands it out with one atomic load, no lock and
//!   no allocation; runs one fetch at a time and shares its result with every waiter.
//! - [`TokenSource`]: how a token is obtained. [`grant::ClientCredentials`] ships; writing
//!   your own takes a few lines.
//! - [`TokenClient`]: posts token requests to the token endpoint through the HTTP client you
//!   give it, with client authentication ([`ClientAuth`]), a timeout, a body size limit, no
//!   redirects, and typed errors for every way a server answers wrongly.
//!
//! # Errors
//!
//! The middleware's error is tower's [`BoxError`]. Errors of the inner service pass through
//! unchanged; failing to get a token is an [`Error`], with a [`kind`](Error::kind) and the
//! server's [OAuth error code](Error::oauth_error), [description](Error::description) and
//! [status](Error::status). Both RFC 6749 error bodies and vendor error envelopes
//! (`{"meta": {..}, "errors": [{"httpcode": 400, "message": ".."}]}`) become
//! [`ErrorKind::Rejected`]. No secret appears in any error message or `Debug` output.
//! [`failures`] shows, fault by fault, what callers see when the token endpoint misbehaves.
//!
//! # Middleware ordering
//!
//! Put `OAuth2Layer` outside (above) tower-http's `FollowRedirectLayer`: the token is then
//! attached once, and `FollowRedirect`'s default policy strips `Authorization` when a redirect
//! leaves the origin, so the token never follows a redirect to another host. Put a `Timeout`
//! outside `OAuth2Layer` to bound the whole exchange, token fetch and retry included.
//!
//! ```text
//! request ─► Timeout ─► OAuth2Layer ─► FollowRedirect ─► HTTP client ─► network
//! ```
//!
//! # Cancel safety
//!
//! Dropping a response future never cancels a token fetch: the fetch runs in a task of its own
//! on the Tokio runtime, and its token is cached whether or not anyone still waits for it, so a
//! refresh token the server rotated is never lost. Dropping the future while the request is out
//! drops the inner service's future, as with any middleware.
//!
//! # Runtime
//!
//! Fetches and expiry timers are spawned on the current Tokio runtime. Outside one, a request
//! that needs a fetch fails with [`ErrorKind::Config`].

// Data from the network or the user never panics the library; tests may unwrap.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
#[path = "fuzz.rs"]
pub mod __fuzz;
mod cache;
mod endpoint;
#[doc = include_str!("../docs/failures.md")]
pub mod failures {}
mod error;
pub mod grant;
mod secret;
mod service;
mod source;
mod store;
mod token;

pub use self::{
    cache::{CacheStats, CachedToken, TokenCache, TokenCacheBuilder},
    endpoint::{ClientAuth, TokenClient, TokenRequest},
    error::{BoxError, Error, ErrorKind},
    secret::Secret,
    service::{
        CloneBodies, EmptyBodies, NoReplay, OAuth2, OAuth2Layer, ReplayPolicy, ResponseFuture,
    },
    source::{FetchContext, FetchReason, TokenSource},
    store::{MemoryStore, TokenStore},
    token::Token,
};

impl<T: TokenSource> From<T> for TokenCache {
    fn from(source: T) -> Self {
        TokenCache::new(source)
    }
}
