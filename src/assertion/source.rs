//! Where a signing key comes from: a fixed key, a file read again for every token request, or
//! the user's async function ([`KeySource`]), for keys rotated while the client runs.
//!
//! A file is parsed only when its bytes changed (their SHA-256 is kept, not the bytes), so a
//! token request whose file did not change costs one bounded read and one hash.

use std::{
    fmt,
    future::Future,
    path::PathBuf,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use sha2::{Digest, Sha256};

use super::{SigningAlgorithm, SigningKey};
use crate::{BoxError, Error, ErrorKind, credential};

/// The largest key file read: a 4096-bit RSA key as a JWK is under 4 KiB.
const MAX_KEY_FILE: usize = 64 * 1024;

type Produce =
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<SigningKey, BoxError>> + Send>> + Send + Sync;

/// Where the private key of [`ClientAuth::private_key_jwt`](crate::ClientAuth::private_key_jwt)
/// comes from: a fixed [`SigningKey`], a file, or the user's async function.
///
/// A source that can change is read when a request to the authorization server is built (at
/// most once per token request, never for an API request), so a key rotated in its file signs
/// from the next token request on, with its new `kid`. When the server answers
/// `invalid_client`, the source is read once more, and the request is sent again once if the
/// key changed; an unchanged key is not retried.
///
/// ```
/// use tower_oauth2::{ClientAuth, KeySource};
///
/// // A PEM key (PKCS#8, PKCS#1 or SEC1) named by a key id, or a private JWK with its own `kid`.
/// let key = KeySource::file("/run/secrets/client-key.pem").with_key_id("2024-05");
/// let auth = ClientAuth::private_key_jwt("my-client", key.clone());
/// assert_eq!(key.reloads(), 0);
/// ```
///
/// A file is parsed again only when its contents changed. A missing, unreadable, empty,
/// oversized (over 64 KiB) or unparseable file is an [`ErrorKind::Config`] error that names
/// the path and never quotes the file, and no request is sent. `Debug` shows the kind of
/// source and the path, never key material. Clones share what was read and the
/// [`reloads`](Self::reloads) count.
#[derive(Clone)]
pub struct KeySource {
    kind: Kind,
    shape: Shape,
    seen: Arc<Seen>,
}

#[derive(Clone)]
enum Kind {
    Fixed(SigningKey),
    File(Arc<PathBuf>),
    Function(Arc<Produce>),
}

/// What the source's owner set for every key it gives.
#[derive(Clone, Default)]
struct Shape {
    /// The `kid` of keys that bring none of their own (a PEM file).
    key_id: Option<String>,
    algorithm: Option<SigningAlgorithm>,
}

/// The key last taken up, to tell a changed one, and how many times one was.
#[derive(Default)]
struct Seen {
    last: Mutex<Option<Last>>,
    reloads: AtomicU64,
}

struct Last {
    /// The SHA-256 of the file the key was parsed from; `None` for a function's key.
    digest: Option<[u8; 32]>,
    key: SigningKey,
}

impl KeySource {
    /// A key that never changes: what passing a [`SigningKey`] does.
    pub fn fixed(key: SigningKey) -> Self {
        Self::with_kind(Kind::Fixed(key))
    }

    /// The private key in the file at `path`, read for every request to the authorization
    /// server (on tokio's blocking pool) and parsed again when its bytes changed: PEM as
    /// [`SigningKey::from_pkcs8_pem`] reads it, or a private JWK as [`SigningKey::from_jwk`]
    /// does (a file whose first character, after whitespace, is `{`).
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::with_kind(Kind::File(Arc::new(path.into())))
    }

    /// The key `produce` resolves to, called for every request to the authorization server.
    /// Its error becomes an [`ErrorKind::Source`] error, with it as the
    /// [`source`](std::error::Error::source). A key is taken as changed when its material,
    /// algorithm or key id differ from the last one's.
    pub fn from_fn<F, Fut, E>(produce: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<SigningKey, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let produce = move || {
            let key = produce();
            Box::pin(async move { key.await.map_err(Into::into) })
                as Pin<Box<dyn Future<Output = Result<SigningKey, BoxError>> + Send>>
        };
        Self::with_kind(Kind::Function(Arc::new(produce)))
    }

    /// Names keys that carry no `kid` of their own (a PEM file) in the assertions' header. A
    /// JWK's `kid` wins: it was written with the key it names.
    #[must_use]
    pub fn with_key_id(mut self, key_id: impl Into<String>) -> Self {
        self.shape.key_id = Some(key_id.into());
        self
    }

    /// Signs with `algorithm` instead of the key type's default (or a JWK's `alg`). A key
    /// that cannot make it, such as an EC key asked for `PS256`, is an [`ErrorKind::Config`]
    /// error when it is read.
    #[must_use]
    pub fn with_algorithm(mut self, algorithm: SigningAlgorithm) -> Self {
        self.shape.algorithm = Some(algorithm);
        self
    }

    /// How many times a changed key was taken up since the source was made, the first read
    /// not counted: a rotation seen by the client counts one.
    pub fn reloads(&self) -> u64 {
        self.seen.reloads.load(Ordering::Relaxed)
    }

    /// Reads the key now, as a token request would: to check a key file at start, before
    /// anything is sent. Errors as for a token request.
    pub async fn load(&self) -> Result<SigningKey, Error> {
        self.read().await
    }

    fn with_kind(kind: Kind) -> Self {
        Self {
            kind,
            shape: Shape::default(),
            seen: Arc::default(),
        }
    }

    /// Whether reading again can give another key: not for a fixed one.
    pub(crate) fn can_change(&self) -> bool {
        !matches!(self.kind, Kind::Fixed(_))
    }

    /// The key, when it needs no reading.
    pub(crate) fn fixed_key(&self) -> Option<Result<SigningKey, Error>> {
        match &self.kind {
            Kind::Fixed(key) => Some(self.shape.apply(key.clone())),
            _ => None,
        }
    }

    /// Reads the key; a key that differs from the last one read counts as a reload.
    pub(crate) async fn read(&self) -> Result<SigningKey, Error> {
        match &self.kind {
            Kind::Fixed(key) => self.shape.apply(key.clone()),
            Kind::File(path) => {
                let bytes =
                    credential::read_bytes(Arc::clone(path), "private key", MAX_KEY_FILE).await?;
                let digest: [u8; 32] = Sha256::digest(&bytes[..]).into();
                if let Some(key) = self.seen.unchanged(&digest) {
                    return Ok(key);
                }
                let key = parse(&bytes)
                    .and_then(|key| self.shape.apply(key))
                    .map_err(|error| {
                        // The parser's words name no byte of the file; the path says which.
                        Error::new(ErrorKind::Config).with_detail(format!(
                            "the private key file {} cannot be used: {}",
                            path.display(),
                            error.detail().unwrap_or("not a private key")
                        ))
                    })?;
                self.seen.take_up(Some(digest), &key);
                Ok(key)
            }
            Kind::Function(produce) => {
                let key = produce().await.map_err(|error| {
                    Error::new(ErrorKind::Source)
                        .with_detail("the private key function failed")
                        .with_source(error)
                })?;
                let key = self.shape.apply(key)?;
                self.seen.take_up(None, &key);
                Ok(key)
            }
        }
    }
}

