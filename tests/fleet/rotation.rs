//! Rotating refresh tokens: grants run only under the lease, each with the newest refresh
//! token, which Redis keeps past its access token's expiry.

use std::time::Duration;

use tower_oauth2::fleet::__seam;

use crate::support::{Issuer, Mode, distinct_tokens, herd, herd_each, replicas, unique_set};

async fn the_grant_always_receives_the_newest_refresh_token(mode: Mode) {
    let fleets = replicas(mode, 8);
    let set = unique_set();
    // A server that refuses every refresh token but the newest, as one with reuse detection.
    let issuer = Issuer::rotating(Duration::from_millis(50), Duration::from_secs(3));
    let first = herd(&fleets, &set, 10, None, &issuer).await;
    let oldest = first[0].token().clone();

    for round in 1..=2 {
        // The shared access token expires; its refresh token stays in Redis.
        tokio::time::sleep(Duration::from_millis(3100)).await;
        // Every replica still holds the very first token set, whose refresh token the server
        // retired long ago (they were idle): the newest one, in Redis, must win over theirs.
        let locals = vec![Some(oldest.clone()); fleets.len()];
        let obtained = herd_each(&fleets, &set, 10, &locals, &issuer).await;
        assert_eq!(
            issuer.refused(),
            0,
            "round {round}: a stale refresh token was sent"
        );
        assert_eq!(issuer.grants(), 1 + round, "round {round}");
        assert_eq!(distinct_tokens(&obtained).len(), 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grant_always_receives_the_newest_refresh_token_on_a_standalone_server() {
    the_grant_always_receives_the_newest_refresh_token(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grant_always_receives_the_newest_refresh_token_on_a_cluster() {
    the_grant_always_receives_the_newest_refresh_token(Mode::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_keeps_the_newest_refresh_token_in_the_fleet() {
    let fleets = crate::support::replicas(Mode::Standalone, 2);
    let set = unique_set();
    let scope = crate::support::scope(&fleets[0], &set);
    let issuer = Issuer::rotating(Duration::ZERO, Duration::from_secs(300));
    let first = herd(&fleets, &set, 1, None, &issuer).await[0]
        .token()
        .clone();

    // The first replica refreshes (its token went stale), then a request with the new token
    // gets a 401 answer there.
    let second = __seam::obtain(&fleets[0], &scope, Some(&first), issuer.grant())
        .await
        .unwrap();
    assert_eq!(second.as_str(), "granted");
    let retired = __seam::retire(&fleets[0], &scope, second.token()).await;
    assert_eq!(retired, __seam::Retired::Removed);

    // The other replica still holds the first token set, whose refresh token the server has
    // retired: the grant it runs now must get the newest one from the fleet.
    let third = __seam::obtain(&fleets[1], &scope, Some(&first), issuer.grant())
        .await
        .unwrap();
    assert_eq!(third.as_str(), "granted");
    assert_eq!(issuer.refused(), 0, "a retired refresh token was sent");
    assert_eq!(issuer.grants(), 3);
    // Only once: a second 401 for the same token finds it retired already.
    let again = __seam::retire(&fleets[1], &scope, second.token()).await;
    assert_eq!(again, __seam::Retired::NotHeld);
}
