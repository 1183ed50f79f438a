//! The Redis options: refused before anything is sent when they cannot work, and never in
//! the way of a request when Redis fails.
// Without the `redis` feature only the refusal and the help run: the rest goes unused.
#![cfg_attr(not(feature = "redis"), allow(unused_imports, dead_code))]

use tower_oauth2_testkit::{CLIENT_SECRET, REFRESH_TOKEN};

use crate::{all_output, curl, curl_binary, demo, last_stderr_line, stdout};

/// A key file for the Redis options, holding `contents`.
fn key_file(contents: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), contents).unwrap();
    file
}

/// A well-formed key: 64 hex characters, with whitespace the parser must ignore.
const KEY_HEX: &str = "00112233445566778899aabbccddeeff\n  00112233445566778899AABBCCDDEEFF\n";

#[cfg(feature = "redis")]
#[tokio::test]
async fn a_redis_option_without_a_usable_key_file_exits_2_naming_the_option() {
    let (server, loopback) = demo().await;
    let url = loopback.api_url("/orders");
    let redis = "redis://127.0.0.1:1";
    let malformed = key_file("sentinel-not-hex-7c1d");
    let short = key_file("00112233");
    let not_hex = key_file(&"zz".repeat(32));
    let cases: [(&str, Vec<&str>); 4] = [
        ("absent", vec!["--redis", redis]),
        (
            "unreadable",
            vec![
                "--redis",
                redis,
                "--redis-key-file",
                "/nonexistent/fleet.key",
            ],
        ),
        (
            "malformed",
            vec![
                "--redis-cluster",
                redis,
                "--redis-key-file",
                malformed.path().to_str().unwrap(),
            ],
        ),
        (
            "too short",
            vec![
                "--redis",
                redis,
                "--redis-key-file",
                short.path().to_str().unwrap(),
            ],
        ),
    ];
    for (what, redis_args) in cases.iter().cloned().chain([(
        "not hex",
        vec![
            "--redis",
            redis,
            "--redis-key-file",
            not_hex.path().to_str().unwrap(),
        ],
    )]) {
        let mut args = vec!["--client-secret", CLIENT_SECRET, url.as_str()];
        args.extend(redis_args);
        let output = curl(&loopback, &args).await;
        let all = all_output(&output);
        assert_eq!(output.status.code(), Some(2), "{what}: {all}");
        let reason = String::from_utf8_lossy(&output.stderr)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(reason.contains("--redis-key-file"), "{what}: {all}");
        assert!(
            !all.contains("sentinel"),
            "{what}: the key file leaked: {all}"
        );
        assert!(
            last_stderr_line(&output).ends_with("fleet_reads=0 credential_reloads=0"),
            "{what}: {all}"
        );
    }
    assert_eq!(server.grants(), 0, "no option error may cost a grant");
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn redis_options_that_contradict_each_other_exit_2() {
    let (server, loopback) = demo().await;
    let url = loopback.api_url("/orders");
    let key = key_file(KEY_HEX);
    let key = key.path().to_str().unwrap();
    let redis = "redis://:sentinel-password@127.0.0.1:1";
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "--redis",
                redis,
                "--redis-cluster",
                redis,
                "--redis-key-file",
                key,
            ],
            "exclude each other",
        ),
        (&["--redis-key-file", key], "--redis-key-file needs --redis"),
        (&["--redis-plaintext"], "--redis-plaintext needs --redis"),
        (
            &[
                "--redis",
                "http://sentinel-password@host",
                "--redis-key-file",
                key,
            ],
            "--redis: ",
        ),
        (
            &[
                "--redis",
                redis,
                "--redis-key-file",
                key,
                "--grant",
                "refresh_token",
                "--refresh-token",
                REFRESH_TOKEN,
            ],
            "needs --subject",
        ),
    ];
    for (redis_args, reason) in cases {
        let mut args = vec!["--client-secret", CLIENT_SECRET, url.as_str()];
        args.extend(redis_args);
        let output = curl(&loopback, &args).await;
        let all = all_output(&output);
        assert_eq!(output.status.code(), Some(2), "{redis_args:?}: {all}");
        assert!(all.contains(reason), "{redis_args:?}: {all}");
        assert!(!all.contains("sentinel"), "{redis_args:?}: {all}");
    }
    assert_eq!(server.grants(), 0);
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn requests_succeed_when_redis_refuses_connections_or_never_answers() {
    // Accepts connections and answers nothing.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("redis://{}", silent.local_addr().unwrap());
    let holding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let key = key_file(KEY_HEX);
    let key = key.path().to_str().unwrap();
    for redis in ["redis://127.0.0.1:1", silent_url.as_str()] {
        let (server, loopback) = demo().await;
        let url = loopback.api_url("/orders");
        let args = [
            "--client-secret",
            CLIENT_SECRET,
            "--redis",
            redis,
            "--redis-key-file",
            key,
            "--repeat",
            "20",
            "--concurrency",
            "10",
            &url,
        ];
        let output = curl(&loopback, &args).await;
        let all = all_output(&output);
        assert_eq!(output.status.code(), Some(0), "{redis}: {all}");
        assert_eq!(stdout(&output), vec![r#"200 {"orders":[]}"#; 20]);
        assert_eq!(
            last_stderr_line(&output),
            "requests=20 ok=20 token_fetches=1 retries_after_401=0 fleet_reads=0 credential_reloads=0",
            "{redis}"
        );
        assert!(all.contains("Redis failed or did not answer"), "{all}");
        assert_eq!(server.grants(), 1);
    }
    holding.abort();
}

#[cfg(not(feature = "redis"))]
#[tokio::test]
async fn a_redis_option_without_the_redis_feature_exits_2_saying_how_to_build() {
    let (server, loopback) = demo().await;
    let url = loopback.api_url("/orders");
    let key = key_file(KEY_HEX);
    let args = [
        "--client-secret",
        CLIENT_SECRET,
        "--redis",
        "redis://127.0.0.1:1",
        "--redis-key-file",
        key.path().to_str().unwrap(),
        &url,
    ];
    let output = curl(&loopback, &args).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("--features https,dpop,redis"));
    assert_eq!(server.grants(), 0);
}

#[tokio::test]
async fn help_documents_every_redis_option() {
    let help = tokio::process::Command::new(curl_binary())
        .arg("--help")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--redis URL",
        "--redis-cluster URL",
        "--redis-key-file FILE",
        "--redis-plaintext",
        "--subject NAME",
        "fleet_reads=S",
        "rediss://",
        "64 hex",
    ] {
        assert!(help.contains(option), "{option}: {help}");
    }
}
