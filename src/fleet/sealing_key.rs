//! The key a fleet seals its token sets with, as the user gives it: 32 bytes and the id that
//! names them in every sealed value, so that keys can be rotated. `seal.rs` uses it.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm_siv::{Aes256GcmSiv, KeyInit};
use base64::Engine;
use zeroize::Zeroizing;

use crate::Error;

/// A 256-bit key that seals the token sets a [`RedisFleet`](super::RedisFleet) writes to Redis,
/// with the id that names it in every value it seals.
///
/// Every replica of a fleet needs the same key (and id) to read what the others write. To
/// rotate keys, give every replica the new key as an
/// [extra key](super::RedisFleet::also_decrypt_with) first, then make it the current key
/// everywhere, then drop the old one: a value sealed under a key id a replica does not know is
/// treated as absent, and that replica runs a grant of its own.
///
/// The bytes are zeroed when the key is dropped; `Debug` shows the id only.
///
/// ```
/// use tower_oauth2::fleet::FleetKey;
///
/// # fn main() -> Result<(), tower_oauth2::Error> {
/// // 32 random bytes, base64-encoded, say from `openssl rand -base64 32`.
/// let key = FleetKey::from_base64(1, "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=")?;
/// assert_eq!(key.id(), 1);
/// assert_eq!(format!("{key:?}"), "FleetKey { id: 1, bytes: [redacted] }");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct FleetKey {
    id: u32,
    bytes: Zeroizing<[u8; 32]>,
}

impl FleetKey {
    /// Creates a key named `id` from its 32 bytes.
    pub fn new(id: u32, bytes: [u8; 32]) -> Self {
        Self {
            id,
            bytes: Zeroizing::new(bytes),
        }
    }

    /// Creates a key named `id` from a slice, which must be 32 bytes long.
    pub fn from_slice(id: u32, bytes: &[u8]) -> Result<Self, Error> {
        let mut key = Zeroizing::new([0; 32]);
        if bytes.len() != key.len() {
            return Err(Error::config("a fleet key must be 32 bytes long"));
        }
        key.copy_from_slice(bytes);
        Ok(Self { id, bytes: key })
    }

    /// Creates a key named `id` from 32 bytes in base64 (standard or URL-safe alphabet,
    /// padded or not), as `openssl rand -base64 32` prints them.
    pub fn from_base64(id: u32, encoded: &str) -> Result<Self, Error> {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let encoded = encoded.trim();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(encoded).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| Error::config("a fleet key must be base64"))?;
        Self::from_slice(id, &decoded)
    }

    /// Returns the id that names this key in the values it seals.
    pub fn id(&self) -> u32 {
        self.id
    }

    // A 32-byte slice is always a valid AES-256 key.
    pub(super) fn cipher(&self) -> Aes256GcmSiv {
        Aes256GcmSiv::new(&(*self.bytes).into())
    }

    pub(super) fn gcm_cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&(*self.bytes).into())
    }
}

impl fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetKey")
            .field("id", &self.id)
            .field("bytes", &format_args!("[redacted]"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::seal::Keyring;

    #[test]
    fn keys_come_from_32_bytes_only_and_never_show_them() {
        let encoded = base64::engine::general_purpose::STANDARD.encode([0xab; 32]);
        let key = FleetKey::from_base64(3, &encoded).unwrap();
        assert_eq!(*key.bytes, [0xab; 32]);
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb; 32]);
        assert_eq!(
            *FleetKey::from_base64(3, &url_safe).unwrap().bytes,
            [0xfb; 32]
        );
        assert!(FleetKey::from_slice(1, &[0; 31]).is_err());
        assert!(FleetKey::from_base64(1, "not base64!").is_err());
        assert_eq!(format!("{key:?}"), "FleetKey { id: 3, bytes: [redacted] }");
        assert_eq!(
            format!("{:?}", Keyring::new(FleetKey::new(1, [0xcd; 32]))),
            "Keyring { current: 1, ids: [1], plaintext: false }"
        );
    }
}
