//! Where a client credential comes from: a fixed value, a file read again for every token
//! request, or the user's async function ([`CredentialSource`]).
//!
//! Sources are read on the token-request path only, when a request to the authorization
//! server is built; the per-request path of the middleware never sees them. The reading and
//! its limits live here; what a credential means (a secret, an assertion and its `exp`) is the
//! business of the client authentication that holds it.

mod expiry;
mod file;

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

pub(crate) use self::expiry::{remaining as jwt_remaining, usable as assertion_usable};
#[cfg(feature = "jwt")]
pub(crate) use self::file::read as read_bytes;
use crate::{BoxError, Error, ErrorKind, Secret};

type Produce =
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Secret, BoxError>> + Send>> + Send + Sync;

/// A credential the crate itself fetches, such as a CI runner's OIDC token
/// ([`workload::GitHubActions`](crate::workload::GitHubActions)): its errors are the crate's
/// own, typed as they came, rather than a user function's.
pub(crate) trait Fetch: Send + Sync + 'static {
    /// The current value: a cached one while it is good, else a new one.
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Secret, Error>> + Send + '_>>;

    /// What `Debug` and errors call it, such as "GitHub Actions OIDC token".
    fn name(&self) -> &'static str;

    /// The server refused the value (`invalid_client`): the next fetch must not answer the
    /// cached one.
    fn refused(&self) {}
}

/// Where a string credential comes from: a client secret, or an external client assertion
/// (see [`ClientAuth::client_assertion`](crate::ClientAuth::client_assertion)).
///
/// A source is read each time a request to the authorization server is built (a token request,
/// a revocation, a pushed authorization request), never for an API request: a token served
/// from the cache costs nothing more than with a fixed secret. A credential rotated in its
/// file is taken up from the next token request on, without a restart. When the server answers
/// `invalid_client`, a source that can change is read once more, and the request is sent again
/// once if the credential changed.
///
/// ```
/// use tower_oauth2::{ClientAuth, CredentialSource};
///
/// // A secret that does not change: what `ClientAuth::basic("my-client", "my-secret")` does.
/// let fixed = ClientAuth::basic("my-client", CredentialSource::fixed("my-secret"));
/// // A secret a secret manager rotates on disk.
/// let file = ClientAuth::basic("my-client", CredentialSource::file("/run/secrets/client"));
/// // Anything else: a vault, a sidecar, an environment variable.
/// let vault = ClientAuth::post(
///     "my-client",
///     CredentialSource::from_fn(|| async {
///         std::env::var("CLIENT_SECRET").map_err(|_| "CLIENT_SECRET is not set")
///     }),
/// );
/// ```
///
/// `Debug` names the kind of source and the file's path, never the value. Values are trimmed
/// of surrounding whitespace; an empty one, or one larger than the limit of what it holds
/// (4 KiB for a secret, 64 KiB for an assertion), is an [`ErrorKind::Config`] error that names
/// the file, and no request is sent.
#[derive(Clone)]
pub struct CredentialSource {
    kind: Kind,
    /// Shared by clones: a source cloned into several clients counts its changes once.
    changes: Arc<Changes>,
}

/// What a source read last (a digest, never the value) and how often it changed since.
#[derive(Default)]
struct Changes {
    last: Mutex<Option<[u8; 32]>>,
    reloads: AtomicU64,
}

impl Changes {
    fn read(&self, value: &Secret) {
        let digest: [u8; 32] = Sha256::digest(value.expose().as_bytes()).into();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|last| last != digest) {
            self.reloads.fetch_add(1, Ordering::Relaxed);
        }
        *last = Some(digest);
    }
}

#[derive(Clone)]
enum Kind {
    Fixed(Secret),
    File(Arc<PathBuf>),
    Function(Arc<Produce>),
    Fetched(Arc<dyn Fetch>),
}

/// What a source holds, for the limits and the words of its errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Holds {
    /// Such as "client secret".
    pub(crate) what: &'static str,
    pub(crate) max: usize,
}

impl Holds {
    pub(crate) const SECRET: Self = Self {
        what: "client secret",
        max: 4 * 1024,
    };
    pub(crate) const ASSERTION: Self = Self {
        what: "client assertion",
        max: 64 * 1024,
    };
    /// A grant's assertion or a token exchange's subject or actor token.
    pub(crate) const TOKEN: Self = Self {
        what: "token",
        max: 64 * 1024,
    };
}

