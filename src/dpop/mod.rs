//! DPoP (RFC 9449): tokens bound to a key the client holds, and a signed proof on every request
//! that carries one.
//!
//! [`DpopKey`] (feature `dpop`) is the key. The rest of the crate sees only [`Binding`], a
//! token's tie to its key, which without the feature has no values, so the code that handles
//! bound tokens compiles everywhere and vanishes where it cannot run.

#[cfg(feature = "dpop")]
mod key;
#[cfg_attr(not(feature = "dpop"), allow(dead_code))]
mod nonces;

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use http::HeaderValue;
use sha2::{Digest, Sha256};

#[cfg(feature = "dpop")]
pub use self::key::DpopKey;
pub(crate) use self::nonces::OriginNonce;
use crate::{Error, ErrorKind, origin::Destination};

/// `authority` without user info and without the scheme's default port: how proofs name an
/// origin (`htu`), and how nonces are kept per origin.
pub(crate) fn origin_authority<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let default_port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return host,
    };
    host.strip_suffix(default_port).unwrap_or(host)
}

/// The request header that carries a proof.
pub(crate) const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");

/// The key a token is bound to.
#[derive(Clone)]
pub(crate) struct Binding(Key);

#[cfg(feature = "dpop")]
type Key = DpopKey;

/// Without the `dpop` feature no token is bound.
#[cfg(not(feature = "dpop"))]
#[derive(Clone)]
enum Key {}

/// A bound token as requests use it: its key, and the hash of the access token that proofs
/// on API requests carry (`ath`), computed once per token.
pub(crate) struct Bound {
    binding: Binding,
    ath: Box<str>,
}

impl Binding {
    #[cfg(feature = "dpop")]
    pub(crate) fn new(key: DpopKey) -> Self {
        Self(key)
    }

    #[cfg(feature = "dpop")]
    pub(crate) fn key(&self) -> &DpopKey {
        &self.0
    }

    /// The proof for a `method` request to `destination`, with the nonce its origin last
    /// sent, and the origin's nonce, where the answer's nonce goes. A resend passes the
    /// origin's nonce its first signing returned (`again`): the key may have forgotten the
    /// origin since, and the nonce the answer demanded went there.
    pub(crate) fn sign(
        &self,
        method: &str,
        destination: &Destination<'_>,
        ath: Option<&str>,
        again: Option<Arc<OriginNonce>>,
    ) -> Result<(HeaderValue, Arc<OriginNonce>), Error> {
        let (Some(scheme), Some(authority)) = (destination.scheme, destination.authority) else {
            return Err(Error::new(ErrorKind::Config)
                .with_detail("a DPoP proof needs the request's absolute URL"));
        };
        #[cfg(feature = "dpop")]
        {
            let origin = again.unwrap_or_else(|| self.0.nonces().of_origin(scheme, authority));
            let nonce = origin.nonce();
            let htu = key::Htu {
                scheme,
                authority,
                path: destination.path,
            };
            let proof = self
                .0
                .proof(method, htu, ath, nonce.as_deref().map(String::as_str))?;
            Ok((proof, origin))
        }
        #[cfg(not(feature = "dpop"))]
        {
            let _ = (method, scheme, authority, ath, again);
            match self.0 {}
        }
    }
}

impl Bound {
    pub(crate) fn new(binding: Binding, access_token: &str) -> Self {
        let hash = Sha256::digest(access_token.as_bytes());
        Self {
            binding,
            ath: URL_SAFE_NO_PAD.encode(hash).into(),
        }
    }

    /// The proof for an API request with the token; `again` as for [`Binding::sign`].
    pub(crate) fn sign(
        &self,
        method: &str,
        destination: &Destination<'_>,
        again: Option<Arc<OriginNonce>>,
    ) -> Result<(HeaderValue, Arc<OriginNonce>), Error> {
        self.binding
            .sign(method, destination, Some(&self.ath), again)
    }
}
