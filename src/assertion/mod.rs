//! Signed JWTs the client makes (RFC 7523): client assertions (section 2.2; OpenID Connect's
//! `client_secret_jwt` and `private_key_jwt`) and the assertions of the JWT bearer grant
//! (section 2.1). jsonwebtoken signs, with its RustCrypto backend; this module loads keys,
//! checks that a key can make the algorithm asked of it, and sets the claims.

use std::{
    fmt,
    str::FromStr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header, crypto::CryptoProvider};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, Secret, secret::random_token};

/// How long an assertion is good for. RFC 7523 leaves it to the server, and servers refuse long
/// ones (5 minutes is a common ceiling); two minutes still pass a server whose clock is a
/// minute ahead. A new assertion is made for every request, so nothing waits on it.
const LIFETIME: Duration = Duration::from_secs(120);

/// A JWS algorithm a [`SigningKey`] signs with.
///
/// ```
/// use tower_oauth2::SigningAlgorithm;
///
/// let alg: SigningAlgorithm = "ES256".parse()?;
/// assert_eq!(alg, SigningAlgorithm::Es256);
/// assert_eq!(alg.as_str(), "ES256");
/// # Ok::<_, tower_oauth2::Error>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// HMAC with SHA-256, keyed with a shared secret (`client_secret_jwt`).
    Hs256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, with an RSA key.
    Rs256,
    /// RSASSA-PSS with SHA-256, with an RSA key.
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519 (`EdDSA` in JOSE).
    EdDsa,
}

/// What a key is, which decides the algorithms it can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Secret,
    Rsa,
    P256,
    Ed25519,
}

impl SigningAlgorithm {
    /// Returns the algorithm's JOSE name (`alg`), such as `RS256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    pub(crate) fn jose(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::Rs256 => Algorithm::RS256,
            Self::Ps256 => Algorithm::PS256,
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }

    fn key_type(self) -> KeyType {
        match self {
            Self::Hs256 => KeyType::Secret,
            Self::Rs256 | Self::Ps256 => KeyType::Rsa,
            Self::Es256 => KeyType::P256,
            Self::EdDsa => KeyType::Ed25519,
        }
    }
}

/// Reads a JOSE name: `HS256`, `RS256`, `PS256`, `ES256` or `EdDSA` (also `Ed25519`, the
/// newer name of the same signatures). Any other is an [`ErrorKind::Config`](crate::ErrorKind::Config) error.
impl FromStr for SigningAlgorithm {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self, Error> {
        match name {
            "HS256" => Ok(Self::Hs256),
            "RS256" => Ok(Self::Rs256),
            "PS256" => Ok(Self::Ps256),
            "ES256" => Ok(Self::Es256),
            "EdDSA" | "Ed25519" => Ok(Self::EdDsa),
            _ => Err(Error::config(
                "unsupported signing algorithm; use HS256, RS256, PS256, ES256 or EdDSA",
            )),
        }
    }
}

impl KeyType {
    fn default_algorithm(self) -> SigningAlgorithm {
        match self {
            Self::Secret => SigningAlgorithm::Hs256,
            Self::Rsa => SigningAlgorithm::Rs256,
            Self::P256 => SigningAlgorithm::Es256,
            Self::Ed25519 => SigningAlgorithm::EdDsa,
        }
    }
}

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
        let jwk: Jwk = serde_json::from_str(jwk)
            .map_err(|_| Error::config("the JWK is not a JSON object of strings"))?;
        let (key, kind) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("oct", _) => {
                let k = member(&jwk.k, "k")?;
                (hmac_key(&k)?, KeyType::Secret)
            }
            ("EC", Some("P-256")) => {
                let d = member(&jwk.d, "d")?;
                let secret = p256::SecretKey::from_slice(&d)
                    .map_err(|_| Error::config("the JWK's `d` is not a P-256 private key"))?;
                let der = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&secret)
                    .map_err(|_| Error::config("the P-256 key could not be encoded"))?;
                (EncodingKey::from_ec_der(der.as_bytes()), KeyType::P256)
            }
            ("OKP", Some("Ed25519")) => {
                let d = member(&jwk.d, "d")?;
                let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
                    d.as_slice()
                        .try_into()
                        .map_err(|_| Error::config("the JWK's `d` is not 32 bytes"))?,
                );
                (ed25519_key(&seed)?, KeyType::Ed25519)
            }
            ("RSA", _) => (rsa_key(&jwk)?, KeyType::Rsa),
            _ => {
                return Err(Error::config(
                    "the JWK is not an RSA, EC P-256, Ed25519 or oct key",
                ));
            }
        };
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

impl KeyType {
    fn name(self) -> &'static str {
        match self {
            Self::Secret => "shared secret",
            Self::Rsa => "RSA",
            Self::P256 => "EC P-256",
            Self::Ed25519 => "Ed25519",
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

/// The members of a JWK this module reads. Private members are wrapped in `Zeroizing` the
/// moment they are decoded.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    d: Option<String>,
    k: Option<String>,
    n: Option<String>,
    e: Option<String>,
    p: Option<String>,
    q: Option<String>,
}

impl Drop for Jwk {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for member in [&mut self.d, &mut self.k, &mut self.p, &mut self.q] {
            member.zeroize();
        }
    }
}

/// The base64url-decoded JWK member `name`, required.
fn member(value: &Option<String>, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let value = value.as_deref().ok_or_else(|| {
        Error::new(crate::ErrorKind::Config).with_detail(format!("the JWK has no `{name}`"))
    })?;
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map(Zeroizing::new)
        .map_err(|_| {
            Error::new(crate::ErrorKind::Config)
                .with_detail(format!("the JWK's `{name}` is not base64url"))
        })
}

/// An Ed25519 key from its 32-byte seed, as the PKCS#8 DER jsonwebtoken reads: version 1,
/// without the public key, the one form its JWK code takes.
pub(crate) fn ed25519_key(seed: &[u8; 32]) -> Result<EncodingKey, Error> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, KeypairBytes};
    let der = KeypairBytes {
        secret_key: *seed,
        public_key: None,
    }
    .to_pkcs8_der()
    .map_err(|_| Error::config("the Ed25519 key could not be encoded"))?;
    Ok(EncodingKey::from_ed_der(der.as_bytes()))
}

fn hmac_key(secret: &[u8]) -> Result<EncodingKey, Error> {
    EncodingKey::from_secret(secret).map_err(|_| Error::config("an HMAC key cannot be empty"))
}

/// An RSA JWK as the PKCS#1 DER jsonwebtoken's RustCrypto backend reads.
fn rsa_key(jwk: &Jwk) -> Result<EncodingKey, Error> {
    use rsa::{BoxedUint, PrivateKey, pkcs1::EncodeRsaPrivateKey};

    // Decoding into integers takes time that depends on lengths only, which are public.
    let number = |value: &Option<String>, name| {
        member(value, name).map(|bytes| BoxedUint::from_be_slice_vartime(&bytes))
    };
    let key = PrivateKey::from_components(
        number(&jwk.n, "n")?,
        number(&jwk.e, "e")?,
        number(&jwk.d, "d")?,
        vec![number(&jwk.p, "p")?, number(&jwk.q, "q")?],
    )
    .map_err(|_| Error::config("the JWK is not a consistent RSA private key"))?;
    let der = key
        .to_pkcs1_der()
        .map_err(|_| Error::config("the RSA key could not be encoded"))?;
    Ok(EncodingKey::from_rsa_der(der.as_bytes()))
}

#[cfg(test)]
mod tests;
