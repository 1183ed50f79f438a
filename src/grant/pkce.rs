//! Proof Key for Code Exchange (RFC 7636): a one-time secret that ties an authorization code to
//! the client that asked for it, so a code intercepted on its way back is worthless.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{Error, secret::random_token};

/// The shortest and longest verifier RFC 7636 section 4.1 allows.
const LENGTHS: std::ops::RangeInclusive<usize> = 43..=128;

/// A PKCE code verifier: 43 to 128 characters from `A-Z a-z 0-9 - . _ ~`.
///
/// It is a secret until the code exchange: `Debug` prints `[redacted]`, the memory is zeroed on
/// drop, and it is not `Clone`, so one verifier serves one authorization request. The server
/// only ever sees its [challenge](Self::challenge) before the exchange.
///
/// [`AuthorizationCode::authorize_url`](crate::grant::AuthorizationCode::authorize_url) makes
/// one; a web app that keeps it between the redirect and the callback (in a server-side session)
/// reads it with [`expose`](Self::expose) and rebuilds it with [`from_string`](Self::from_string).
///
/// ```
/// use tower_oauth2::grant::PkceVerifier;
///
/// // The example of RFC 7636 appendix B.
/// let verifier = PkceVerifier::from_string("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")?;
/// assert_eq!(verifier.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// assert_eq!(format!("{verifier:?}"), "PkceVerifier([redacted])");
/// # Ok::<_, tower_oauth2::Error>(())
/// ```
pub struct PkceVerifier(Zeroizing<String>);

impl PkceVerifier {
    /// Makes a new verifier from 32 random bytes (256 bits), base64url-encoded into 43
    /// characters, as RFC 7636 section 4.1 recommends.
    pub fn generate() -> Self {
        Self(Zeroizing::new(random_token()))
    }

    /// Takes a verifier made elsewhere, such as one kept in a session.
    ///
    /// Fails with [`ErrorKind::Config`](crate::ErrorKind::Config) unless it has 43 to 128
    /// characters, each a letter, a digit or one of `-._~`.
    pub fn from_string(verifier: impl Into<String>) -> Result<Self, Error> {
        let verifier = Zeroizing::new(verifier.into());
        let unreserved = verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !LENGTHS.contains(&verifier.len()) || !unreserved {
            return Err(Error::config(
                "a PKCE verifier has 43 to 128 characters from A-Z a-z 0-9 - . _ ~",
            ));
        }
        Ok(Self(verifier))
    }

    /// Returns the verifier.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns the S256 challenge: `BASE64URL(SHA256(verifier))`, without padding.
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for PkceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PkceVerifier([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn generated_verifiers_are_43_unreserved_characters_and_differ() {
        let first = PkceVerifier::generate();
        let second = PkceVerifier::generate();
        assert_eq!(first.expose().len(), 43);
        assert!(PkceVerifier::from_string(first.expose()).is_ok());
        assert_ne!(first.expose(), second.expose());
        assert_ne!(first.challenge(), second.challenge());
    }

    #[test]
    fn verifiers_outside_rfc_7636_are_refused() {
        let short = "a".repeat(42);
        let long = "a".repeat(129);
        let with_space = format!("{} b", "a".repeat(42));
        for bad in [short.as_str(), long.as_str(), with_space.as_str(), ""] {
            let error = PkceVerifier::from_string(bad).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Config);
        }
        assert!(PkceVerifier::from_string("a".repeat(43)).is_ok());
        assert!(PkceVerifier::from_string("~._-".repeat(32)).is_ok());
    }

    #[test]
    fn the_challenge_is_the_rfc_7636_example() {
        let verifier =
            PkceVerifier::from_string("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        assert_eq!(
            verifier.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn debug_never_shows_the_verifier() {
        let verifier = PkceVerifier::generate();
        let debug = format!("{verifier:?}");
        assert!(!debug.contains(verifier.expose()));
    }
}
