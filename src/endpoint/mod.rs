//! Posting forms to the authorization server's endpoints: the form a request sends
//! ([`TokenRequest`]), how the client authenticates ([`ClientAuth`]), one request to one
//! endpoint with its limits ([`Endpoint`], `send.rs`) and reading its answer (`parse/`).
//!
//! The token endpoint's client (`token_client.rs`), discovery, revocation and the grants build
//! on it; it knows none of them.

mod client_auth;
mod form;
pub(crate) mod parse;
mod send;
mod unreachable;

use http::{HeaderMap, StatusCode};

pub use self::{client_auth::ClientAuth, form::TokenRequest};
pub(crate) use self::{client_auth::Presented, send::Endpoint};
use crate::{Error, Token, dpop::Binding};

/// Parses a token endpoint's answer: its status, headers, body, the secrets to scrub from any
/// text an error quotes, and the DPoP key the request was signed with.
pub(crate) type ReadToken =
    fn(StatusCode, &HeaderMap, &[u8], &[&str], Option<&Binding>) -> Result<Token, Error>;
