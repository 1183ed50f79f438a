//! The OAuth 2.0 grants this crate ships, each a [`TokenSource`](crate::TokenSource).

mod client_credentials;

pub use self::client_credentials::ClientCredentials;