/// The trimmed text of the file at `path`; `holds` sets the limit and names the credential in
/// errors ([`ErrorKind::Config`]), which name the path and never quote the file.
pub(crate) async fn read_file(path: &Arc<PathBuf>, holds: Holds) -> Result<Secret, Error> {
    let bytes = file::read(Arc::clone(path), holds.what, holds.max).await?;
    let failed = |why: &str| {
        Error::new(ErrorKind::Config).with_detail(format!(
            "the {} file {} {why}",
            holds.what,
            path.display()
        ))
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| failed("is not UTF-8"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(failed("is empty"));
    }
    Ok(Secret::new(text))
}

impl CredentialSource {
    /// A value that never changes.
    pub fn fixed(value: impl Into<Secret>) -> Self {
        Self::of(Kind::Fixed(value.into()))
    }

    fn of(kind: Kind) -> Self {
        Self {
            kind,
            changes: Arc::default(),
        }
    }

    /// The contents of the file at `path`, read for every request to the authorization server
    /// (a few KiB at most, on tokio's blocking pool), so that a file replaced on disk is used
    /// from the next token request on. A missing, unreadable, empty or oversized file is an
    /// error naming `path`.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::of(Kind::File(Arc::new(path.into())))
    }

    /// The value `produce` resolves to, called for every request to the authorization server.
    /// Its error becomes an [`ErrorKind::Source`] error, with it as the
    /// [`source`](std::error::Error::source).
    pub fn from_fn<F, Fut, S, E>(produce: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, E>> + Send + 'static,
        S: Into<Secret>,
        E: Into<BoxError>,
    {
        let produce = move || {
            let value = produce();
            Box::pin(async move { value.await.map(Into::into).map_err(Into::into) })
                as Pin<Box<dyn Future<Output = Result<Secret, BoxError>> + Send>>
        };
        Self::of(Kind::Function(Arc::new(produce)))
    }

    /// How many times a read gave a value other than the read before: how often a rotated
    /// credential was taken up. Clones share the count. Always 0 for a fixed value.
    ///
    /// ```
    /// use tower_oauth2::CredentialSource;
    ///
    /// let source = CredentialSource::file("/run/secrets/client");
    /// assert_eq!(source.reloads(), 0);
    /// ```
    pub fn reloads(&self) -> u64 {
        self.changes.reloads.load(Ordering::Relaxed)
    }

    /// A value the crate fetches itself (see [`Fetch`]).
    pub(crate) fn fetched(fetch: Arc<dyn Fetch>) -> Self {
        Self::of(Kind::Fetched(fetch))
    }

    /// The server refused the value this source gave: a source that keeps a fetched value
    /// fetches a new one on the next read. Files and functions are read afresh anyway.
    pub(crate) fn refused(&self) {
        if let Kind::Fetched(fetch) = &self.kind {
            fetch.refused();
        }
    }

    /// Whether reading again can give another value: not for a fixed one.
    pub(crate) fn can_change(&self) -> bool {
        !matches!(self.kind, Kind::Fixed(_))
    }

    /// The value, when it needs no reading.
    pub(crate) fn fixed_value(&self) -> Option<&Secret> {
        match &self.kind {
            Kind::Fixed(secret) => Some(secret),
            _ => None,
        }
    }

    /// Reads the value, trimmed; `holds` sets the limit and names the credential in errors.
    pub(crate) async fn read(&self, holds: Holds) -> Result<Secret, Error> {
        let value = self.read_unrecorded(holds).await?;
        if self.can_change() {
            self.changes.read(&value);
        }
        Ok(value)
    }

    async fn read_unrecorded(&self, holds: Holds) -> Result<Secret, Error> {
        let value = match &self.kind {
            Kind::Fixed(secret) => return Ok(secret.clone()),
            Kind::File(path) => return read_file(path, holds).await,
            Kind::Fetched(fetch) => fetch.fetch().await?,
            Kind::Function(produce) => produce().await.map_err(|error| {
                Error::new(ErrorKind::Source)
                    .with_detail(format!("the {} function failed", holds.what))
                    .with_source(error)
            })?,
        };
        if value.len() > holds.max {
            return Err(self.invalid(holds, &format!("is larger than {} bytes", holds.max)));
        }
        let value = if value.expose().trim().len() == value.len() {
            value
        } else {
            Secret::new(value.expose().trim())
        };
        if value.is_empty() {
            return Err(self.invalid(holds, "is empty"));
        }
        Ok(value)
    }

    /// An error about this source's value, naming the source.
    pub(crate) fn invalid(&self, holds: Holds, why: &str) -> Error {
        Error::new(ErrorKind::Config).with_detail(format!("{} {why}", self.name(holds)))
    }

    /// What errors call this source, such as "the client assertion file /run/token".
    fn name(&self, holds: Holds) -> String {
        let what = holds.what;
        match &self.kind {
            Kind::Fixed(_) => format!("the fixed {what}"),
            Kind::File(path) => format!("the {what} file {}", path.display()),
            Kind::Function(_) => format!("the {what} function's value"),
            Kind::Fetched(fetch) => format!("the {what} from the {}", fetch.name()),
        }
    }
}

impl fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Fixed(_) => f.write_str("CredentialSource::Fixed([redacted])"),
            Kind::File(path) => f.debug_tuple("CredentialSource::File").field(path).finish(),
            Kind::Function(_) => f.write_str("CredentialSource::Function"),
            Kind::Fetched(fetch) => f
                .debug_tuple("CredentialSource::Fetched")
                .field(&fetch.name())
                .finish(),
        }
    }
}

