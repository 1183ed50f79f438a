//! The client's DPoP key pair, and the proofs it signs (RFC 9449 section 4).

use std::{
    fmt,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD, write::EncoderStringWriter};
use http::HeaderValue;
use jsonwebtoken::{
    EncodingKey,
    jwk::{Jwk, ThumbprintHash},
};
use serde::Serialize;
use zeroize::Zeroizing;

use super::nonces::Nonces;
use crate::{
    Error, ErrorKind, SigningAlgorithm, SigningKey,
    assertion::{ed25519_key, provider},
};

/// The key pair a client proves possession of with DPoP (RFC 9449): its tokens are bound to
/// the key, so a stolen token is useless without it.
///
/// Give it to the token client ([`TokenClient::dpop`](crate::TokenClient::dpop)); every
/// token request then carries a proof, the server binds the tokens it issues to the key, and
/// the layer sends each API request with `Authorization: DPoP <token>` and a proof of its own.
/// The nonces servers demand (`DPoP-Nonce`) are remembered per origin by the key, for every
/// request it signs.
///
/// The private key is zeroed on drop and never printed: `Debug` shows the algorithm and the
/// thumbprint. Clones share one key, and its nonces.
///
/// ```
/// use tower_oauth2::DpopKey;
///
/// let key = DpopKey::generate()?; // ES256
/// assert_eq!(key.algorithm().as_str(), "ES256");
/// assert_eq!(key.thumbprint().len(), 43); // base64url of a SHA-256 hash
/// # Ok::<_, tower_oauth2::Error>(())
/// ```
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    signer: Signer,
    algorithm: SigningAlgorithm,
    /// The proofs' header, `{"typ":"dpop+jwt","alg":..,"jwk":..}`, base64url-encoded once.
    header: String,
    /// The JWK thumbprint (RFC 7638) of the public key: `jkt` to the server.
    thumbprint: String,
    /// The length of a signature in bytes: 64, or the RSA modulus's length.
    signature_len: usize,
    nonces: Nonces,
}

/// The signing half, held in the form its crate signs with, so a proof costs one signature
/// and no key parsing.
enum Signer {
    Es256(p256::ecdsa::SigningKey),
    EdDsa(ed25519_dalek::SigningKey),
    Rs256(rsa::pkcs1v15::SigningKey<sha2::Sha256>),
    Ps256(rsa::pss::SigningKey<sha2::Sha256>),
}

#[derive(Serialize)]
struct ProofHeader<'a> {
    typ: &'static str,
    alg: &'static str,
    jwk: &'a Jwk,
}

/// The claims of a proof: which request it is for, when, and, on API requests, which token.
#[derive(Serialize)]
struct Claims<'a> {
    jti: &'a str,
    htm: &'a str,
    htu: Htu<'a>,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// The request's URL without query and fragment (RFC 9449 section 4.2), written straight into
/// the claims.
pub(crate) struct Htu<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) authority: &'a str,
    pub(crate) path: &'a str,
}

impl Serialize for Htu<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Normalised as RFC 9449 section 4.3 has servers compare (RFC 3986 sections 6.2.2 and
        // 6.2.3): no user info, the host in lowercase, no default port, `/` for no path.
        let host = Lowercase(super::origin_authority(self.scheme, self.authority));
        let path = if self.path.is_empty() { "/" } else { self.path };
        serializer.collect_str(&format_args!("{}://{host}{path}", self.scheme))
    }
}

/// Writes a string in ASCII lowercase, without a copy of it.
struct Lowercase<'a>(&'a str);

impl fmt::Display for Lowercase<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.bytes().any(|byte| byte.is_ascii_uppercase()) {
            return f.write_str(self.0);
        }
        self.0
            .chars()
            .try_for_each(|c| fmt::Write::write_char(f, c.to_ascii_lowercase()))
    }
}

impl DpopKey {
    /// Generates a new ES256 (P-256) key pair in memory, the algorithm every DPoP server
    /// supports.
    pub fn generate() -> Result<Self, Error> {
        Self::generate_with(SigningAlgorithm::Es256)
    }

