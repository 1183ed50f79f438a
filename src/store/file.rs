//! A token store in one JSON file.

use std::{
    fmt,
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::{Error, ErrorKind, Token, TokenStore};

/// The layout of the file; a file with a later version is refused rather than misread.
const VERSION: u32 = 1;

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
}

impl FileStore {
    /// Creates a store that keeps the token in the file at `path`. Nothing is read or written
    /// until the cache needs it.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
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
        blocking(move || {
            write_atomically(&path, &bytes)
                .map_err(|error| io_error("could not write", &path, error))
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

#[derive(Serialize)]
struct Saving<'a> {
    version: u32,
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
    #[serde(skip_serializing_if = "no_fields")]
    extra: &'a Map<String, Value>,
}

#[derive(Deserialize)]
struct Saved {
    version: u32,
    access_token: String,
    expires_at: Option<u64>,
    scope: Option<Vec<String>>,
    refresh_token: Option<String>,
    id_token: Option<String>,
    #[serde(default)]
    extra: Map<String, Value>,
}

fn no_fields(extra: &&Map<String, Value>) -> bool {
    extra.is_empty()
}

/// The file's content for `token`, saved at `now`.
fn encode(token: &Token, now: SystemTime) -> Result<Zeroizing<Vec<u8>>, Error> {
    // Rounded down: a token is taken for expired a fraction of a second early, never late.
    let expires_at = token
        .expires_in()
        .and_then(|lifetime| now.checked_add(lifetime))
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map(|since_epoch| since_epoch.as_secs());
    let saving = Saving {
        version: VERSION,
        access_token: token.access_token().expose(),
        expires_at,
        scope: token.scopes(),
        refresh_token: token.refresh_token().map(|secret| secret.expose()),
        id_token: token.id_token().map(|secret| secret.expose()),
        extra: token.extra(),
    };
    // One allocation large enough for any usual token set, so no copy is left behind by growth.
    let mut bytes = Zeroizing::new(Vec::with_capacity(16 * 1024));
    serde_json::to_writer_pretty(&mut *bytes, &saving).map_err(|_| {
        Error::new(ErrorKind::Store).with_detail("the token could not be written as JSON")
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The token in the file at `path`, with its lifetime counted from `now`.
fn decode(bytes: &[u8], now: SystemTime, path: &Path) -> Result<Token, Error> {
    // serde's messages can quote the input, which holds secrets: only the position is kept.
    let saved: Saved = serde_json::from_slice(bytes).map_err(|error| {
        Error::new(ErrorKind::Store).with_detail(format!(
            "{} is not a saved token (line {}, column {})",
            path.display(),
            error.line(),
            error.column()
        ))
    })?;
    if saved.version != VERSION {
        return Err(Error::new(ErrorKind::Store).with_detail(format!(
            "{} has version {} of the file layout; this program reads version {VERSION}",
            path.display(),
            saved.version
        )));
    }
    let mut token = Token::bearer(saved.access_token).with_extra(saved.extra);
    if let Some(expires_at) = saved.expires_at {
        let at = UNIX_EPOCH + Duration::from_secs(expires_at);
        token = token.with_expires_in(at.duration_since(now).unwrap_or(Duration::ZERO));
    }
    if let Some(scopes) = saved.scope {
        token = token.with_scopes(scopes);
    }
    if let Some(refresh_token) = saved.refresh_token {
        token = token.with_refresh_token(refresh_token);
    }
    if let Some(id_token) = saved.id_token {
        token = token.with_id_token(id_token);
    }
    Ok(token)
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

    #[test]
    fn a_file_from_a_later_layout_is_refused() {
        let bytes = br#"{"version":2,"access_token":"a"}"#;
        let error = decode(bytes, SystemTime::now(), Path::new("t.json")).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Store);
        assert!(error.to_string().contains("version 2"), "{error}");
    }
}
