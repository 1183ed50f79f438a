//! Settings and keys at their limits: a lease without an expiry, and durations too long for
//! Redis.

use std::{sync::Arc, time::Duration};

use crate::support::{
    Issuer, Mode, distinct_tokens, herd, query, random_hex, replicas, scope, sources, unique_set,
};

/// A lease key someone wrote without `PX` (by hand, or a tool that copied keys without their
/// TTL): `PTTL` answers -1 for it. It is another holder's lease, never one this replica won.
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
    let running = {
        let (fleets, set, issuer) = (fleets.clone(), set.clone(), Arc::clone(&issuer));
        tokio::spawn(async move { herd(&fleets, &set, 10, None, &issuer).await })
    };
    // Shorter than the replicas' lease (2 s): nobody may have taken the foreign lease over yet.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let grants_while_held = issuer.grants();
    query::<()>(mode, redis::cmd("DEL").arg(&lease_key)).await;
    let obtained = running.await.unwrap();

    assert_eq!(grants_while_held, 0, "replicas took a lease without expiry for theirs");
    assert_eq!(issuer.grants(), 1);
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
