//! Tower middleware that makes any HTTP client an authenticated OAuth 2.0 client.
//!
//! [`OAuth2Layer`] wraps any tower [`Service`](tower_service::Service) that sends
//! `http::Request`s: hyper-util's client, a tower-http stack, the client an axum app uses for
//! outbound calls. Every request gets `Authorization: Bearer <token>` (or, for a DPoP-bound
//! token, `DPoP <token>` and a proof). Tokens come from a
//! [`TokenCache`] shared by all clones of the client: one grant runs at a time however many
//! requests need a token, tokens are refreshed in the background before they expire, and a
//! 401 answer makes the layer fetch a new token and retry the request once.
//!
//! # Example
//!
//! ```
//! # use std::convert::Infallible;
//! # use bytes::Bytes;
//! # use http::Response;
//! # use tower::service_fn;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_oauth2::BoxError> {
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_oauth2::{ClientAuth, OAuth2Layer, TokenClient, grant::ClientCredentials};
//!
//! // Any tower HTTP client; this one is hyper-util's over rustls (the `https` feature):
//! # #[cfg(feature = "https")]
//! let http = tower_oauth2::https::client()?;
//! # // A fake of the authorization server and the API instead, so this example runs anywhere.
//! # let http = service_fn(|request: Request<Full<Bytes>>| async move {
//! #     let body = match request.uri().path() {
//! #         "/oauth2/token" => r#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#,
//! #         _ if request.headers()["authorization"] == "Bearer abc" => r#"{"orders":[]}"#,
//! #         _ => "",
//! #     };
//! #     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
//! # });
//!
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
//!   Only to the origins it allows; [`OAuth2Layer::route`] gives a destination a token source
//!   of its own, for one client that calls several APIs.
//! - [`TokenCache`]: holds the current token; hands it out with one atomic load, no lock and
//!   no allocation; runs one fetch at a time and shares its result with every waiter.
//! - [`TokenSource`]: how a token is obtained. [`grant::ClientCredentials`],
//!   [`grant::AuthorizationCode`] (with PKCE, and [`grant::LoopbackRedirect`] for command-line
//!   apps), [`grant::RefreshToken`], [`grant::JwtBearer`] (RFC 7523),
//!   [`grant::TokenExchange`] (RFC 8693) and [`grant::DeviceCode`] (RFC 8628) ship; each asks
//!   for scopes, resources (RFC 8707) and audiences; writing your own takes a few lines.
//! - [`TokenStore`]: where the cache keeps its token across restarts, so a rotated refresh
//!   token is never lost: [`FileStore`] (one private JSON file, replaced atomically) or
//!   [`MemoryStore`].
//! - [`TokenClient`]: posts token requests to the token endpoint through the HTTP client you
//!   give it, with client authentication ([`ClientAuth`]: a secret, a client assertion, a TLS
//!   client certificate), a timeout, a body size limit, no redirects, and typed errors for
//!   every way a server answers wrongly. [`grant::AuthorizationCode`] can push its
//!   authorization requests the same way (RFC 9126).
//! - [`Discovery`]: the server's endpoints from its issuer URL (RFC 8414 metadata, else
//!   OpenID Connect's), refused when the metadata names another issuer; cached and refreshed;
//!   with [`Discovery::mutual_tls`], the server's `mtls_endpoint_aliases`.
//!   [`TokenClient::discover`] and [`grant::AuthorizationCode::discover`] build on it.
//! - `DpopKey` (feature `dpop`): binds tokens to a key the client holds (RFC 9449); give it
//!   to `TokenClient::dpop` and the layer signs a proof for every request.
//! - [`Revocation`]: revokes tokens at the server's revocation endpoint (RFC 7009) when a user
//!   signs out.
//! - `fleet::RedisFleet` (feature `redis`): caches in many processes share one token set
//!   through Redis, so a fleet of replicas runs one grant per token lifetime; see
//!   `TokenCacheBuilder::fleet`.
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
//! # Clients
//!
//! - **hyper-util**, tower-http stacks, axum apps: any `Service<http::Request<B>>`, as above.
//!   With the `https` feature, `https::client` is a ready-made hyper-util client over rustls
//!   and `TokenClient::https` a token endpoint client in one line.
//! - **reqwest**: with the `reqwest` feature, `OAuth2Layer` wraps `reqwest::Client` as it is
//!   and serves `reqwest::Request`s, copying them for a retry with
//!   `reqwest::Request::try_clone`; `TokenClient::reqwest` reaches the token endpoint through
//!   reqwest with redirects turned off. With the `reqwest-middleware` feature, `OAuth2Layer`
//!   is also a `reqwest_middleware::Middleware`, for requests sent with `.send()`.
//!
//! The examples show each: `quickstart`, `hyper_client` (a full `ServiceBuilder` stack kept in
//! a struct), `reqwest`, `reqwest_middleware`, `axum_outbound` (handlers sharing one client
//! through router state), `curl` (a command-line client in the spirit of `oauth2l curl`, whose
//! processes can share tokens through Redis), `fleet` (replicas sharing one Redis) and
//! `authorization_code` (a command-line sign-in with the loopback receiver, and sign-out).
//!
//! # Features
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `loopback-redirect` (default) | [`grant::LoopbackRedirect`]: the authorization-code sign-in for command-line and desktop apps (tokio's `net`) |
//! | `reqwest` | `OAuth2Layer` over `reqwest::Client`; `TokenClient::reqwest` |
//! | `reqwest-middleware` | `OAuth2Layer` as a `reqwest_middleware::Middleware`, so requests keep reqwest's builders and `.send()` (see [`OAuth2Layer`]) |
//! | `reqwest-0.12`, `reqwest-middleware-0.4` | the same for reqwest 0.12 and reqwest-middleware 0.4; `TokenClient::reqwest012` |
//! | `https` | `https::client`: hyper-util + rustls (the process's default crypto provider, else *ring*), HTTP/1.1 and HTTP/2, Mozilla, system or your own roots (`https::client_with_extra_roots`), no redirects; `TokenClient::https`; a client certificate for mutual TLS (`https::builder`, `https::ClientIdentity`, RFC 8705) |
//! | `jwt` | client assertions, `ClientAuth::client_secret_jwt` and `ClientAuth::private_key_jwt` with a `SigningKey` (RS256, PS256, ES256, EdDSA; PKCS#8 PEM or JWK), and self-signed JWT bearer assertions, `grant::JwtBearer::signed` (RFC 7523), signed by jsonwebtoken's pure-Rust backend |
//! | `tower-http` | a 401 that tower-http's `FollowRedirect` brings back from another URI than the token went to (a redirect that dropped it) leaves the token alone (see *Middleware ordering*) |
//! | `metrics` | counters through the [`metrics`](https://docs.rs/metrics) facade (see *Observability*) |
//! | `dpop` | `DpopKey` and `TokenClient::dpop`: tokens bound to a key the client holds, and a proof signed for every token and API request, with the server's nonces (RFC 9449) |
//! | `redis` | `fleet::RedisFleet` and `TokenCacheBuilder::fleet`: replicas share one token set through Redis or Redis Cluster, sealed with AES-256-GCM-SIV, so a fleet runs one grant per token lifetime; a failing Redis never fails a request |
//!
//! Only `loopback-redirect` is on by default, and the core depends on no HTTP client; a server that
//! never signs users in can turn it off with `default-features = false`.
//!
#![doc = include_str!("../docs/middleware-ordering.md")]
//!
#![doc = include_str!("../docs/cancel-safety.md")]
//!
#![doc = include_str!("../docs/observability.md")]
//!
//! # Runtime
//!
//! Fetches and expiry timers are spawned on the current Tokio runtime. Outside one, a request
//! that needs a fetch fails with [`ErrorKind::Config`].

#![cfg_attr(docsrs, feature(doc_cfg))]
// Data from the network or the user never panics the library. Set here rather than in
// Cargo.toml, whose lints also reach the tests, benchmarks and examples, which may unwrap.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
// The docs link to `grant::LoopbackRedirect`, which only exists with the `loopback-redirect` feature.
#![cfg_attr(
    not(feature = "loopback-redirect"),
    allow(rustdoc::broken_intra_doc_links)
)]

