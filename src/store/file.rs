//! A token store in one JSON file.

use std::{
    fmt,
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::SystemTime,
};

use zeroize::Zeroizing;

use crate::{
    Error, ErrorKind, Lineage, Token, TokenStore,
    saved::{self, Saving, Unreadable},
};

/// A [`TokenStore`] that keeps the token in a JSON file, for a program that must not lose its
/// refresh token when it restarts.
///
/// - **Atomic.** A save writes a temporary file next to the target, flushes it to disk and
///   renames it over the target: a reader, or the next start after a crash, sees the old token
///   or the new one, never a mix. A failed save leaves the old file as it was.
/// - **Private.** On Unix the file is created with mode `0600` (and a missing directory with
///   `0700`), so other users cannot read the tokens. A file that others can read is used, with
///   a warning in the log.
/// - **Wall-clock expiry.** The file records when the access token expires as a Unix time;
///   [`load`](TokenStore::load) gives back the time left, zero once it has passed, and the
///   cache then renews the token with the saved refresh token.
///
/// - **Newest wins.** Saves run one at a time, and a save of a set older than one this store
///   has written (a lower [`lineage`](Token::lineage)) is skipped: a save that timed out may
///   still finish on a blocking thread, but never over a newer one.
///
/// The file holds the access, refresh and id tokens in clear text; protect it as you would a
/// password. File I/O runs on Tokio's blocking threads.
///
/// ```
/// use tower_oauth2::{FileStore, TokenCache, Token, TokenSource, FetchContext, Error};
/// # struct Grant;
/// # impl TokenSource for Grant {
/// #     async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, Error> { Ok(Token::bearer("a")) }
/// # }
/// # let grant = Grant;
///
/// let cache = TokenCache::builder(grant)
///     .store(FileStore::new("/var/lib/my-app/token.json"))
///     .build();
/// ```
pub struct FileStore {
    path: PathBuf,
    /// Held by the save that is writing; the newest lineage written so far.
    written: Arc<Mutex<Lineage>>,
}

impl FileStore {
    /// Creates a store that keeps the token in the file at `path`. Nothing is read or written
    /// until the cache needs it.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            written: Arc::default(),
        }
    }

    /// Returns the path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl TokenStore for FileStore {
    async fn load(&self) -> Result<Option<Token>, Error> {
        let path = self.path.clone();
        blocking(move || load(&path)).await
    }

    async fn save(&self, token: &Token) -> Result<(), Error> {
        let bytes = encode(token, SystemTime::now())?;
        let path = self.path.clone();
        let written = Arc::clone(&self.written);
        let lineage = token.lineage();
        blocking(move || {
            // Checked and written under one lock, inside the blocking task: a caller that gave
            // up waiting does not stop the write, so the order is kept here.
            let mut newest = written.lock().unwrap_or_else(PoisonError::into_inner);
            if lineage < *newest {
                tracing::debug!(path = %path.display(), "a newer token set is saved already");
                return Ok(());
            }
            write_atomically(&path, &bytes)
                .map_err(|error| io_error("could not write", &path, error))?;
            *newest = lineage;
            Ok(())
        })
        .await
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Runs `work` on Tokio's blocking threads, or in place outside a Tokio runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime.spawn_blocking(work).await.unwrap_or_else(|_| {
            Err(Error::new(ErrorKind::Store)
                .with_detail("the file task stopped before it finished"))
        }),
        Err(_) => work(),
    }
}

/// The file's content for `token`, saved at `now`.
fn encode(token: &Token, now: SystemTime) -> Result<Zeroizing<Vec<u8>>, Error> {
    Saving::new(token, now).to_json(true, true).ok_or_else(|| {
        Error::new(ErrorKind::Store).with_detail("the token could not be written as JSON")
    })
}

/// The token in the file at `path`, with its lifetime counted from `now`.
fn decode(bytes: &[u8], now: SystemTime, path: &Path) -> Result<Token, Error> {
    saved::decode(bytes, now).map_err(|unreadable| {
        let detail = match unreadable {
            Unreadable::Malformed { line, column } => format!(
                "{} is not a saved token (line {line}, column {column})",
                path.display()
            ),
            Unreadable::Version(version) => format!(
                "{} has version {version} of the file layout; this program reads version {}",
                path.display(),
                saved::VERSION
            ),
        };
        Error::new(ErrorKind::Store).with_detail(detail)
    })
}

