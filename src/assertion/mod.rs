//! Signed JWTs the client makes (RFC 7523): client assertions (section 2.2; OpenID Connect's
//! `client_secret_jwt` and `private_key_jwt`) and the assertions of the JWT bearer grant
//! (section 2.1). jsonwebtoken signs, with its RustCrypto backend; this module loads keys,
//! checks that a key can make the algorithm asked of it, and sets the claims. The algorithms
//! and the key types that decide them are `algorithm.rs`; keys read from JWKs, `jwk.rs`.

mod algorithm;
mod jwk;
mod source;

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{EncodingKey, Header, crypto::CryptoProvider};
use serde::Serialize;

#[cfg(feature = "dpop")]
pub(crate) use self::jwk::ed25519_key;
use self::{algorithm::KeyType, jwk::Jwk};
pub use self::{algorithm::SigningAlgorithm, source::KeySource};
use crate::{Error, Secret, secret::random_token};

/// How long an assertion is good for. RFC 7523 leaves it to the server, and servers refuse long
/// ones (5 minutes is a common ceiling); two minutes still pass a server whose clock is a
/// minute ahead. A new assertion is made for every request, so nothing waits on it.
const LIFETIME: Duration = Duration::from_secs(120);

/// A key that signs assertions: a private key (RSA, EC P-256 or Ed25519) for
/// `private_key_jwt` and self-signed JWT bearer assertions, or the client secret for
/// `client_secret_jwt`, with its algorithm and optional key id (`kid`).
///
/// The key material is zeroed on drop and never printed: `Debug` shows the algorithm and the
/// key id only, and no error repeats the key. Clones share one copy.
///
/// The algorithm defaults by key type: `RS256` for RSA, `ES256` for P-256, `EdDSA` for
/// Ed25519, `HS256` for a secret. [`with_algorithm`](Self::with_algorithm) picks another the
/// key can make (`PS256` for an RSA key).
///
/// ```
/// use tower_oauth2::{SigningAlgorithm, SigningKey};
///
/// # let pem = tower_oauth2_testkit::keys::EC_PRIVATE_PEM;
/// // let pem = std::fs::read_to_string("client-key.pem")?;
/// let key = SigningKey::from_pkcs8_pem(pem)?.with_key_id("2024-05");
/// assert_eq!(key.algorithm(), SigningAlgorithm::Es256);
/// assert!(!format!("{key:?}").contains("PRIVATE"));
///
/// // An EC key cannot make RSA signatures.
/// assert!(key.with_algorithm(SigningAlgorithm::Rs256).is_err());
/// # Ok::<_, tower_oauth2::Error>(())
/// ```
#[derive(Clone)]
pub struct SigningKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    /// jsonwebtoken zeroes its key bytes on drop and redacts them in `Debug`.
    key: EncodingKey,
    kind: KeyType,
    algorithm: SigningAlgorithm,
    key_id: Option<String>,
}

