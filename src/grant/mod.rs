//! The OAuth 2.0 grants this crate ships, each a [`TokenSource`](crate::TokenSource).
//!
//! - [`ClientCredentials`]: a service acting as itself.
//! - [`AuthorizationCode`]: a user signs in; PKCE always on. [`LoopbackRedirect`] runs the
//!   sign-in for command-line and desktop apps.
//! - [`RefreshToken`]: starts from a refresh token obtained elsewhere.
//! - [`JwtBearer`]: a signed JWT stands for the authorization (RFC 7523 section 2.1), from a
//!   file a platform rotates, a function, or signed by the client itself.
//! - [`TokenExchange`]: trades a token the client holds (its caller's, its own workload
//!   identity token) for one another API accepts (RFC 8693), optionally naming an actor.
//! - [`DeviceCode`]: a user signs in on another device with a URL and a short code, while a
//!   command-line tool or a TV polls (RFC 8628); then refreshed like the authorization code.

mod asks;
mod authorization_code;
mod callback;
mod client_credentials;
mod device_code;
mod jwt_bearer;
#[cfg(feature = "loopback-redirect")]
mod loopback;
mod par;
mod pending;
mod pkce;
mod refresh_token;
mod token_exchange;

#[cfg(feature = "loopback-redirect")]
pub use self::loopback::LoopbackRedirect;
pub use self::{
    authorization_code::AuthorizationCode,
    callback::Callback,
    client_credentials::ClientCredentials,
    device_code::{DeviceAuthorization, DeviceCode},
    jwt_bearer::JwtBearer,
    pending::PendingAuthorization,
    pkce::PkceVerifier,
    refresh_token::RefreshToken,
    token_exchange::{SecurityToken, TokenExchange},
};