impl From<Secret> for CredentialSource {
    fn from(value: Secret) -> Self {
        Self::fixed(value)
    }
}

impl From<String> for CredentialSource {
    fn from(value: String) -> Self {
        Self::fixed(value)
    }
}

impl From<&str> for CredentialSource {
    fn from(value: &str) -> Self {
        Self::fixed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_is_read_trimmed_and_again_after_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "  first\n").unwrap();
        let source = CredentialSource::file(&path);
        assert_eq!(source.read(Holds::SECRET).await.unwrap().expose(), "first");
        std::fs::write(&path, "second\n").unwrap();
        assert_eq!(source.read(Holds::SECRET).await.unwrap().expose(), "second");
        assert!(source.can_change());
        assert_eq!(source.reloads(), 1);
        let clone = source.clone();
        assert_eq!(clone.read(Holds::SECRET).await.unwrap().expose(), "second");
        std::fs::write(&path, "third").unwrap();
        assert_eq!(clone.read(Holds::SECRET).await.unwrap().expose(), "third");
        assert_eq!(source.reloads(), 2, "a clone's reads count for the source");
        assert!(!CredentialSource::fixed("x").can_change());
    }

    #[tokio::test]
    async fn missing_and_empty_files_are_config_errors_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let source = CredentialSource::file(&path);
        let missing = source.read(Holds::SECRET).await.unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::Config);
        assert!(missing.to_string().contains(&path.display().to_string()));
        std::fs::write(&path, " \n").unwrap();
        let empty = source.read(Holds::SECRET).await.unwrap_err();
        assert!(empty.to_string().contains("is empty"), "{empty}");
        assert!(empty.to_string().contains(&path.display().to_string()));
    }

    #[tokio::test]
    async fn a_function_s_failure_is_a_source_error_and_its_value_is_bounded() {
        let failing = CredentialSource::from_fn(|| async { Err::<String, _>("vault is down") });
        let error = failing.read(Holds::SECRET).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Source);
        let huge = CredentialSource::from_fn(|| async { Ok::<_, BoxError>("a".repeat(5000)) });
        let error = huge.read(Holds::SECRET).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        assert!(!error.to_string().contains("aaa"));
    }

    #[test]
    fn debug_names_the_source_and_never_the_value() {
        let fixed = format!("{:?}", CredentialSource::fixed("sentinel-secret"));
        assert!(!fixed.contains("sentinel"), "{fixed}");
        let file = format!("{:?}", CredentialSource::file("/run/secrets/client"));
        assert!(file.contains("/run/secrets/client"), "{file}");
        let function = CredentialSource::from_fn(|| async { Ok::<_, BoxError>("sentinel") });
        assert!(!format!("{function:?}").contains("sentinel"));
    }
}