impl SigningKey {
    /// Loads a private key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`): RSA, EC on P-256,
    /// or Ed25519. (An RSA key in PKCS#1 PEM, `BEGIN RSA PRIVATE KEY`, is read too.)
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) for anything else, such as an
    /// encrypted key, a public key, or an EC key on another curve.
    pub fn from_pkcs8_pem(pem: impl AsRef<[u8]>) -> Result<Self, Error> {
        let pem = pem.as_ref();
        let (key, kind) = if let Ok(key) = EncodingKey::from_ed_pem(pem) {
            (key, KeyType::Ed25519)
        } else if let Ok(key) = EncodingKey::from_ec_pem(pem) {
            (key, KeyType::P256)
        } else if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
            (key, KeyType::Rsa)
        } else {
            return Err(Error::config(
                "the private key is not an unencrypted PKCS#8 PEM RSA, EC P-256 or Ed25519 key",
            ));
        };
        Self::checked(key, kind, None)
    }

    /// Loads a private key from a JSON Web Key (RFC 7517): `kty` `RSA` (with `n`, `e`, `d`,
    /// `p`, `q`), `EC` on `P-256` (with `d`), `OKP` on `Ed25519` (with `d`), or `oct` (with
    /// `k`, for HS256). The JWK's `kid` becomes the key id and its `alg`, when present, the
    /// algorithm.
    pub fn from_jwk(jwk: &str) -> Result<Self, Error> {
        let jwk = Jwk::parse(jwk)?;
        let (key, kind) = jwk.encoding_key()?;
        let key = Self::checked(key, kind, jwk.kid.clone())?;
        match jwk.alg.as_deref() {
            Some(alg) => key.with_algorithm(alg.parse()?),
            None => Ok(key),
        }
    }

    /// A shared secret for HMAC (`HS256`): the client secret, for `client_secret_jwt`.
    pub fn from_secret(secret: &Secret) -> Result<Self, Error> {
        let key = EncodingKey::from_secret(secret.expose().as_bytes())
            .map_err(|_| Error::config("an HMAC key cannot be empty"))?;
        Self::checked(key, KeyType::Secret, None)
    }

    /// Signs with `algorithm` instead of the key type's default.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) when the key cannot make
    /// it, such as `ES256` with an RSA key.
    pub fn with_algorithm(self, algorithm: SigningAlgorithm) -> Result<Self, Error> {
        if algorithm.key_type() != self.inner.kind {
            return Err(Error::new(crate::ErrorKind::Config).with_detail(format!(
                "a {} key cannot sign with {}",
                self.inner.kind.name(),
                algorithm.as_str()
            )));
        }
        Ok(self.map(|inner| inner.algorithm = algorithm))
    }

    /// Names the key in the assertions' header (`kid`), so a server that holds several of the
    /// client's keys picks the right one.
    #[must_use]
    pub fn with_key_id(self, key_id: impl Into<String>) -> Self {
        let key_id = key_id.into();
        self.map(|inner| inner.key_id = Some(key_id))
    }

    /// Returns the algorithm the key signs with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.inner.algorithm
    }

    /// Returns the key id, if one is set.
    pub fn key_id(&self) -> Option<&str> {
        self.inner.key_id.as_deref()
    }

    /// The key as jsonwebtoken holds it: PKCS#1 DER for RSA, PKCS#8 DER for the others.
    #[cfg(feature = "dpop")]
    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.inner.key
    }

    /// Whether `other` signs as this key does: the same key material, algorithm and key id.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.inner.algorithm == other.inner.algorithm
                && self.inner.key_id == other.inner.key_id
                && self.inner.key.as_bytes() == other.inner.key.as_bytes())
    }

    /// Signs `claims` into a compact JWS.
    pub(crate) fn sign(&self, claims: &Claims<'_>) -> Result<Secret, Error> {
        provider()?;
        let mut header = Header::new(self.inner.algorithm.jose());
        header.kid.clone_from(&self.inner.key_id);
        jsonwebtoken::encode(&header, claims, &self.inner.key)
            .map(Secret::new)
            .map_err(|_| Error::config("the assertion could not be signed"))
    }

    /// A key whose default algorithm is proven to work by signing once: a P-384 key read as
    /// EC, or an RSA key its backend refuses, fails here rather than at the first request.
    fn checked(key: EncodingKey, kind: KeyType, key_id: Option<String>) -> Result<Self, Error> {
        provider()?;
        let algorithm = kind.default_algorithm();
        jsonwebtoken::crypto::sign(b"probe", &key, algorithm.jose()).map_err(|_| {
            Error::new(crate::ErrorKind::Config).with_detail(format!(
                "the {} key cannot sign with {}",
                kind.name(),
                algorithm.as_str()
            ))
        })?;
        Ok(Self {
            inner: Arc::new(KeyInner {
                key,
                kind,
                algorithm,
                key_id,
            }),
        })
    }

    fn map(self, f: impl FnOnce(&mut KeyInner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| KeyInner {
            key: shared.key.clone(),
            kind: shared.kind,
            algorithm: shared.algorithm,
            key_id: shared.key_id.clone(),
        });
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("type", &self.inner.kind.name())
            .field("algorithm", &self.inner.algorithm.as_str())
            .field("key_id", &self.inner.key_id)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// jsonwebtoken signs through a process-wide backend, chosen by its features. A program that
/// turns on both of its backends must pick one; without that, jsonwebtoken would panic.
pub(crate) fn provider() -> Result<(), Error> {
    match CryptoProvider::try_get_default() {
        Some(_) => Ok(()),
        None => Err(Error::config(
            "jsonwebtoken has two crypto backends and none installed: call \
             jsonwebtoken::crypto::CryptoProvider::install_default at start",
        )),
    }
}

/// The claims of an assertion: RFC 7523 section 3, with a fresh `jti` and times from now.
#[derive(Serialize)]
pub(crate) struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
}

impl<'a> Claims<'a> {
    /// An assertion by `issuer` about `subject` for `audience`, good for two minutes, with a
    /// random `jti` (256 bits) so the server can refuse a replay.
    pub(crate) fn new(issuer: &'a str, subject: &'a str, audience: &'a str) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        Self {
            iss: issuer,
            sub: subject,
            aud: audience,
            iat: now,
            nbf: now,
            exp: now + LIFETIME.as_secs(),
            jti: random_token(),
        }
    }
}

#[cfg(test)]
mod tests;
