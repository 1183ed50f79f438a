//! Replicas as OS processes (the `curl` example) against the test kit's server on loopback,
//! which counts grants: a cold fleet, a fleet-wide 401, a lease holder killed in its grant,
//! Redis killed in the middle of a run.

use std::time::{Duration, Instant};

use tower_oauth2_testkit::AuthServer;

use crate::{
    process::{
        KEY, Process, demo_args, demo_keys, finish_all, key_file, redis_args, sum, wait_until,
    },
    support::{Mode, OwnRedis, query},
};

async fn eight_processes_of_two_hundred_requests_run_one_grant(mode: Mode) {
    let server = AuthServer::demo().token_delay(Duration::from_millis(200));
    let loopback = server.serve().await.unwrap();
    let key = key_file(&KEY);
    let redis = redis_args(mode);
    let args = demo_args(
        &loopback,
        &redis,
        &key,
        &["--repeat", "200", "--concurrency", "200"],
    );

    let started = Instant::now();
    let finished = finish_all(Process::start_many(8, &args)).await;
    let elapsed = started.elapsed();

    for process in &finished {
        process.assert_all_ok(200);
    }
    assert_eq!(server.grants(), 1, "counted by the token endpoint");
    assert_eq!(sum(&finished, "token_fetches"), 1);
    assert_eq!(sum(&finished, "fleet_reads"), 7);
    let accepted = server.api_tokens();
    assert_eq!(accepted.len(), 1600);
    assert!(
        accepted
            .iter()
            .all(|token| token.as_deref() == Some("token-1"))
    );
    eprintln!("8 processes x 200 requests ({mode:?}): 1 grant, {elapsed:?}");

    // A ninth process prints the shared token, and asks the server for nothing.
    let print = demo_args(&loopback, &redis, &key, &["--print-token"]);
    let printed = Process::start(&print).finish().await;
    assert!(printed.status.success(), "{:?}", printed.stderr);
    assert_eq!(printed.get("fleet_reads"), 1);
    assert_eq!(printed.get("token_fetches"), 0);
    assert_eq!(server.grants(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_of_two_hundred_requests_run_one_grant_on_a_standalone_server() {
    eight_processes_of_two_hundred_requests_run_one_grant(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_of_two_hundred_requests_run_one_grant_on_a_cluster() {
    eight_processes_of_two_hundred_requests_run_one_grant(Mode::Cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_share_through_rediss() {
    let url = std::env::var("FLEET_REDIS_TLS_URL")
        .expect("FLEET_REDIS_TLS_URL is not set: run these tests with fleet/run.sh");
    let server = AuthServer::demo().token_delay(Duration::from_millis(100));
    let loopback = server.serve().await.unwrap();
    let key = key_file(&KEY);
    let args = demo_args(
        &loopback,
        &["--redis".into(), url],
        &key,
        &["--repeat", "5"],
    );
    let finished = finish_all(Process::start_many(3, &args)).await;
    for process in &finished {
        process.assert_all_ok(5);
    }
    assert_eq!(server.grants(), 1);
    assert_eq!(sum(&finished, "fleet_reads"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_wide_401_causes_exactly_one_more_grant_for_eight_processes() {
    let server = AuthServer::demo();
    let loopback = server.serve().await.unwrap();
    let key = key_file(&KEY);
    let args = demo_args(
        &loopback,
        &redis_args(Mode::Standalone),
        &key,
        &["--repeat", "60", "--interval-ms", "50"],
    );
    let processes = Process::start_many(8, &args);
    // Every process has its token and has used it a while.
    wait_until("8 x 10 requests", Duration::from_secs(30), || {
        server.api_tokens().len() >= 80
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.grants(), 1);

    server.revoke_all();
    let finished = finish_all(processes).await;

    for process in &finished {
        process.assert_all_ok(60);
        assert!(
            process.get("retries_after_401") >= 1,
            "{:?}",
            process.stderr
        );
    }
    assert_eq!(
        server.grants(),
        2,
        "one grant for the whole fleet after the 401s"
    );
    assert_eq!(sum(&finished, "token_fetches"), 2);
    assert!(sum(&finished, "fleet_reads") >= 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_holder_killed_during_its_grant_is_replaced_and_every_caller_succeeds() {
    let server = AuthServer::demo().token_delay(Duration::from_secs(2));
    let loopback = server.serve().await.unwrap();
    let key = key_file(&KEY);
    let (_, lease_key) = demo_keys(&server, &loopback);
    let args = demo_args(
        &loopback,
        &redis_args(Mode::Standalone),
        &key,
        &["--verbose", "--repeat", "200", "--concurrency", "200"],
    );
    let mut processes = Process::start_many(8, &args);

    // The holder says so in its log; its grant is in flight once the endpoint has it.
    let mut holder = None;
    wait_until("a lease holder", Duration::from_secs(30), || {
        holder = processes
            .iter()
            .position(|process| process.logged("lease won"));
        holder.is_some()
    })
    .await;
    wait_until("its grant", Duration::from_secs(10), || {
        server.token_requests_started() == 1
    })
    .await;
    let lease_left: i64 = query(Mode::Standalone, redis::cmd("PTTL").arg(&lease_key)).await;
    assert!(lease_left > 0, "the lease is held while the grant runs");
    let holder = processes.swap_remove(holder.unwrap());
    assert_eq!(
        processes.iter().filter(|p| p.logged("lease won")).count(),
        0,
        "one holder"
    );
    holder.kill().await;
    let killed = Instant::now();

    wait_until("a takeover", Duration::from_secs(30), || {
        server.token_requests_started() == 2
    })
    .await;
    let takeover = killed.elapsed();
    let finished = finish_all(processes).await;
    let done = killed.elapsed();

    for process in &finished {
        process.assert_all_ok(200);
    }
    assert!(server.grants() <= 2, "{}", server.grants());
    assert_eq!(sum(&finished, "token_fetches"), 1);
    assert_eq!(sum(&finished, "fleet_reads"), 6);
    let takeovers: usize = finished
        .iter()
        .map(|process| process.count("took the lease over"))
        .sum();
    assert_eq!(takeovers, 1);
    // The lease (10 seconds by default) bounds the wait for a dead holder.
    assert!(takeover < Duration::from_secs(11), "{takeover:?}");
    eprintln!(
        "holder killed: takeover grant started {takeover:?} after the kill, \
         every survivor done {done:?} after it; grants {}",
        server.grants()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_fails_no_request_and_sharing_resumes_after_it_is_back() {
    let mut redis = OwnRedis::start().await;
    // Tokens turn stale every second, so fetches run before, during and after the outage.
    let server = AuthServer::demo().lifetime(Duration::from_secs(2));
    let loopback = server.serve().await.unwrap();
    let key = key_file(&KEY);
    let args = demo_args(
        &loopback,
        &["--redis".into(), redis.url()],
        &key,
        &["--verbose", "--repeat", "400", "--interval-ms", "20"],
    );
    let processes = Process::start_many(4, &args);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    redis.restart().await;
    let finished = finish_all(processes).await;

    for process in &finished {
        process.assert_all_ok(400);
        assert_eq!(
            process.count("Redis fleet unavailable"),
            1,
            "WARN once per outage"
        );
    }
    // After Redis answered again, processes took tokens that others had fetched.
    let mut taken_after = 0;
    for process in &finished {
        if let Some(back) = process
            .stderr
            .iter()
            .position(|line| line.contains("Redis fleet answers again"))
        {
            taken_after += process.stderr[back..]
                .iter()
                // The cache's INFO line, once per token (the fleet's DEBUG line says it too).
                .filter(|line| line.contains("fetch: token taken from the fleet"))
                .count();
        }
    }
    assert!(taken_after >= 2, "sharing did not resume: {taken_after}");
    eprintln!(
        "Redis killed for 2.5 s: 1600 requests, 0 failed; {} grants, {} tokens read from \
         Redis, {taken_after} of them after the restart",
        server.grants(),
        sum(&finished, "fleet_reads")
    );
}
