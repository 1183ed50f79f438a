//! What reaches Redis, and what a fleet does with values it did not seal: tokens never in
//! clear, foreign or damaged values never used.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt;
use tower_oauth2::fleet::{__seam, FleetKey, RedisFleet};

use crate::support::{
    Issuer, Mode, cluster_urls, contains, distinct_tokens, everything, get, herd, key, replica,
    replicas, scope, set, sources, standalone_url, unique_set,
};

/// Puts `value` where the token set of a fresh set lives, then lets four replicas of ten
/// callers ask for a token: the value must be ignored, and replaced by exactly one grant.
async fn ignored_and_replaced_once(mode: Mode, value: &[u8], what: &str) {
    let fleets = replicas(mode, 4);
    let set = unique_set();
    let key_name = scope(&fleets[0], &set).token_key().to_owned();
    self::set(mode, &key_name, value).await;
    let issuer = Issuer::new(Duration::from_millis(50));

    let obtained = herd(&fleets, &set, 10, None, &issuer).await;

    assert_eq!(issuer.grants(), 1, "{what}");
    assert_eq!(sources(&obtained), (39, 1, 0), "{what}");
    assert_eq!(distinct_tokens(&obtained).len(), 1, "{what}");
    let discarded: u64 = fleets.iter().map(|fleet| fleet.stats().discarded).sum();
    assert!(discarded >= 1, "{what}");
    assert_ne!(
        get(mode, &key_name).await.as_deref(),
        Some(value),
        "{what}: not replaced"
    );
}

