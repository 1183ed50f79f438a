//! Newest wins: no replica goes back to a token set older than one it holds or has seen, and
//! no lease, however it was set, holds a replica past its deadline.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tower_oauth2::{
    ErrorKind,
    fleet::{
        __seam::{self, FleetScope},
        RedisFleet,
    },
};
use tower_oauth2_testkit::redis_proxy::{Action, RedisProxy, Rule};

use crate::support::{
    Issuer, Mode, get, key, query, replicas, scope, set, standalone_url, unique_set,
};

/// One replica on the standalone server, and the scope of a token set no other test uses.
fn one_replica() -> (Arc<RedisFleet>, FleetScope) {
    let fleet = replicas(Mode::Standalone, 1).remove(0);
    let scope = scope(&fleet, &unique_set());
    (fleet, scope)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_holding_a_newer_set_than_the_fleet_refreshes_with_its_own_refresh_token() {
    // What a failed commit leaves: Redis keeps set 1, whose refresh token the server has
    // replaced, while the replica that ran grant 2 holds set 2.
    let issuer = Issuer::rotating(Duration::ZERO, Duration::from_secs(2));
    let (fleet, scope) = one_replica();
    let first = __seam::obtain(&fleet, &scope, None, issuer.grant())
        .await
        .unwrap();
    assert_eq!(first.as_str(), "granted");
    let newer = (issuer.grant())(Some(first.token().clone())).await.unwrap();

    // Set 1 turns stale (half its two-second lifetime), so the replica must lead a grant.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let next = __seam::obtain(&fleet, &scope, Some(&newer), issuer.grant())
        .await
        .unwrap();

    assert_eq!(
        issuer.refused(),
        0,
        "a replaced refresh token was presented"
    );
    assert_eq!(next.as_str(), "granted");
    assert_eq!(issuer.grants(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_set_copied_back_over_a_newer_one_is_refused_by_a_replica_that_saw_the_newer() {
    let issuer = Issuer::rotating(Duration::ZERO, Duration::from_secs(300));
    let (fleet, scope) = one_replica();
    let first = __seam::obtain(&fleet, &scope, None, issuer.grant())
        .await
        .unwrap();
    let old_value = get(Mode::Standalone, scope.token_key()).await.unwrap();
    let second = __seam::obtain(&fleet, &scope, Some(first.token()), issuer.grant())
        .await
        .unwrap();
    assert_eq!(second.as_str(), "granted");

    // Someone with write access to Redis puts the genuine, older value back.
    set(Mode::Standalone, scope.token_key(), &old_value).await;
    let third = __seam::obtain(&fleet, &scope, Some(second.token()), issuer.grant())
        .await
        .unwrap();

    assert_ne!(
        third.token().access_token().expose(),
        first.token().access_token().expose(),
        "the rolled-back token set was taken"
    );
    assert_eq!(third.as_str(), "granted");
    assert_eq!(
        issuer.refused(),
        0,
        "the rolled-back refresh token was presented"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_whose_commit_found_the_set_changed_keeps_the_lease_until_its_set_is_in() {
    // The holder's grant runs while someone writes the token key, so its commit does not
    // land; then, for a second, neither does its write-back. A replica that needs a token
    // meanwhile must wait for the holder's set, not lead with the refresh token the holder
    // has just spent.
    let issuer = Issuer::rotating(Duration::from_millis(300), Duration::from_secs(300));
    let proxy = RedisProxy::start(&standalone_url()).await.unwrap();
    let holder = RedisFleet::new(&proxy.url(), key())
        .unwrap()
        .lease(Duration::from_secs(2))
        .namespace("tests");
    let other = replicas(Mode::Standalone, 1).remove(0);
    let set_id = unique_set();
    let (holder_scope, other_scope) = (scope(&holder, &set_id), scope(&other, &set_id));
    let first = __seam::obtain(&holder, &holder_scope, None, issuer.grant())
        .await
        .unwrap()
        .into_token();

    // The holder's commit passes the proxy; the write-backs after it fail for a second.
    proxy.add(
        Rule::new(Action::Fail("ERR injected: write refused"), |command| {
            command.is("EVAL") && command.has_key_ending(":token")
        })
        .after(1)
        .for_window(Duration::from_secs(1)),
    );
    let written_meanwhile = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        set(
            Mode::Standalone,
            holder_scope.token_key(),
            b"written meanwhile",
        )
        .await;
    };
    let (led, ()) = tokio::join!(
        __seam::obtain(&holder, &holder_scope, Some(&first), issuer.grant()),
        written_meanwhile,
    );
    let led = led.unwrap();
    assert_eq!(led.as_str(), "granted");

    let taken = __seam::obtain(&other, &other_scope, Some(&first), issuer.grant())
        .await
        .unwrap();

    assert_eq!(issuer.refused(), 0, "the spent refresh token was presented");
    assert_eq!(taken.as_str(), "fleet");
    assert_eq!(
        taken.token().access_token().expose(),
        led.token().access_token().expose()
    );
    assert_eq!(issuer.grants(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_far_longer_than_the_fleets_own_is_taken_over_at_once() {
    let issuer = Issuer::new(Duration::ZERO);
    let (fleet, scope) = one_replica();
    query::<()>(
        Mode::Standalone,
        redis::cmd("SET")
            .arg(scope.lease_key())
            .arg("not-a-replica")
            .arg("PX")
            .arg(600_000),
    )
    .await;

    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let obtained = tokio::time::timeout(
        Duration::from_secs(5),
        __seam::obtain_by(&fleet, &scope, None, deadline, issuer.grant()),
    )
    .await
    .expect("the replica waited out a ten-minute lease")
    .unwrap();

    assert_eq!(obtained.as_str(), "granted");
    assert_eq!(issuer.grants(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_a_lease_that_is_kept_alive_ends_at_the_deadline_with_a_timeout() {
    let issuer = Issuer::new(Duration::ZERO);
    let (fleet, scope) = one_replica();
    let lease = scope.lease_key().to_owned();
    // A holder that looks like a replica (a lease within the fleet's length) and never ends.
    let holder = tokio::spawn(async move {
        loop {
            query::<()>(
                Mode::Standalone,
                redis::cmd("SET")
                    .arg(&lease)
                    .arg("busy")
                    .arg("PX")
                    .arg(1500),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        __seam::obtain_by(&fleet, &scope, None, deadline, issuer.grant()),
    )
    .await
    .expect("the wait outlived its deadline");
    holder.abort();

    let error = outcome.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert!(error.to_string().contains("fetch_timeout"), "{error}");
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(issuer.grants(), 0);
}