impl Shape {
    fn apply(&self, mut key: SigningKey) -> Result<SigningKey, Error> {
        if let Some(algorithm) = self.algorithm
            && algorithm != key.algorithm()
        {
            key = key.with_algorithm(algorithm)?;
        }
        match &self.key_id {
            Some(key_id) if key.key_id().is_none() => Ok(key.with_key_id(key_id)),
            _ => Ok(key),
        }
    }
}

impl Seen {
    /// The last key, if it was parsed from a file whose bytes hashed to `digest`.
    fn unchanged(&self, digest: &[u8; 32]) -> Option<SigningKey> {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|last| last.digest.as_ref() == Some(digest))
            .map(|last| last.key.clone())
    }

    /// Keeps `key` as the last one; a key that replaces a different one counts as a reload.
    fn take_up(&self, digest: Option<[u8; 32]>, key: &SigningKey) {
        // A lock poisoned by a panic elsewhere holds a whole value: keep using it.
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = match last.as_ref() {
            Some(last) => !last.key.same_as(key),
            None => false,
        };
        if changed {
            self.reloads.fetch_add(1, Ordering::Relaxed);
        }
        *last = Some(Last {
            digest,
            key: key.clone(),
        });
    }
}

/// A PEM or JWK private key from a file's bytes.
fn parse(bytes: &[u8]) -> Result<SigningKey, Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::config("the file is not UTF-8"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::config("the file is empty"));
    }
    if text.starts_with('{') {
        SigningKey::from_jwk(text)
    } else {
        SigningKey::from_pkcs8_pem(text)
    }
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = match &self.kind {
            Kind::Fixed(key) => {
                let mut out = f.debug_struct("KeySource::Fixed");
                out.field("key", key);
                out
            }
            Kind::File(path) => {
                let mut out = f.debug_struct("KeySource::File");
                out.field("path", path);
                out
            }
            Kind::Function(_) => f.debug_struct("KeySource::Function"),
        };
        out.field("key_id", &self.shape.key_id)
            .field(
                "algorithm",
                &self.shape.algorithm.map(SigningAlgorithm::as_str),
            )
            .field("reloads", &self.reloads())
            .finish()
    }
}

impl From<SigningKey> for KeySource {
    fn from(key: SigningKey) -> Self {
        Self::fixed(key)
    }
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