fn load(path: &Path) -> Result<Option<Token>, Error> {
    let bytes = match fs::read(path) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("could not read", path, error)),
    };
    warn_if_readable_by_others(path);
    decode(&bytes, SystemTime::now(), path).map(Some)
}

/// Writes `bytes` to a new private file beside `path`, flushes it, and renames it over `path`.
/// On failure the temporary file is removed and `path` is untouched.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    create_private_dir(dir)?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    let prefix = format!(".{}.", name.as_deref().unwrap_or("token"));
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
    // Dropping the temporary file on any error below deletes it.
    let mut file = builder.tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    // The rename itself reaches the disk only with the directory.
    #[cfg(unix)]
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", metadata.permissions().mode() & 0o777),
                "the token file can be read by other users"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn io_error(what: &str, path: &Path, error: io::Error) -> Error {
    Error::new(ErrorKind::Store)
        .with_detail(format!("{what} {}", path.display()))
        .with_source(Box::new(error))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::{Map, Value};

    use super::*;

    fn full_token() -> Token {
        let mut extra = Map::new();
        extra.insert("sid".into(), Value::from("s-1"));
        Token::bearer("access-1")
            .with_expires_in(Duration::from_secs(300))
            .with_scopes(["read", "write"])
            .with_refresh_token("refresh-1")
            .with_id_token("id-1")
            .with_extra(extra)
    }

    #[test]
    fn expiry_is_saved_as_wall_clock_time_and_counted_from_load() {
        let saved_at = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let bytes = encode(&full_token(), saved_at).unwrap();
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["expires_at"], 1_000_300);

        let path = Path::new("token.json");
        let later = saved_at + Duration::from_secs(100);
        let token = decode(&bytes, later, path).unwrap();
        assert_eq!(token.expires_in(), Some(Duration::from_secs(200)));
        assert_eq!(token.refresh_token().unwrap().expose(), "refresh-1");
        assert_eq!(token.id_token().unwrap().expose(), "id-1");
        assert_eq!(token.scopes().unwrap(), ["read", "write"]);
        assert_eq!(token.extra()["sid"], "s-1");

        let long_after = saved_at + Duration::from_secs(10_000);
        let expired = decode(&bytes, long_after, path).unwrap();
        assert_eq!(expired.expires_in(), Some(Duration::ZERO));
    }

    #[test]
    fn a_token_without_lifetime_loads_without_one() {
        let bytes = encode(&Token::bearer("a"), SystemTime::now()).unwrap();
        let token = decode(&bytes, SystemTime::now(), Path::new("t")).unwrap();
        assert_eq!(token.expires_in(), None);
        assert!(token.refresh_token().is_none());
    }

    #[test]
    fn a_damaged_file_is_reported_without_quoting_it() {
        let bytes = br#"{"version":1,"access_token":42,"refresh_token":"sentinel-refresh"}"#;
        let error = decode(bytes, SystemTime::now(), Path::new("t.json")).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Store);
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("t.json"), "{shown}");
        assert!(!shown.contains("sentinel"), "{shown}");
    }

    #[tokio::test]
    async fn an_older_set_saved_after_a_newer_one_leaves_the_newer_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("token.json"));
        let newer = Token::bearer("new")
            .with_refresh_token("r2")
            .with_lineage(Lineage::from_u64(2));
        let older = Token::bearer("old")
            .with_refresh_token("r1")
            .with_lineage(Lineage::from_u64(1));
        store.save(&newer).await.unwrap();
        store.save(&older).await.unwrap();
        let loaded = store.load().await.unwrap().unwrap();
        assert_eq!(loaded.refresh_token().unwrap().expose(), "r2");
        assert_eq!(loaded.lineage(), Lineage::from_u64(2));
    }

    #[test]
    fn a_file_with_expires_at_u64_max_loads_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token.json");
        let json = format!(
            r#"{{"version":1,"access_token":"a","refresh_token":"r","expires_at":{},"issued_at":1}}"#,
            u64::MAX
        );
        fs::write(&path, json).unwrap();
        // Past the end of what the clock can tell: no expiry, as the cache takes a lifetime
        // too long for an `Instant`.
        let token = load(&path).unwrap().unwrap();
        assert_eq!(token.expires_in(), None);
        assert_eq!(token.refresh_token().unwrap().expose(), "r");
    }

    #[test]
    fn a_file_from_a_later_layout_is_refused() {
        let bytes = br#"{"version":2,"access_token":"a"}"#;
        let error = decode(bytes, SystemTime::now(), Path::new("t.json")).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Store);
        assert!(error.to_string().contains("version 2"), "{error}");
    }
}
