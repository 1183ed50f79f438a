//! Review findings in the token cache: each test failed on the code it was written against.

mod common;

use std::{sync::Arc, time::Duration};

use tower_oauth2::{
    Error, FetchContext, MemoryStore, Secret, Token, TokenCache, TokenSource, TokenStore,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Answers just before the fetch deadline with a rotated refresh token.
struct RotatesLate;

impl TokenSource for RotatesLate {
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, Error> {
        tokio::time::sleep(secs(59)).await;
        Ok(Token::bearer("a2")
            .with_expires_in(secs(3600))
            .with_refresh_token("r2"))
    }
}

/// A store whose saves take two seconds, as a remote one can.
struct SlowStore(MemoryStore);

impl TokenStore for SlowStore {
    async fn load(&self) -> Result<Option<Token>, Error> {
        self.0.load().await
    }

    async fn save(&self, token: &Token) -> Result<(), Error> {
        tokio::time::sleep(secs(2)).await;
        self.0.save(token).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_rotated_refresh_token_survives_a_slow_save_near_the_fetch_deadline() {
    let store = Arc::new(SlowStore(MemoryStore::new()));
    let cache = TokenCache::builder(RotatesLate)
        .store(Arc::clone(&store))
        .attempts_per_fetch(1)
        .build();
    // The server has issued r2 and retired the refresh token before it: dropping r2 now
    // means the user has to authorize again.
    let token = cache
        .token()
        .await
        .expect("the issued token was thrown away");
    assert_eq!(
        token.token().refresh_token().map(Secret::expose),
        Some("r2")
    );
    let saved = store.0.get().expect("the issued token was not saved");
    assert_eq!(saved.refresh_token().map(Secret::expose), Some("r2"));
}