#[cfg(any(test, fuzzing))]
#[doc(hidden)]
#[path = "fuzz.rs"]
pub mod __fuzz;
#[cfg(feature = "jwt")]
mod assertion;
mod cache;
mod credential;
mod discovery;
mod dpop;
mod endpoint;
mod error;
mod lineage;
#[doc = include_str!("../docs/failures.md")]
pub mod failures {}
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod fleet;
pub mod grant;
mod middleware;
mod origin;
#[cfg(feature = "tower-http")]
mod redirect;
mod revocation;
mod saved;
mod secret;
mod source;
mod store;
#[cfg(any(feature = "https", feature = "redis"))]
mod tls;
mod token;
mod token_client;
mod transport;
pub mod workload;

#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub use self::assertion::{KeySource, SigningAlgorithm, SigningKey};
#[cfg(feature = "dpop")]
#[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
pub use self::dpop::DpopKey;
#[cfg(feature = "tower-http")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower-http")))]
pub use self::redirect::WithoutDpopOnRedirect;
#[cfg(feature = "https")]
pub use self::transport::https;
pub use self::{
    cache::{CacheStats, CachedToken, TokenCache, TokenCacheBuilder},
    credential::CredentialSource,
    discovery::{Discovery, ServerMetadata},
    endpoint::{ClientAuth, TokenRequest},
    error::{BoxError, Error, ErrorKind},
    lineage::Lineage,
    middleware::{
        CloneBodies, EmptyBodies, NoReplay, OAuth2, OAuth2Layer, OAuth2Request, OAuth2Response,
        ReplayPolicy, ResponseFuture,
    },
    revocation::{Revocation, TokenTypeHint},
    secret::Secret,
    source::{FetchContext, FetchReason, TokenSetId, TokenSource},
    store::{FileStore, MemoryStore, TokenStore},
    token::Token,
    token_client::TokenClient,
    transport::AuthServerTransport,
};

impl<T: TokenSource> From<T> for TokenCache {
    fn from(source: T) -> Self {
        TokenCache::new(source)
    }
}
