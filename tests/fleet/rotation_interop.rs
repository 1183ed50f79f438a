//! Replica processes sharing a rotating refresh token against a real authorization server
//! (oidc-provider, `interop/server.mjs`, which `fleet/run.sh` starts): each refresh returns a
//! new refresh token, and sending an old one again revokes the whole grant. Only a fleet in
//! which one replica at a time refreshes, always with the newest refresh token, survives it.

use std::time::{Duration, Instant};

use crate::{
    interop::{api_url, authorize, counters, issuer, native_grant},
    process::{KEY, Process, finish_all, key_file, redis_args, sum},
    support::Mode,
};

/// Registered with 2-second access tokens, and used by no other test.
const CLIENT: &str = "native-fleet";
const REQUESTS: u64 = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_share_a_rotating_refresh_token_under_load_without_invalid_grant() {
    let grant = native_grant(CLIENT, &["api:read"]);
    let token = authorize(&grant).await;
    assert_eq!(token.expires_in(), Some(Duration::from_secs(2)));
    let refresh_token = token.refresh_token().unwrap().expose().to_owned();
    let key = key_file(&KEY);
    let mut args: Vec<String> = [
        "--token-url",
        &format!("{}/token", issuer()),
        "--client-id",
        CLIENT,
        "--auth-method",
        "none",
        "--grant",
        "refresh_token",
        "--refresh-token",
        &refresh_token,
        "--subject",
        "user-1",
        "--redis-key-file",
        key.path().to_str().unwrap(),
        "--repeat",
        &REQUESTS.to_string(),
        "--interval-ms",
        "20",
        &api_url("/read"),
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(redis_args(Mode::Standalone));

    let started = Instant::now();
    let finished = finish_all(Process::start_many(4, &args)).await;
    let elapsed = started.elapsed();

    for process in &finished {
        process.assert_all_ok(REQUESTS);
    }
    assert!(elapsed >= Duration::from_secs(30), "{elapsed:?} of load");
    let server = counters(CLIENT).await;
    assert_eq!(server.get("invalid_grant"), None, "{server:?}");
    assert_eq!(server.get("grant_revoked"), None, "{server:?}");
    let refreshes = server.get("success:refresh_token").copied().unwrap_or(0);
    // Tokens live 2 seconds: the run crossed an expiry every second or two.
    assert!(refreshes >= 15, "{server:?}");
    assert_eq!(sum(&finished, "token_fetches"), refreshes, "{server:?}");
    eprintln!(
        "rotation: 4 processes x {REQUESTS} requests in {:.1} s: {refreshes} refreshes, \
         {} tokens read from Redis, retries after 401: {}, server {server:?}",
        elapsed.as_secs_f64(),
        sum(&finished, "fleet_reads"),
        sum(&finished, "retries_after_401"),
    );
}
