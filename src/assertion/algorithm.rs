//! The JWS algorithms a key signs with, and the key types that decide which it can make.

use std::str::FromStr;

use jsonwebtoken::Algorithm;

use crate::Error;

/// A JWS algorithm a [`SigningKey`](crate::SigningKey) signs with.
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
pub(super) enum KeyType {
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

    pub(super) fn key_type(self) -> KeyType {
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
    pub(super) fn default_algorithm(self) -> SigningAlgorithm {
        match self {
            Self::Secret => SigningAlgorithm::Hs256,
            Self::Rsa => SigningAlgorithm::Rs256,
            Self::P256 => SigningAlgorithm::Es256,
            Self::Ed25519 => SigningAlgorithm::EdDsa,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Secret => "shared secret",
            Self::Rsa => "RSA",
            Self::P256 => "EC P-256",
            Self::Ed25519 => "Ed25519",
        }
    }
}