/// The value `fleet` writes for a fresh token set, the token in it, and the set.
async fn written_by(fleet: RedisFleet, mode: Mode) -> (Vec<u8>, String) {
    let fleet = Arc::new(fleet);
    let set = unique_set();
    let issuer = Issuer::new(Duration::ZERO);
    let obtained = herd(&[Arc::clone(&fleet)], &set, 1, None, &issuer).await;
    let value = get(mode, scope(&fleet, &set).token_key()).await.unwrap();
    (
        value,
        obtained[0].token().access_token().expose().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_the_fleet_cannot_trust_are_never_used_and_cause_one_grant() {
    let mode = Mode::Standalone;
    ignored_and_replaced_once(mode, b"not a token set", "garbage").await;
    ignored_and_replaced_once(mode, b"", "an empty value").await;
    ignored_and_replaced_once(mode, &[1, 0, 0, 0, 1, 9, 9], "a truncated value").await;

    let (genuine, _) = written_by(replica(mode, key()), mode).await;
    let mut tampered = genuine.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    ignored_and_replaced_once(mode, &tampered, "a tampered value").await;
    // A genuine value, copied from another token set's key.
    ignored_and_replaced_once(mode, &genuine, "a value moved from another key").await;

    let wrong_key = replica(mode, FleetKey::new(1, [0x43; 32]));
    let (foreign, _) = written_by(wrong_key, mode).await;
    ignored_and_replaced_once(mode, &foreign, "another key with the same id").await;

    let other_id = replica(mode, FleetKey::new(2, [0x42; 32]));
    let (unknown, _) = written_by(other_id, mode).await;
    ignored_and_replaced_once(mode, &unknown, "an unknown key id").await;

    let (plain, token) = written_by(replica(mode, key()).plaintext(), mode).await;
    assert!(
        contains(&plain, &token),
        "a plaintext fleet writes the token in clear"
    );
    ignored_and_replaced_once(mode, &plain, "a plaintext value").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_is_shared_only_between_fleets_that_opted_in() {
    let mode = Mode::Standalone;
    let fleets: Vec<_> = (0..2)
        .map(|_| Arc::new(replica(mode, key()).plaintext()))
        .collect();
    let set = unique_set();
    let issuer = Issuer::new(Duration::from_millis(20));
    let obtained = herd(&fleets, &set, 5, None, &issuer).await;
    assert_eq!(issuer.grants(), 1);
    assert_eq!(sources(&obtained), (9, 1, 0));
    let value = get(mode, scope(&fleets[0], &set).token_key())
        .await
        .unwrap();
    assert_eq!(value[0], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_opens_old_values_and_seals_new_ones() {
    let mode = Mode::Standalone;
    let set = unique_set();
    let old = Arc::new(replica(mode, FleetKey::new(1, [1; 32])));
    let issuer = Issuer::new(Duration::ZERO);
    let first = herd(&[old], &set, 1, None, &issuer).await;

    let rotated = Arc::new(
        replica(mode, FleetKey::new(2, [2; 32])).also_decrypt_with(FleetKey::new(1, [1; 32])),
    );
    let read = herd(&[Arc::clone(&rotated)], &set, 3, None, &issuer).await;
    assert_eq!(sources(&read), (3, 0, 0));
    assert_eq!(distinct_tokens(&read), distinct_tokens(&first));

    let replaced = herd(
        &[Arc::clone(&rotated)],
        &set,
        1,
        Some(first[0].token()),
        &issuer,
    )
    .await;
    assert_eq!(sources(&replaced), (0, 1, 0));
    let value = get(mode, scope(&rotated, &set).token_key()).await.unwrap();
    assert_eq!(&value[..5], &[2, 0, 0, 0, 2], "sealed with key id 2");
}

/// Runs grants, reads, a retirement and a second grant with `fleets`, listening to every
/// wake-up, then returns the secrets issued and the messages heard.
async fn workload(mode: Mode, set: &__seam::TokenSetId) -> (Vec<String>, Vec<Vec<u8>>) {
    let fleets = replicas(mode, 3);
    let heard = Arc::new(Mutex::new(Vec::new()));
    let listener = listen(
        mode,
        scope(&fleets[0], set).wake_channel(),
        Arc::clone(&heard),
    )
    .await;
    let issuer = Issuer::new(Duration::from_millis(50));

    let first = herd(&fleets, set, 10, None, &issuer).await;
    let refused = first[0].token().clone();
    let scope = scope(&fleets[0], set);
    __seam::retire(&fleets[0], &scope, &refused).await;
    herd(&fleets, set, 10, Some(&refused), &issuer).await;
    assert_eq!(issuer.grants(), 2);

    // Wake-ups are delivered asynchronously.
    tokio::time::sleep(Duration::from_millis(200)).await;
    listener.abort();
    let messages = heard.lock().unwrap().clone();
    assert!(!messages.is_empty(), "no wake-up was heard");
    (issuer.secrets(), messages)
}

async fn listen(
    mode: Mode,
    channel: &str,
    heard: Arc<Mutex<Vec<Vec<u8>>>>,
) -> tokio::task::JoinHandle<()> {
    match mode {
        Mode::Standalone => {
            let client = redis::Client::open(standalone_url()).unwrap();
            let mut pubsub = client.get_async_pubsub().await.unwrap();
            pubsub.psubscribe("*").await.unwrap();
            tokio::spawn(async move {
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let mut seen = message.get_channel_name().as_bytes().to_vec();
                    seen.extend_from_slice(message.get_payload_bytes());
                    heard.lock().unwrap().push(seen);
                }
            })
        }
        Mode::Cluster => {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let client = redis::cluster::ClusterClientBuilder::new(cluster_urls())
                .use_protocol(redis::ProtocolVersion::RESP3)
                .push_sender(tx)
                .build()
                .unwrap();
            let mut connection = client.get_async_connection().await.unwrap();
            connection.ssubscribe(channel).await.unwrap();
            tokio::spawn(async move {
                let _connection = connection;
                while let Some(push) = rx.recv().await {
                    if push.kind == redis::PushKind::SMessage {
                        let mut seen = Vec::new();
                        for value in push.data {
                            if let redis::Value::BulkString(bytes) = value {
                                seen.extend_from_slice(&bytes);
                            }
                        }
                        heard.lock().unwrap().push(seen);
                    }
                }
            })
        }
    }
}

async fn no_secret_reaches_redis_in_clear(mode: Mode) {
    let set = unique_set();
    let (secrets, messages) = workload(mode, &set).await;
    let entries = everything(mode).await;
    let ours = scope(&replica(mode, key()), &set);
    assert!(
        entries
            .iter()
            .any(|(key, _)| key == ours.token_key().as_bytes()),
        "the scan found the token set"
    );
    for secret in &secrets {
        for (key, value) in &entries {
            assert!(!contains(key, secret), "a key holds a secret");
            assert!(
                !contains(value, secret),
                "the value of a key holds a secret"
            );
        }
        for message in &messages {
            assert!(
                !contains(message, secret),
                "a published message holds a secret"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_secret_reaches_a_standalone_redis_in_clear() {
    no_secret_reaches_redis_in_clear(Mode::Standalone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_secret_reaches_a_cluster_in_clear() {
    no_secret_reaches_redis_in_clear(Mode::Cluster).await;
}
