//! Settings and keys at their limits: a lease without an expiry, and durations too long for
//! Redis.

use std::{sync::Arc, time::Duration};

use tower_oauth2::fleet::RedisFleet;

use crate::support::{
    Issuer, Mode, distinct_tokens, herd, key, query, random_hex, replica, replicas, scope, sources,
    unique_set,
};

/// A lease key someone wrote without `PX` (by hand, or a tool that copied keys without their
/// TTL): `PTTL` answers -1 for it. It is another holder's lease, never one a replica won, and
/// since no replica writes such a lease, one of them takes it over at once: one grant.
async fn a_lease_without_expiry_makes_no_replica_a_leader(mode: Mode) {
    let fleets = replicas(mode, 8);
    let set = unique_set();
    let lease_key = scope(&fleets[0], &set).lease_key().to_owned();
    let set_lease = redis::cmd("SET")
        .arg(&lease_key)
        .arg(random_hex())
        .to_owned();
    query::<()>(mode, &set_lease).await;

    let issuer = Issuer::new(Duration::from_millis(50));
    let obtained = tokio::time::timeout(
        Duration::from_secs(5),
        herd(&fleets, &set, 10, None, &issuer),
    )
    .await
    .expect("replicas waited on a lease without expiry");

    assert_eq!(
        issuer.grants(),
        1,
        "replicas took a lease without expiry for theirs"
    );
    assert_eq!(distinct_tokens(&obtained).len(), 1);
    assert_eq!(sources(&obtained), (79, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_without_expiry_makes_no_replica_a_leader_on_a_standalone_server() {
    a_lease_without_expiry_makes_no_replica_a_leader(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_without_expiry_makes_no_replica_a_leader_on_a_cluster() {
    a_lease_without_expiry_makes_no_replica_a_leader(Mode::Cluster).await;
}

/// `Duration::MAX` for the lease and the retention: as `PX` milliseconds Redis refuses them,
/// so the fleet clamps them before they reach it, and the fleet still shares.
async fn a_fleet_with_the_longest_settings_shares_a_token(mode: Mode) {
    let longest = |fleet: RedisFleet| {
        Arc::new(
            fleet
                .lease(Duration::MAX)
                .refresh_token_retention(Duration::MAX),
        )
    };
    let fleets: Vec<_> = (0..4).map(|_| longest(replica(mode, key()))).collect();
    let set = unique_set();
    let issuer = Issuer::new(Duration::from_millis(100));

    let obtained = herd(&fleets, &set, 5, None, &issuer).await;

    assert_eq!(issuer.grants(), 1);
    assert_eq!(sources(&obtained), (19, 1, 0));
    let scope = scope(&fleets[0], &set);
    let ttl: i64 = query(mode, redis::cmd("PTTL").arg(scope.token_key())).await;
    let year = i64::try_from(Duration::from_secs(365 * 86_400).as_millis()).unwrap();
    // The token set with its refresh token stays for the longest retention, a year.
    assert!(ttl > year - 60_000 && ttl <= year, "PTTL {ttl}");
    let lease: i64 = query(mode, redis::cmd("EXISTS").arg(scope.lease_key())).await;
    assert_eq!(lease, 0, "the lease was released");

    let later = herd(&[longest(replica(mode, key()))], &set, 3, None, &issuer).await;
    assert_eq!(sources(&later), (3, 0, 0));
    assert_eq!(issuer.grants(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_with_the_longest_settings_shares_a_token_on_a_standalone_server() {
    a_fleet_with_the_longest_settings_shares_a_token(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_with_the_longest_settings_shares_a_token_on_a_cluster() {
    a_fleet_with_the_longest_settings_shares_a_token(Mode::Cluster).await;
}
