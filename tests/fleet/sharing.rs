//! One grant per fleet: single flight across replicas, wake-ups, takeovers.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::oneshot;
use tower_oauth2::{
    Error, Token,
    fleet::{__seam, FleetStats, RedisFleet},
};

use crate::support::{
    Issuer, Mode, distinct_tokens, herd, key, query, random_hex, replica, replicas, scope, sources,
    unique_set,
};

fn total(fleets: &[Arc<RedisFleet>]) -> FleetStats {
    let mut sum = FleetStats::default();
    for stats in fleets.iter().map(|fleet| fleet.stats()) {
        sum.reads += stats.reads;
        sum.leases_won += stats.leases_won;
        sum.leases_lost += stats.leases_lost;
        sum.takeovers += stats.takeovers;
        sum.fallbacks += stats.fallbacks;
        sum.discarded += stats.discarded;
        sum.retired += stats.retired;
    }
    sum
}

async fn one_grant_for_a_cold_herd(mode: Mode) {
    let fleets = replicas(mode, 8);
    let set = unique_set();
    let issuer = Issuer::new(Duration::from_millis(200));

    let obtained = herd(&fleets, &set, 50, None, &issuer).await;

    assert_eq!(issuer.grants(), 1);
    assert_eq!(distinct_tokens(&obtained).len(), 1);
    assert_eq!(sources(&obtained), (399, 1, 0));
    let stats = total(&fleets);
    assert_eq!(stats.leases_won, 1, "{stats:?}");
    assert_eq!(stats.fallbacks, 0, "{stats:?}");
    assert_eq!(stats.reads, 399, "{stats:?}");
    assert!(stats.leases_lost >= 1, "{stats:?}");

    // Replicas that join later read the token set; nobody asks the server again.
    let later = herd(&replicas(mode, 4), &set, 10, None, &issuer).await;
    assert_eq!(issuer.grants(), 1);
    assert_eq!(sources(&later), (40, 0, 0));
    assert_eq!(distinct_tokens(&later), distinct_tokens(&obtained));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_replicas_of_fifty_callers_run_one_grant_on_a_standalone_server() {
    one_grant_for_a_cold_herd(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_replicas_of_fifty_callers_run_one_grant_on_a_cluster() {
    one_grant_for_a_cold_herd(Mode::Cluster).await;
}

async fn waiters_are_woken_not_polled(mode: Mode) {
    // A long lease makes waiters poll only every 375 to 500 ms: finishing well within that
    // shows the pub/sub wake-up arrived.
    let fleets: Vec<_> = (0..4)
        .map(|_| Arc::new(replica(mode, key()).lease(Duration::from_secs(20))))
        .collect();
    let set = unique_set();
    // Subscribe every replica first, as a running replica is.
    let warm = Issuer::new(Duration::ZERO);
    herd(&fleets, &unique_set(), 1, None, &warm).await;

    let issuer = Issuer::new(Duration::from_millis(50));
    let started = Instant::now();
    let obtained = herd(&fleets, &set, 1, None, &issuer).await;
    let elapsed = started.elapsed();
    assert_eq!(issuer.grants(), 1);
    assert_eq!(sources(&obtained), (3, 1, 0));
    assert!(
        elapsed < Duration::from_millis(350),
        "waiters took {elapsed:?}: woken by polling, not by pub/sub"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_woken_by_pub_sub_on_a_standalone_server() {
    waiters_are_woken_not_polled(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_woken_by_sharded_pub_sub_on_a_cluster() {
    waiters_are_woken_not_polled(Mode::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_aborted_mid_grant_is_replaced_by_one_other_grant() {
    let fleets = replicas(Mode::Standalone, 8);
    let set = unique_set();
    let holder = Arc::clone(&fleets[0]);
    let holder_scope = scope(&holder, &set);
    let (started_tx, started_rx) = oneshot::channel();
    let stuck = tokio::spawn(async move {
        __seam::obtain(&holder, &holder_scope, None, move |_| async move {
            let _ = started_tx.send(());
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Err::<Token, Error>(Error::source_failed("never"))
        })
        .await
    });
    started_rx.await.expect("the first grant starts");
    stuck.abort();
    assert!(stuck.await.unwrap_err().is_cancelled());

    let issuer = Issuer::new(Duration::from_millis(100));
    let started = Instant::now();
    let obtained = herd(&fleets, &set, 10, None, &issuer).await;
    // The aborted grant, and one more.
    assert_eq!(issuer.grants(), 1);
    assert_eq!(distinct_tokens(&obtained).len(), 1);
    // Dropping the holder released its lease: nobody waited for it to expire.
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

async fn a_dead_holder_delays_the_others_by_at_most_the_lease(mode: Mode) {
    let fleets = replicas(mode, 8);
    let set = unique_set();
    let lease_key = scope(&fleets[0], &set).lease_key().to_owned();
    // A replica that crashed holding the lease: nothing will ever release it.
    let set_lease = redis::cmd("SET")
        .arg(&lease_key)
        .arg(random_hex())
        .arg("NX")
        .arg("PX")
        .arg(2000)
        .to_owned();
    query::<()>(mode, &set_lease).await;

    let issuer = Issuer::new(Duration::from_millis(100));
    let started = Instant::now();
    let obtained = herd(&fleets, &set, 10, None, &issuer).await;
    let elapsed = started.elapsed();

    assert_eq!(issuer.grants(), 1);
    assert_eq!(distinct_tokens(&obtained).len(), 1);
    assert_eq!(sources(&obtained), (79, 1, 0));
    let stats = total(&fleets);
    assert_eq!(stats.takeovers, 1, "{stats:?}");
    assert!(elapsed >= Duration::from_millis(1500), "{elapsed:?}");
    // The lease, the grant, and a little slack for a loaded machine.
    assert!(elapsed < Duration::from_millis(3000), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_delays_the_others_by_at_most_the_lease_on_a_standalone_server() {
    a_dead_holder_delays_the_others_by_at_most_the_lease(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_delays_the_others_by_at_most_the_lease_on_a_cluster() {
    a_dead_holder_delays_the_others_by_at_most_the_lease(Mode::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_longer_than_the_lease_keeps_it_by_renewing() {
    let fleets = replicas(Mode::Standalone, 4);
    let set = unique_set();
    // Three leases long: without renewal another replica would take over and grant again.
    let issuer = Issuer::new(Duration::from_secs(6));
    let obtained = herd(&fleets, &set, 5, None, &issuer).await;
    assert_eq!(issuer.grants(), 1);
    assert_eq!(sources(&obtained), (19, 1, 0));
    assert_eq!(total(&fleets).takeovers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_of_a_token_set_lives_in_one_cluster_slot() {
    let fleet = replica(Mode::Cluster, key());
    let scope = scope(&fleet, &unique_set());
    let mut slots = Vec::new();
    for key in [scope.token_key(), scope.lease_key(), scope.wake_channel()] {
        let keyslot = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).to_owned();
        slots.push(query::<i64>(Mode::Cluster, &keyslot).await);
    }
    assert!(slots.windows(2).all(|pair| pair[0] == pair[1]), "{slots:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_grant_is_reported_and_the_next_caller_tries_again() {
    let fleets = replicas(Mode::Standalone, 2);
    let set = unique_set();
    let scope = scope(&fleets[0], &set);
    let failed = __seam::obtain(&fleets[0], &scope, None, |_| async {
        Err::<Token, Error>(Error::source_failed("server down"))
    })
    .await;
    assert!(failed.is_err());

    // The lease was released: the next replica runs its grant at once.
    let issuer = Issuer::new(Duration::ZERO);
    let started = Instant::now();
    let obtained = __seam::obtain(&fleets[1], &scope, None, issuer.grant())
        .await
        .unwrap();
    assert_eq!(obtained.as_str(), "granted");
    assert!(started.elapsed() < Duration::from_millis(500));
}
