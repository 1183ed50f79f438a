//! `FileStore` on a real file system: round trips, privacy, atomic replacement, failures, and
//! a cache restarted from the file. Real time throughout: file I/O runs on blocking threads,
//! which a paused clock would race.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Map, Value};
use tower_oauth2::{
    Error, ErrorKind, FetchContext, FileStore, Secret, Token, TokenCache, TokenSource, TokenStore,
};

fn token(n: usize) -> Token {
    Token::bearer(format!("access-{n}"))
        .with_expires_in(Duration::from_secs(3600))
        .with_scopes(["read"])
        .with_refresh_token(format!("refresh-{n}"))
}

/// Issues `access-N` / `refresh-N` and remembers the refresh token it was given.
#[derive(Default)]
struct Counting {
    fetches: AtomicUsize,
    given: std::sync::Mutex<Vec<Option<String>>>,
}

impl TokenSource for Counting {
    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, Error> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        let given = cx
            .previous()
            .and_then(Token::refresh_token)
            .map(|secret| secret.expose().to_owned());
        self.given.lock().unwrap().push(given);
        Ok(token(100 + n))
    }
}

#[tokio::test]
async fn a_saved_token_loads_back_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("token.json"));
    assert!(store.load().await.unwrap().is_none());

    let mut extra = Map::new();
    extra.insert("session_state".into(), Value::from("s-1"));
    let saved = token(1).with_id_token("id-1").with_extra(extra);
    store.save(&saved).await.unwrap();
    let loaded = store.load().await.unwrap().unwrap();

    assert_eq!(loaded.access_token().expose(), "access-1");
    assert_eq!(
        loaded.refresh_token().map(Secret::expose),
        Some("refresh-1")
    );
    assert_eq!(loaded.id_token().map(Secret::expose), Some("id-1"));
    assert_eq!(loaded.scopes().unwrap(), ["read"]);
    assert_eq!(loaded.extra()["session_state"], "s-1");
    let left = loaded.expires_in().unwrap();
    assert!(left <= Duration::from_secs(3600) && left > Duration::from_secs(3590));
}

#[cfg(unix)]
#[tokio::test]
async fn the_file_and_a_directory_it_creates_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;

    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("app").join("state");
    let path = nested.join("token.json");
    let store = FileStore::new(&path);
    store.save(&token(1)).await.unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&nested), 0o700);

    // Replacing an existing file that others could read makes it private too.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    store.save(&token(2)).await.unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_the_old_token_or_the_new_one_never_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    let store = Arc::new(FileStore::new(&path));
    // Large tokens, so a write that is not atomic would be caught half done.
    let big = |n: usize| {
        let mut extra = Map::new();
        extra.insert("padding".into(), Value::from("x".repeat(256 * 1024)));
        token(n).with_extra(extra)
    };
    store.save(&big(0)).await.unwrap();

    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for n in 1..=30 {
                store.save(&big(n)).await.unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() {
        let loaded = store.load().await.unwrap().unwrap();
        assert!(loaded.access_token().expose().starts_with("access-"));
        assert_eq!(
            loaded.extra()["padding"].as_str().unwrap().len(),
            256 * 1024
        );
        reads += 1;
    }
    writer.await.unwrap();
    assert!(reads > 0);
    let last = store.load().await.unwrap().unwrap();
    assert_eq!(last.access_token().expose(), "access-30");
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["token.json"]);
}

#[tokio::test]
async fn a_failed_save_names_the_file_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: the final rename cannot replace it.
    let path = dir.path().join("token.json");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("kept"), "untouched").unwrap();
    let store = FileStore::new(&path);

    let error = store.save(&token(1)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Store);
    assert!(error.to_string().contains("token.json"), "{error}");
    assert!(std::error::Error::source(&error).is_some());
    assert!(!format!("{error} {error:?}").contains("refresh-1"));

    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, ["token.json"]);
    assert_eq!(
        std::fs::read_to_string(path.join("kept")).unwrap(),
        "untouched"
    );
}

#[tokio::test]
async fn a_damaged_file_is_a_store_error_and_the_cache_fetches_instead() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    std::fs::write(&path, r#"{"version":1,"access_token":"#).unwrap();
    let store = FileStore::new(&path);
    assert_eq!(store.load().await.unwrap_err().kind(), ErrorKind::Store);

    let source = Arc::new(Counting::default());
    let cache = TokenCache::builder(Arc::clone(&source))
        .store(store)
        .build();
    let token = cache.token().await.unwrap();
    assert_eq!(token.token().access_token().expose(), "access-101");
    // And the file is whole again.
    let reloaded = FileStore::new(&path).load().await.unwrap().unwrap();
    assert_eq!(reloaded.access_token().expose(), "access-101");
}

#[tokio::test]
async fn a_failed_save_is_reported_and_the_new_token_is_used_anyway() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    std::fs::create_dir(&path).unwrap();
    let source = Arc::new(Counting::default());
    let cache = TokenCache::builder(Arc::clone(&source))
        .store(FileStore::new(&path))
        .build();

    let token = cache.token().await.unwrap();
    assert_eq!(token.token().access_token().expose(), "access-101");
    assert_eq!(cache.stats().failed_saves, 1);
    let error = cache.store_error().unwrap();
    assert_eq!(error.kind(), ErrorKind::Store);
    assert!(error.to_string().contains("token.json"), "{error}");
}

#[tokio::test]
async fn a_restarted_cache_uses_the_saved_token_without_fetching() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    {
        let source = Arc::new(Counting::default());
        let cache = TokenCache::builder(Arc::clone(&source))
            .store(FileStore::new(&path))
            .build();
        cache.token().await.unwrap();
    }

    let source = Arc::new(Counting::default());
    let restarted = TokenCache::builder(Arc::clone(&source))
        .store(FileStore::new(&path))
        .build();
    let token = restarted.token().await.unwrap();
    assert_eq!(token.token().access_token().expose(), "access-101");
    assert_eq!(source.fetches.load(Ordering::SeqCst), 0);
    let stats = restarted.stats();
    assert_eq!((stats.fetches, stats.loads), (0, 1));
}

#[tokio::test]
async fn a_restarted_cache_renews_an_expired_saved_token_with_its_refresh_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    // Saved by an earlier run, long expired: only the refresh token is still good.
    let expired_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 600;
    std::fs::write(
        &path,
        format!(
            r#"{{"version":1,"access_token":"old","expires_at":{expired_at},"refresh_token":"saved-refresh"}}"#
        ),
    )
    .unwrap();
    let loaded = FileStore::new(&path).load().await.unwrap().unwrap();
    assert_eq!(loaded.expires_in(), Some(Duration::ZERO));

    let source = Arc::new(Counting::default());
    let cache = TokenCache::builder(Arc::clone(&source))
        .store(FileStore::new(&path))
        .build();
    let token = cache.token().await.unwrap();
    assert_eq!(token.token().access_token().expose(), "access-101");
    assert_eq!(
        source.given.lock().unwrap().as_slice(),
        [Some("saved-refresh".to_owned())]
    );
    let saved = FileStore::new(&path).load().await.unwrap().unwrap();
    assert_eq!(
        saved.refresh_token().map(Secret::expose),
        Some("refresh-101")
    );
}
