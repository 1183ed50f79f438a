//! What replica processes put in Redis, and what they do with values they did not seal:
//! nothing in clear, and a value that does not open is never sent anywhere.

use std::time::Duration;

use tower_oauth2::{
    Token,
    fleet::{__seam, FleetKey, RedisFleet},
};
use tower_oauth2_testkit::{AuthServer, CLIENT_SECRET, REFRESH_TOKEN};

use crate::{
    process::{
        KEY, OTHER_KEY, Process, demo_args, demo_keys, finish_all, key_file, redis_args, sum,
    },
    support::{Mode, OwnRedis, contains, get, set, standalone_url},
};

/// Runs `count` processes with `key` to the end; each must serve all its requests.
async fn batch(
    loopback: &tower_oauth2_testkit::Loopback,
    key: &[u8; 32],
    count: usize,
) -> Vec<crate::process::Finished> {
    let key = key_file(key);
    let args = demo_args(
        loopback,
        &redis_args(Mode::Standalone),
        &key,
        &["--repeat", "20", "--concurrency", "5"],
    );
    let finished = finish_all(Process::start_many(count, &args)).await;
    for process in &finished {
        process.assert_all_ok(20);
    }
    finished
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_the_processes_cannot_open_are_never_sent_and_cost_at_most_one_grant() {
    let server = AuthServer::demo().token_delay(Duration::from_millis(100));
    let loopback = server.serve().await.unwrap();
    let (token_key, _) = demo_keys(&server, &loopback);
    batch(&loopback, &KEY, 4).await;
    assert_eq!(server.grants(), 1);
    let genuine = get(Mode::Standalone, &token_key).await.unwrap();

    let mut tampered = genuine.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let mut other_id = genuine.clone();
    other_id[1..5].copy_from_slice(&2_u32.to_be_bytes());
    // A genuine value sealed under key id 2 with the same bytes, for this very Redis key.
    let foreign = {
        let fleet = RedisFleet::new(&standalone_url(), FleetKey::new(2, KEY)).unwrap();
        let endpoint =
            tower_oauth2::TokenClient::new(&loopback.token_url(), server.token_endpoint()).unwrap();
        let grant = tower_oauth2::grant::ClientCredentials::new(
            endpoint,
            tower_oauth2::ClientAuth::basic("demo-client", CLIENT_SECRET),
        );
        let id = tower_oauth2::TokenSource::identity(&grant).unwrap();
        let scope = __seam::scope(&fleet, &id);
        set(Mode::Standalone, &token_key, b"").await;
        let obtained = __seam::obtain(&fleet, &scope, None, |_| async {
            Ok(Token::bearer("foreign-token-never-sent").with_expires_in(Duration::from_secs(600)))
        })
        .await
        .unwrap();
        assert_eq!(obtained.as_str(), "granted");
        get(Mode::Standalone, &token_key).await.unwrap()
    };
    assert_eq!(&foreign[1..5], &2_u32.to_be_bytes());

    // What the batch is, what is put in Redis first (if anything), and the batch's key.
    type Case<'a> = (&'a str, Option<&'a [u8]>, &'a [u8; 32]);
    let cases: [Case<'_>; 5] = [
        ("a tampered value", Some(&tampered), &KEY),
        ("a value under another key id", Some(&other_id), &KEY),
        ("a value sealed under key id 2", Some(&foreign), &KEY),
        // Processes with another key find the last batch's value, and replace it...
        ("processes with a wrong key", None, &OTHER_KEY),
        // ...which the processes with the right key cannot open in turn.
        ("a value sealed with another key", None, &KEY),
    ];
    for (what, value, key) in cases {
        if let Some(value) = value {
            set(Mode::Standalone, &token_key, value).await;
        }
        let found = get(Mode::Standalone, &token_key).await;
        let before = server.grants();
        let finished = batch(&loopback, key, 4).await;
        assert_eq!(server.grants(), before + 1, "{what}: at most one new grant");
        assert_eq!(sum(&finished, "fleet_reads"), 3, "{what}");
        let written = get(Mode::Standalone, &token_key).await;
        assert_ne!(written, found, "{what}: not replaced");
    }
    // Nothing that failed to open was ever sent as a token: the API refused no request.
    assert_eq!(server.rejected(), 0);
    let sent = server.api_tokens();
    assert!(
        sent.iter()
            .all(|token| token.as_deref().is_some_and(|t| t.starts_with("token-")))
    );
}

/// Every issued token, refresh token and the client secret, none of which may be in Redis.
fn secrets(server: &AuthServer) -> Vec<String> {
    let mut secrets = vec![CLIENT_SECRET.to_owned(), REFRESH_TOKEN.to_owned()];
    for n in 1..=server.grants() {
        secrets.push(format!("token-{n}"));
        secrets.push(format!("refresh-{n}"));
    }
    secrets
}

/// Every key and string value of one Redis server, scanned whole.
async fn everything_in(url: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    use redis::AsyncCommands;
    let mut connection = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut connection)
        .await
        .unwrap();
    let mut entries = Vec::new();
    for key in keys {
        let value: Vec<u8> = connection.get(&key).await.unwrap_or_default();
        entries.push((key, value));
    }
    entries
}

fn found(entries: &[(Vec<u8>, Vec<u8>)], secrets: &[String]) -> Vec<String> {
    secrets
        .iter()
        .filter(|secret| {
            entries
                .iter()
                .any(|(key, value)| contains(key, secret) || contains(value, secret))
        })
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_or_value_in_redis_holds_a_token_or_secret_in_clear() {
    // A Redis of this test's own, so that the scan sees everything and nothing of other tests.
    let redis = OwnRedis::start().await;
    // Refresh tokens rotate, and tokens turn stale each second: many token sets go through.
    let server = AuthServer::demo().lifetime(Duration::from_secs(2));
    let loopback = server.serve().await.unwrap();
    let key = key_file(&KEY);
    let refresh = [
        "--grant",
        "refresh_token",
        "--refresh-token",
        REFRESH_TOKEN,
        "--subject",
        "demo-user",
    ];
    let mut extra = refresh.to_vec();
    extra.extend(["--repeat", "100", "--interval-ms", "30"]);
    let args = demo_args(&loopback, &["--redis".into(), redis.url()], &key, &extra);
    let finished = finish_all(Process::start_many(4, &args)).await;
    for process in &finished {
        process.assert_all_ok(100);
    }
    assert!(server.grants() >= 2, "the refresh tokens rotated");

    let entries = everything_in(&redis.url()).await;
    assert!(!entries.is_empty());
    assert_eq!(found(&entries, &secrets(&server)), Vec::<String>::new());

    // The scan finds what is there: a process told to store tokens in clear does (a
    // client-credentials token set, which none of the others share).
    let plain = ["--redis-plaintext", "--repeat", "1"];
    let args = demo_args(&loopback, &["--redis".into(), redis.url()], &key, &plain);
    Process::start(&args).finish().await.assert_all_ok(1);
    let entries = everything_in(&redis.url()).await;
    assert_ne!(found(&entries, &secrets(&server)), Vec::<String>::new());
}
