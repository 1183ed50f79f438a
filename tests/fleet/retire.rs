//! 401 across the fleet: the refused token set is removed once, and replaced by one grant.

use std::{sync::Arc, time::Duration};

use tokio::sync::Barrier;
use tower_oauth2::fleet::__seam::{self, Retired};

use crate::support::{Issuer, Mode, distinct_tokens, get, herd, replicas, scope, unique_set};

async fn many_retirers_cause_one_new_grant(mode: Mode) {
    let fleets = replicas(mode, 8);
    let set = unique_set();
    let issuer = Issuer::new(Duration::from_millis(100));
    let first = herd(&fleets, &set, 50, None, &issuer).await;
    assert_eq!(issuer.grants(), 1);
    let refused = first[0].token().clone();

    // Every caller got a 401 with the same token: each retires it, then asks for a new one.
    let barrier = Arc::new(Barrier::new(fleets.len() * 50));
    let mut tasks = Vec::new();
    for fleet in &fleets {
        let scope = scope(fleet, &set);
        for _ in 0..50 {
            let (fleet, scope, refused) = (Arc::clone(fleet), scope.clone(), refused.clone());
            let (grant, barrier) = (issuer.grant(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let retired = __seam::retire(&fleet, &scope, &refused).await;
                let obtained = __seam::obtain(&fleet, &scope, Some(&refused), grant).await;
                (retired, obtained.unwrap())
            }));
        }
    }
    let mut retired = Vec::new();
    let mut obtained = Vec::new();
    for task in tasks {
        let (r, o) = task.await.unwrap();
        retired.push(r);
        obtained.push(o);
    }

    assert_eq!(issuer.grants(), 2);
    let tokens = distinct_tokens(&obtained);
    assert_eq!(tokens.len(), 1);
    assert_ne!(tokens[0], refused.access_token().expose());
    assert_eq!(
        retired.iter().filter(|r| **r == Retired::Removed).count(),
        1
    );
    assert!(retired.iter().all(|r| *r != Retired::Unavailable));
    let removed: u64 = fleets.iter().map(|fleet| fleet.stats().retired).sum();
    assert_eq!(removed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_401s_for_one_token_cause_one_grant_on_a_standalone_server() {
    many_retirers_cause_one_new_grant(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_401s_for_one_token_cause_one_grant_on_a_cluster() {
    many_retirers_cause_one_new_grant(Mode::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_for_an_older_token_leaves_the_newer_token_set_alone() {
    let fleets = replicas(Mode::Standalone, 2);
    let set = unique_set();
    let scope = scope(&fleets[0], &set);
    let issuer = Issuer::new(Duration::ZERO);
    let old = herd(&fleets, &set, 1, None, &issuer).await[0]
        .token()
        .clone();
    __seam::retire(&fleets[0], &scope, &old).await;
    let new = herd(&fleets, &set, 1, Some(&old), &issuer).await[0]
        .token()
        .clone();
    assert_ne!(old.access_token(), new.access_token());

    let before = get(Mode::Standalone, scope.token_key()).await;
    assert!(before.is_some());
    assert_eq!(
        __seam::retire(&fleets[1], &scope, &old).await,
        Retired::NotHeld
    );
    assert_eq!(get(Mode::Standalone, scope.token_key()).await, before);
    assert_eq!(issuer.grants(), 2);
}
