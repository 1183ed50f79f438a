//! Private keys from JSON Web Keys (RFC 7517), turned into the DER jsonwebtoken reads.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::algorithm::KeyType;
use crate::Error;

/// The members of a JWK the crate reads. Private members are wrapped in `Zeroizing` the
/// moment they are decoded.
#[derive(Deserialize)]
pub(super) struct Jwk {
    kty: String,
    crv: Option<String>,
    pub(super) kid: Option<String>,
    pub(super) alg: Option<String>,
    d: Option<String>,
    k: Option<String>,
    n: Option<String>,
    e: Option<String>,
    p: Option<String>,
    q: Option<String>,
}

impl Jwk {
    pub(super) fn parse(text: &str) -> Result<Self, Error> {
        serde_json::from_str(text)
            .map_err(|_| Error::config("the JWK is not a JSON object of strings"))
    }

    /// The private key, as jsonwebtoken reads it, and its type.
    pub(super) fn encoding_key(&self) -> Result<(EncodingKey, KeyType), Error> {
        Ok(match (self.kty.as_str(), self.crv.as_deref()) {
            ("oct", _) => {
                let k = member(&self.k, "k")?;
                (hmac_key(&k)?, KeyType::Secret)
            }
            ("EC", Some("P-256")) => {
                let d = member(&self.d, "d")?;
                let secret = p256::SecretKey::from_slice(&d)
                    .map_err(|_| Error::config("the JWK's `d` is not a P-256 private key"))?;
                let der = p256::pkcs8::EncodePrivateKey::to_pkcs8_der(&secret)
                    .map_err(|_| Error::config("the P-256 key could not be encoded"))?;
                (EncodingKey::from_ec_der(der.as_bytes()), KeyType::P256)
            }
            ("OKP", Some("Ed25519")) => {
                let d = member(&self.d, "d")?;
                let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
                    d.as_slice()
                        .try_into()
                        .map_err(|_| Error::config("the JWK's `d` is not 32 bytes"))?,
                );
                (ed25519_key(&seed)?, KeyType::Ed25519)
            }
            ("RSA", _) => (rsa_key(self)?, KeyType::Rsa),
            _ => {
                return Err(Error::config(
                    "the JWK is not an RSA, EC P-256, Ed25519 or oct key",
                ));
            }
        })
    }
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