    /// Generates a new key pair for `algorithm`: `ES256`, `EdDSA`, `RS256` or `PS256` (a
    /// 2048-bit RSA key, which takes a noticeable moment to make). `HS256` is refused: a
    /// shared secret cannot prove possession to a server that does not hold it.
    pub fn generate_with(algorithm: SigningAlgorithm) -> Result<Self, Error> {
        let key = match algorithm {
            SigningAlgorithm::Es256 => {
                let secret = loop {
                    // Nearly every 32 bytes is a valid scalar; the loop is for the rest.
                    let mut bytes = Zeroizing::new([0u8; 32]);
                    rand::fill(&mut bytes[..]);
                    if let Ok(secret) = p256::SecretKey::from_slice(&bytes[..]) {
                        break secret;
                    }
                };
                let der = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&secret)
                    .map_err(|_| Error::config("the P-256 key could not be encoded"))?;
                EncodingKey::from_ec_der(der.as_bytes())
            }
            SigningAlgorithm::EdDsa => {
                let mut seed = Zeroizing::new([0u8; 32]);
                rand::fill(&mut seed[..]);
                ed25519_key(&seed)?
            }
            SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256 => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                let secret = rsa::PrivateKey::new(&mut rand::rng(), 2048)
                    .map_err(|_| Error::config("the RSA key could not be generated"))?;
                let der = secret
                    .to_pkcs1_der()
                    .map_err(|_| Error::config("the RSA key could not be encoded"))?;
                EncodingKey::from_rsa_der(der.as_bytes())
            }
            SigningAlgorithm::Hs256 => return Err(no_shared_secrets()),
        };
        Self::from_encoding_key(&key, algorithm)
    }

    /// Uses a loaded private key, with its algorithm: see [`SigningKey`] for the formats (PKCS#8
    /// PEM, JWK). Load the same key in every process that must use the same tokens.
    ///
    /// ```
    /// use tower_oauth2::{DpopKey, SigningKey};
    ///
    /// # let pem = tower_oauth2_testkit::keys::EC_PRIVATE_PEM;
    /// // let pem = std::fs::read_to_string("dpop-key.pem")?;
    /// let key = DpopKey::from_signing_key(&SigningKey::from_pkcs8_pem(pem)?)?;
    /// # Ok::<_, tower_oauth2::Error>(())
    /// ```
    pub fn from_signing_key(key: &SigningKey) -> Result<Self, Error> {
        Self::from_encoding_key(key.encoding_key(), key.algorithm())
    }

    fn from_encoding_key(key: &EncodingKey, algorithm: SigningAlgorithm) -> Result<Self, Error> {
        provider()?;
        let der = key.as_bytes();
        let unreadable = || Error::config("the DPoP key could not be read");
        let signer = match algorithm {
            SigningAlgorithm::Es256 => Signer::Es256(
                p256::pkcs8::DecodePrivateKey::from_pkcs8_der(der).map_err(|_| unreadable())?,
            ),
            SigningAlgorithm::EdDsa => Signer::EdDsa(
                ed25519_dalek::pkcs8::DecodePrivateKey::from_pkcs8_der(der)
                    .map_err(|_| unreadable())?,
            ),
            SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256 => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                let secret = rsa::PrivateKey::from_pkcs1_der(der).map_err(|_| unreadable())?;
                if algorithm == SigningAlgorithm::Rs256 {
                    Signer::Rs256(rsa::pkcs1v15::SigningKey::new(secret))
                } else {
                    Signer::Ps256(rsa::pss::SigningKey::new(secret))
                }
            }
            SigningAlgorithm::Hs256 => return Err(no_shared_secrets()),
        };
        let signature_len = match &signer {
            Signer::Es256(_) | Signer::EdDsa(_) => 64,
            Signer::Rs256(key) => rsa::traits::PublicKeyParts::size(key.as_ref()),
            Signer::Ps256(key) => rsa::traits::PublicKeyParts::size(key.as_ref()),
        };
        // The public half, as the proofs' `jwk` and the thumbprint: computed once per key.
        let mut jwk = Jwk::from_encoding_key(key, algorithm.jose()).map_err(|_| unreadable())?;
        // RFC 9449 section 4.2: the public key alone, nothing that names its use.
        jwk.common = Default::default();
        let thumbprint = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| unreadable())?;
        let header = ProofHeader {
            typ: "dpop+jwt",
            alg: algorithm.as_str(),
            jwk: &jwk,
        };
        let header = serde_json::to_vec(&header).map_err(|_| unreadable())?;
        Ok(Self {
            inner: Arc::new(KeyInner {
                signer,
                algorithm,
                header: URL_SAFE_NO_PAD.encode(header),
                thumbprint,
                signature_len,
                nonces: Nonces::default(),
            }),
        })
    }

    /// Returns the algorithm the proofs are signed with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.inner.algorithm
    }

    /// Returns the JWK SHA-256 thumbprint of the public key (RFC 7638), base64url: what
    /// servers bind tokens to (`cnf.jkt`), and the `dpop_jkt` of an authorization request.
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    pub(crate) fn nonces(&self) -> &Nonces {
        &self.inner.nonces
    }

    /// Signs a proof for a `method` request to `htu`, naming the access token by its hash
    /// `ath` on API requests, and carrying the server's `nonce` when it set one.
    pub(crate) fn proof(
        &self,
        method: &str,
        htu: Htu<'_>,
        ath: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<HeaderValue, Error> {
        let mut id = [0u8; 16];
        rand::fill(&mut id[..]);
        let mut jti = [0u8; 22];
        let written = URL_SAFE_NO_PAD
            .encode_slice(id, &mut jti)
            .map_err(|_| signing_failed())?;
        let jti = std::str::from_utf8(&jti[..written]).map_err(|_| signing_failed())?;
        let claims = Claims {
            jti,
            htm: method,
            iat: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
            ath,
            nonce,
            htu,
        };
        // One buffer for the whole proof, of its exact length: the header value then takes it
        // over without copying or allocating again (measured: one allocation fewer per request).
        let mut claims_len = crate::secret::Counter(0);
        serde_json::to_writer(&mut claims_len, &claims).map_err(|_| signing_failed())?;
        let encoded = |bytes| base64::encoded_len(bytes, false).ok_or_else(signing_failed);
        let proof_len = self.inner.header.len()
            + 1
            + encoded(claims_len.0)?
            + 1
            + encoded(self.inner.signature_len)?;
        let mut proof = String::with_capacity(proof_len);
        proof.push_str(&self.inner.header);
        proof.push('.');
        let mut writer = EncoderStringWriter::from_consumer(&mut proof, &URL_SAFE_NO_PAD);
        serde_json::to_writer(&mut writer, &claims).map_err(|_| signing_failed())?;
        writer.into_inner();
        let message = proof.as_bytes();
        let signature = match &self.inner.signer {
            Signer::Es256(key) => {
                let signature: p256::ecdsa::Signature = sign(key, message)?;
                Signature::Fixed(signature.to_bytes().into())
            }
            Signer::EdDsa(key) => {
                Signature::Fixed(sign::<ed25519_dalek::Signature>(key, message)?.to_bytes())
            }
            Signer::Rs256(key) => {
                Signature::Boxed(sign::<rsa::pkcs1v15::Signature>(key, message)?.into())
            }
            Signer::Ps256(key) => {
                Signature::Boxed(sign::<rsa::pss::Signature>(key, message)?.into())
            }
        };
        proof.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut proof);
        debug_assert_eq!(proof.len(), proof_len, "a proof fills its buffer exactly");
        let mut proof = HeaderValue::try_from(proof).map_err(|_| signing_failed())?;
        // A proof for the token endpoint names no token: kept out of logs and HPACK tables.
        proof.set_sensitive(true);
        Ok(proof)
    }
}

/// A signature's bytes: fixed-size for ECDSA and Ed25519, on the heap for RSA.
enum Signature {
    Fixed([u8; 64]),
    Boxed(Box<[u8]>),
}

impl AsRef<[u8]> for Signature {
    fn as_ref(&self) -> &[u8] {
        match self {
            Self::Fixed(bytes) => bytes,
            Self::Boxed(bytes) => bytes,
        }
    }
}

fn sign<S>(key: &impl p256::ecdsa::signature::Signer<S>, message: &[u8]) -> Result<S, Error> {
    key.try_sign(message).map_err(|_| signing_failed())
}

fn signing_failed() -> Error {
    Error::new(ErrorKind::Config).with_detail("the DPoP proof could not be signed")
}

fn no_shared_secrets() -> Error {
    Error::config("DPoP takes a private key (ES256, EdDSA, RS256 or PS256), not HS256")
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("algorithm", &self.inner.algorithm.as_str())
            .field("thumbprint", &self.inner.thumbprint)
            .field("key", &"[redacted]")
            .finish()
    }
}
