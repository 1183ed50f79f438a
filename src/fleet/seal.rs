//! What a fleet writes to Redis: a token set sealed with AES-256-GCM-SIV under a key the user
//! gives, named by a key id so keys can be rotated, and bound to the Redis key it is stored
//! under.
//!
//! A value is one of:
//!
//! ```text
//! sealed:     0x02 | key id (u32, big-endian) | nonce (12 bytes) | ciphertext | tag (16 bytes)
//! sealed v1:  0x01 | the same, with AES-256-GCM       (read, never written)
//! plaintext:  0x00 | the saved JSON form          (only with RedisFleet::plaintext)
//! ```
//!
//! The associated data of a sealed value is its first five bytes followed by the Redis key, so
//! a value copied under another key, or given another key id or format, fails to open.
//!
//! Every replica of a fleet seals under the one key they share, so nonces must never repeat
//! across replicas. They come from the operating system for each value, never from a
//! generator in the process: a process forked from a replica, or a VM restored from a
//! snapshot of one, holds a copy of such a generator and would draw the same nonces as its
//! origin. AES-GCM-SIV (RFC 8452) covers what the operating system cannot: on a hypervisor
//! that restores snapshots without telling the guest, even its generator may repeat, and
//! with GCM-SIV a repeated nonce reveals only whether two values are equal, where with
//! AES-GCM it would reveal their XOR and the key that forges tags.

use std::fmt;

use aes_gcm::Nonce;
use aes_gcm_siv::aead::{Aead, Payload};
use rand::TryRng;
use zeroize::Zeroizing;

use super::sealing_key::FleetKey;

/// The format this program writes: AES-256-GCM-SIV.
const SEALED: u8 = 2;
/// The format of values sealed before: AES-256-GCM, with nonces from a generator in the
/// process. Still opened, so a fleet keeps its token sets across the upgrade.
const SEALED_GCM: u8 = 1;
const PLAINTEXT: u8 = 0;
const HEADER: usize = 1 + 4;
const NONCE: usize = 12;
const TAG: usize = 16;

/// Why a value read from Redis was not used. Says nothing about the value's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Empty, or shorter than its header, nonce and tag.
    Truncated,
    /// A first byte this program does not write.
    UnknownFormat(u8),
    /// A plaintext value, and the fleet was not told to accept them.
    Plaintext,
    /// Sealed under a key id this replica does not have.
    UnknownKey(u32),
    /// The tag does not match: tampered with, sealed with another key of the same id, or
    /// moved from another Redis key.
    Forged,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("the value is truncated"),
            Self::UnknownFormat(byte) => write!(f, "the value has unknown format {byte}"),
            Self::Plaintext => f.write_str("the value is plaintext, which this fleet refuses"),
            Self::UnknownKey(id) => write!(f, "the value is sealed with unknown key id {id}"),
            Self::Forged => {
                f.write_str("the value failed authentication (tampered, wrong key, or moved)")
            }
        }
    }
}

/// The keys of one fleet: the current one seals, any of them opens.
#[derive(Clone)]
pub(crate) struct Keyring {
    current: FleetKey,
    others: Vec<FleetKey>,
    plaintext: bool,
}

impl Keyring {
    pub(crate) fn new(current: FleetKey) -> Self {
        Self {
            current,
            others: Vec::new(),
            plaintext: false,
        }
    }

    /// Also opens values sealed with `key`. A key with the current key's id is ignored.
    pub(crate) fn add(&mut self, key: FleetKey) {
        if key.id() == self.current.id() {
            return;
        }
        self.others.retain(|other| other.id() != key.id());
        self.others.push(key);
    }

    /// Writes plaintext values, and accepts them.
    pub(crate) fn allow_plaintext(&mut self) {
        self.plaintext = true;
    }

    fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        std::iter::once(self.current.id()).chain(self.others.iter().map(|key| key.id()))
    }

    /// The value to store under `redis_key` for the saved form `json`; `None` when the
    /// operating system gives no random bytes for the nonce, or for inputs of gigabytes,
    /// which AES-GCM-SIV cannot seal.
    pub(crate) fn seal(&self, redis_key: &str, json: &[u8]) -> Option<Vec<u8>> {
        if self.plaintext {
            let mut value = Vec::with_capacity(1 + json.len());
            value.push(PLAINTEXT);
            value.extend_from_slice(json);
            return Some(value);
        }
        let mut nonce = [0; NONCE];
        rand::rngs::SysRng.try_fill_bytes(&mut nonce).ok()?;
        let header = header(SEALED, self.current.id());
        let aad = associated_data(&header, redis_key);
        let ciphertext = self
            .current
            .cipher()
            .encrypt(
                &aes_gcm_siv::Nonce::from(nonce),
                Payload {
                    msg: json,
                    aad: &aad,
                },
            )
            .ok()?;
        let mut value = Vec::with_capacity(HEADER + NONCE + ciphertext.len());
        value.extend_from_slice(&header);
        value.extend_from_slice(&nonce);
        value.extend_from_slice(&ciphertext);
        Some(value)
    }

    /// The saved form in `value`, read from `redis_key`.
    pub(crate) fn open(
        &self,
        redis_key: &str,
        value: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Refused> {
        match value.first() {
            None => Err(Refused::Truncated),
            Some(&PLAINTEXT) if self.plaintext => Ok(Zeroizing::new(value[1..].to_vec())),
            Some(&PLAINTEXT) => Err(Refused::Plaintext),
            Some(&format @ (SEALED | SEALED_GCM)) => self.open_sealed(format, redis_key, value),
            Some(&other) => Err(Refused::UnknownFormat(other)),
        }
    }

    fn open_sealed(
        &self,
        format: u8,
        redis_key: &str,
        value: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Refused> {
        if value.len() < HEADER + NONCE + TAG {
            return Err(Refused::Truncated);
        }
        let (header, rest) = value.split_at(HEADER);
        let (nonce, ciphertext) = rest.split_at(NONCE);
        let id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let key = std::iter::once(&self.current)
            .chain(&self.others)
            .find(|key| key.id() == id)
            .ok_or(Refused::UnknownKey(id))?;
        let mut nonce_bytes = [0; NONCE];
        nonce_bytes.copy_from_slice(nonce);
        let aad = associated_data(header, redis_key);
        let payload = Payload {
            msg: ciphertext,
            aad: &aad,
        };
        let opened = if format == SEALED {
            key.cipher()
                .decrypt(&aes_gcm_siv::Nonce::from(nonce_bytes), payload)
        } else {
            key.gcm_cipher().decrypt(&Nonce::from(nonce_bytes), payload)
        };
        opened.map(Zeroizing::new).map_err(|_| Refused::Forged)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u32> = self.ids().collect();
        f.debug_struct("Keyring")
            .field("current", &self.current.id())
            .field("ids", &ids)
            .field("plaintext", &self.plaintext)
            .finish()
    }
}

fn header(format: u8, id: u32) -> [u8; HEADER] {
    let id = id.to_be_bytes();
    [format, id[0], id[1], id[2], id[3]]
}

fn associated_data(header: &[u8], redis_key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + redis_key.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(redis_key.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "tower-oauth2:{00112233445566778899aabbccddeeff}:token";
    const JSON: &[u8] = br#"{"version":1,"access_token":"sentinel-access"}"#;

    fn ring(id: u32, byte: u8) -> Keyring {
        Keyring::new(FleetKey::new(id, [byte; 32]))
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack
            .windows(needle.len())
            .any(|window| window == needle)
    }

    #[test]
    fn a_sealed_value_opens_to_what_was_sealed_and_hides_it() {
        let keys = ring(7, 1);
        let value = keys.seal(KEY, JSON).unwrap();
        assert_eq!(value[0], SEALED);
        assert_eq!(&value[1..5], &7u32.to_be_bytes());
        assert_eq!(value.len(), HEADER + NONCE + JSON.len() + TAG);
        assert!(!contains(&value, b"sentinel"));
        assert_eq!(keys.open(KEY, &value).unwrap().as_slice(), JSON);
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let keys = ring(1, 1);
        assert_ne!(keys.seal(KEY, JSON).unwrap(), keys.seal(KEY, JSON).unwrap());
    }

    /// Set in the copy of this test binary that `a_forked_replica_draws_other_nonces` starts:
    /// the file the forked child writes its value to.
    #[cfg(unix)]
    const FORK_CHILD_OUTPUT: &str = "TOWER_OAUTH2_FORK_NONCE_OUTPUT";

    /// A replica cloned from a running one (a `fork`, or a VM restored from a warm snapshot)
    /// starts with the memory of its origin, a user-space generator's state included: it must
    /// still seal with other nonces than its origin does.
    ///
    /// Forking a multi-threaded test harness could leave the child waiting on a lock another
    /// test thread held, so the test runs itself again, alone, in a process of its own, and
    /// forks there.
    #[cfg(unix)]
    #[test]
    fn a_forked_replica_draws_other_nonces() {
        let Ok(output) = std::env::var(FORK_CHILD_OUTPUT) else {
            let dir = tempfile::tempdir().unwrap();
            let output = dir.path().join("child");
            let run = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "fleet::seal::tests::a_forked_replica_draws_other_nonces",
                    "--exact",
                    "--test-threads=1",
                    "--nocapture",
                ])
                .env(FORK_CHILD_OUTPUT, &output)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&run.stdout);
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert!(run.status.success(), "{stdout}\n{stderr}");
            assert!(stdout.contains("1 passed"), "{stdout}");
            return;
        };
        let keys = ring(1, 1);
        // The origin has sealed before, as a warm replica has.
        keys.seal(KEY, JSON).unwrap();
        match fork::fork().unwrap() {
            fork::Fork::Child => {
                let value = keys.seal(KEY, JSON).unwrap();
                std::fs::write(&output, value).unwrap();
                std::process::exit(0);
            }
            fork::Fork::Parent(child) => {
                let value = keys.seal(KEY, JSON).unwrap();
                fork::waitpid(child).unwrap();
                let theirs = std::fs::read(&output).unwrap();
                let nonce = |value: &[u8]| value[HEADER..HEADER + NONCE].to_vec();
                assert_ne!(
                    nonce(&value),
                    nonce(&theirs),
                    "the forked child sealed with its parent's nonce"
                );
            }
        }
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        let keys = ring(1, 1);
        let value = keys.seal(KEY, JSON).unwrap();
        for index in HEADER..value.len() {
            let mut tampered = value.clone();
            tampered[index] ^= 0x01;
            assert_eq!(
                keys.open(KEY, &tampered),
                Err(Refused::Forged),
                "byte {index}"
            );
        }
    }

    /// A value as this crate sealed it before AES-GCM-SIV: format 1, AES-256-GCM.
    fn sealed_with_gcm(key: &FleetKey, nonce: [u8; NONCE]) -> Vec<u8> {
        let header = header(SEALED_GCM, key.id());
        let aad = associated_data(&header, KEY);
        let payload = Payload {
            msg: JSON,
            aad: &aad,
        };
        let ciphertext = key
            .gcm_cipher()
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap();
        [&header[..], &nonce, &ciphertext].concat()
    }

    #[test]
    fn values_sealed_with_aes_gcm_before_still_open() {
        let keys = ring(4, 9);
        let old = sealed_with_gcm(&FleetKey::new(4, [9; 32]), [3; NONCE]);
        assert_eq!(keys.open(KEY, &old).unwrap().as_slice(), JSON);
        // The format byte is authenticated: neither cipher opens the other's value.
        let mut relabelled = old.clone();
        relabelled[0] = SEALED;
        assert_eq!(keys.open(KEY, &relabelled), Err(Refused::Forged));
        let mut new = keys.seal(KEY, JSON).unwrap();
        assert_eq!(new[0], SEALED);
        new[0] = SEALED_GCM;
        assert_eq!(keys.open(KEY, &new), Err(Refused::Forged));
        let mut tampered = old;
        tampered[HEADER] ^= 1;
        assert_eq!(keys.open(KEY, &tampered), Err(Refused::Forged));
    }

    #[test]
    fn a_value_moved_to_another_key_is_refused() {
        let keys = ring(1, 1);
        let value = keys.seal(KEY, JSON).unwrap();
        let other = "tower-oauth2:{ffeeddccbbaa99887766554433221100}:token";
        assert_eq!(keys.open(other, &value), Err(Refused::Forged));
    }

    #[test]
    fn a_wrong_key_with_the_same_id_is_refused() {
        let value = ring(1, 1).seal(KEY, JSON).unwrap();
        assert_eq!(ring(1, 2).open(KEY, &value), Err(Refused::Forged));
    }

    #[test]
    fn an_unknown_key_id_is_refused_and_a_relabelled_value_is_forged() {
        let value = ring(1, 1).seal(KEY, JSON).unwrap();
        assert_eq!(ring(2, 1).open(KEY, &value), Err(Refused::UnknownKey(1)));

        // Same key bytes under another id: the header is authenticated too.
        let mut keys = ring(1, 1);
        keys.add(FleetKey::new(2, [1; 32]));
        let mut relabelled = value.clone();
        relabelled[1..5].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(keys.open(KEY, &relabelled), Err(Refused::Forged));
    }

    #[test]
    fn rotation_seals_with_the_current_key_and_opens_with_any() {
        let old = ring(1, 1).seal(KEY, JSON).unwrap();
        let mut rotated = ring(2, 2);
        rotated.add(FleetKey::new(1, [1; 32]));
        assert_eq!(rotated.open(KEY, &old).unwrap().as_slice(), JSON);
        let new = rotated.seal(KEY, JSON).unwrap();
        assert_eq!(&new[1..5], &2u32.to_be_bytes());
        assert_eq!(ring(1, 1).open(KEY, &new), Err(Refused::UnknownKey(2)));
    }

    #[test]
    fn plaintext_is_written_and_read_only_after_opting_in() {
        let keys = ring(1, 1);
        let mut plain = ring(1, 1);
        plain.allow_plaintext();
        let value = plain.seal(KEY, JSON).unwrap();
        assert_eq!(value[0], PLAINTEXT);
        assert_eq!(&value[1..], JSON);
        assert_eq!(plain.open(KEY, &value).unwrap().as_slice(), JSON);
        assert_eq!(keys.open(KEY, &value), Err(Refused::Plaintext));
        // A fleet that opted in still reads sealed values.
        assert_eq!(
            plain
                .open(KEY, &keys.seal(KEY, JSON).unwrap())
                .unwrap()
                .as_slice(),
            JSON
        );
    }

    #[test]
    fn short_and_unknown_values_are_refused_without_panicking() {
        let keys = ring(1, 1);
        assert_eq!(keys.open(KEY, b""), Err(Refused::Truncated));
        assert_eq!(keys.open(KEY, &[SEALED, 0, 0]), Err(Refused::Truncated));
        assert_eq!(keys.open(KEY, &[SEALED; 32]), Err(Refused::Truncated));
        assert_eq!(
            keys.open(KEY, b"{\"json\":1}"),
            Err(Refused::UnknownFormat(b'{'))
        );
    }
}
