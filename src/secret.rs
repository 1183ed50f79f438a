//! A string that must not be seen: client secrets, access, refresh and id tokens.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::HeaderValue;
use zeroize::Zeroizing;

/// A secret string: a client secret, an access, refresh or id token.
///
/// `Debug` prints `Secret([redacted])`, there is no `Display`, and the memory is zeroed when the
/// value is dropped. Reading the value takes an explicit call to [`Secret::expose`], which makes
/// every place that handles the raw secret easy to find.
///
/// ```
/// use tower_oauth2::Secret;
///
/// let secret = Secret::from("hunter2");
/// assert_eq!(format!("{secret:?}"), "Secret([redacted])");
/// assert_eq!(secret.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a string as a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// Returns the secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns the length of the secret in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns `true` when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

/// 32 bytes from the thread's cryptographically secure generator, base64url-encoded: 43
/// characters, each unreserved in URLs. What must not be guessed: PKCE verifiers, `state`, a
/// client assertion's `jti`.
pub(crate) fn random_token() -> String {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(*bytes)
}

/// A header value, marked sensitive, over bytes that are zeroed when its last clone is dropped:
/// an `Authorization` header lives as long as its token, and its memory should not outlive it.
/// `None` when `value` has bytes a header cannot carry.
pub(crate) fn sensitive_header(value: Zeroizing<Vec<u8>>) -> Option<HeaderValue> {
    let mut header = HeaderValue::from_maybe_shared(Bytes::from_owner(value)).ok()?;
    header.set_sensitive(true);
    Some(header)
}

/// Counts the bytes written to it and keeps none: a buffer that will hold a secret is sized
/// with it first, so it never grows and leaves a copy behind (or is allocated twice).
pub(crate) struct Counter(pub(crate) usize);

impl std::io::Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("sentinel-value");
        assert!(!format!("{secret:?}").contains("sentinel"));
        assert!(!format!("{:?}", Some(&secret)).contains("sentinel"));
    }

    #[test]
    fn sensitive_headers_refuse_what_a_header_cannot_carry() {
        let header = sensitive_header(Zeroizing::new(b"Bearer abc".to_vec())).unwrap();
        assert_eq!(header, "Bearer abc");
        assert!(header.is_sensitive());
        assert!(sensitive_header(Zeroizing::new(b"Bearer a\nb".to_vec())).is_none());
    }
}
