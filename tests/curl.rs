//! The `curl` example, run as a user would run it, against the demo server on loopback.
#![cfg(all(feature = "https", feature = "jwt"))]

use std::{path::PathBuf, process::Output, time::Duration};

use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET, Loopback, REFRESH_TOKEN, keys};

/// The examples' server, on loopback.
async fn demo() -> (AuthServer, Loopback) {
    let server = AuthServer::demo();
    let loopback = server.serve().await.unwrap();
    (server, loopback)
}

/// The example binary that `cargo test` built next to this test.
fn curl_binary() -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("examples")
        .join(format!("curl{}", std::env::consts::EXE_SUFFIX))
}

async fn curl(loopback: &Loopback, args: &[&str]) -> Output {
    let token_url = loopback.token_url();
    let mut command = tokio::process::Command::new(curl_binary());
    command
        .args(["--token-url", &token_url, "--client-id", CLIENT_ID])
        .args(args)
        .env_remove("OAUTH2_CLIENT_SECRET")
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("curl finished in time")
        .expect("curl ran")
}

fn stdout(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn last_stderr_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

fn all_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn repeated_concurrent_requests_share_one_token() {
    let (server, loopback) = demo().await;
    let url = loopback.api_url("/orders");
    let output = curl(
        &loopback,
        &[
            "--client-secret",
            CLIENT_SECRET,
            "--scope",
            "orders:read",
            "--repeat",
            "5",
            "--concurrency",
            "4",
            &url,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(stdout(&output), vec![r#"200 {"orders":[]}"#; 5]);
    assert_eq!(
        last_stderr_line(&output),
        "requests=5 ok=5 token_fetches=1 retries_after_401=0"
    );
    assert_eq!(server.grants(), 1);
}

#[tokio::test]
async fn a_revoked_token_is_refreshed_and_the_post_is_sent_again() {
    let (server, loopback) = demo().await;
    let url = loopback.api_url("/orders");
    let args = [
        "--client-secret",
        CLIENT_SECRET,
        "-X",
        "PUT",
        "-H",
        "X-Request-Id: 7",
        "-d",
        "item=book",
        "--repeat",
        "2",
        "--interval-ms",
        "500",
        &url,
    ];
    let run = curl(&loopback, &args);
    // Revoke the token between the first and the second request.
    let revoke = async {
        while server.api_tokens().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.revoke_all();
    };
    let (output, ()) = tokio::join!(run, revoke);
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(
        stdout(&output),
        vec![r#"200 {"method":"PUT","bytes":9}"#; 2]
    );
    assert_eq!(
        last_stderr_line(&output),
        "requests=2 ok=2 token_fetches=2 retries_after_401=1"
    );
    assert_eq!(server.rejected(), 1);
}

#[tokio::test]
async fn a_response_that_is_not_2xx_exits_1() {
    let (_, loopback) = demo().await;
    let found = loopback.api_url("/orders");
    let missing = loopback.url("/missing");
    let output = curl(
        &loopback,
        &["--client-secret", CLIENT_SECRET, &found, &missing],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", all_output(&output));
    let mut lines = stdout(&output);
    lines.sort();
    assert_eq!(lines, [r#"200 {"orders":[]}"#, "404 not found"]);
    assert_eq!(
        last_stderr_line(&output),
        "requests=2 ok=1 token_fetches=1 retries_after_401=0"
    );
}

#[tokio::test]
async fn a_wrong_secret_exits_2_with_the_oauth_error_code_and_no_secret() {
    let (server, loopback) = demo().await;
    let url = loopback.api_url("/orders");
    let output = curl(
        &loopback,
        &[
            "--client-secret",
            "wrong-secret-c4f1",
            "--auth-method",
            "post",
            &url,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(stdout(&output).is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].contains("invalid_client"), "{stderr}");
    assert!(lines[0].contains("401"), "{stderr}");
    assert!(
        lines[1].starts_with("requests=0 ok=0 token_fetches=1"),
        "{stderr}"
    );
    assert!(!all_output(&output).contains("wrong-secret-c4f1"));
    assert!(server.api_tokens().is_empty());
}

#[tokio::test]
async fn an_unknown_refresh_token_exits_2_with_the_envelope_message() {
    let (_, loopback) = demo().await;
    let url = loopback.api_url("/orders");
    let output = curl(
        &loopback,
        &[
            "--client-secret",
            CLIENT_SECRET,
            "--grant",
            "refresh_token",
            "--refresh-token",
            "stolen-refresh-9d2e",
            &url,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid refresh token"), "{stderr}");
    assert!(!all_output(&output).contains("stolen-refresh-9d2e"));
    assert!(!all_output(&output).contains(CLIENT_SECRET));
}

#[tokio::test]
async fn print_token_prints_only_the_access_token_of_the_refresh_grant() {
    let (server, loopback) = demo().await;
    // The secret comes from the environment here.
    let token_url = loopback.token_url();
    let output = tokio::process::Command::new(curl_binary())
        .args(["--token-url", &token_url, "--client-id", CLIENT_ID])
        .args(["--grant", "refresh_token", "--refresh-token", REFRESH_TOKEN])
        .arg("--print-token")
        .env("OAUTH2_CLIENT_SECRET", CLIENT_SECRET)
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    let lines = stdout(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0], "token-1");
    assert_eq!(server.grants(), 1);
}

#[tokio::test]
async fn bad_options_exit_2_and_help_exits_0() {
    let (server, loopback) = demo().await;
    let output = curl(&loopback, &["--client-secret", CLIENT_SECRET]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(last_stderr_line(&output).starts_with("requests=0"));
    let output = curl(&loopback, &["--bogus"]).await;
    assert_eq!(output.status.code(), Some(2));
    // Plain http beyond loopback needs --allow-http, for the token endpoint and for the API;
    // neither is contacted.
    let url = loopback.api_url("/orders");
    let output = curl(
        &loopback,
        &[
            "--client-secret",
            CLIENT_SECRET,
            "--token-url",
            "http://auth.example.com/token",
            &url,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(
        all_output(&output).contains("https"),
        "{}",
        all_output(&output)
    );
    let output = curl(
        &loopback,
        &["--client-secret", CLIENT_SECRET, "http://api.invalid/"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("origin not allowed"));
    assert_eq!(server.grants(), 0);

    let help = tokio::process::Command::new(curl_binary())
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--print-token"));
    // The exit statuses these tests check are the ones the help promises.
    let statuses = help.split_once("Exit status:").expect("exit statuses").1;
    for code in ["0", "1", "2"] {
        assert!(statuses.contains(&format!("\n  {code}  ")), "{help}");
    }
}

/// Runs curl with exactly `args` (no `--token-url` added).
async fn curl_with(args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(curl_binary());
    command
        .args(args)
        .env_remove("OAUTH2_CLIENT_SECRET")
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("curl finished in time")
        .expect("curl ran")
}

/// `contents` in a file of its own, kept while the returned directory lives.
fn file(contents: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file");
    std::fs::write(&path, contents).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

/// Against the demo server serving RFC 8414 metadata that names `issuer` (its own URL unless
/// given), runs `--issuer <the server's URL>` and a GET of the API.
async fn discover_and_get(issuer: Option<&str>) -> (AuthServer, Output) {
    let (server, loopback) = demo().await;
    let own = loopback.url("");
    let document = format!(
        r#"{{"issuer":"{}","token_endpoint":"{}"}}"#,
        issuer.unwrap_or(&own),
        loopback.token_url()
    );
    let server = server.metadata("/.well-known/oauth-authorization-server", &document);
    let url = loopback.api_url("/orders");
    let output = curl_with(&[
        "--issuer",
        &own,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        &url,
    ])
    .await;
    (server, output)
}

#[tokio::test]
async fn the_token_endpoint_is_discovered_from_the_issuer() {
    let (server, output) = discover_and_get(None).await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(stdout(&output), [r#"200 {"orders":[]}"#]);
    assert_eq!(server.grants(), 1);
}

#[tokio::test]
async fn metadata_naming_another_issuer_exits_2_before_any_token_request() {
    let (server, output) = discover_and_get(Some("https://evil.example")).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("issuer") && stderr.contains("evil.example"),
        "{stderr}"
    );
    assert_eq!(server.grants(), 0);
    assert!(server.api_tokens().is_empty());
}

#[tokio::test]
async fn neither_token_url_nor_issuer_exits_2() {
    let output = curl_with(&["--client-id", CLIENT_ID, "--print-token"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("--issuer"));
}

#[tokio::test]
async fn client_secret_jwt_sends_an_assertion_the_server_checks() {
    let (server, loopback) = demo().await;
    let server = server.assertion_client(CLIENT_ID, CLIENT_SECRET);
    let args = [
        "--client-secret",
        CLIENT_SECRET,
        "--auth-method",
        "client_secret_jwt",
    ];
    let output = curl(&loopback, &[&args[..], &["--print-token"]].concat()).await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    let form = &server.received()[0].form;
    assert!(form.contains_key("client_assertion"));
    assert!(!form.contains_key("client_secret"));
}

#[tokio::test]
async fn private_key_jwt_signs_with_the_key_file_and_its_key_id() {
    let (server, loopback) = demo().await;
    let server = server.assertion_client(CLIENT_ID, keys::RSA_PUBLIC_PEM);
    let (_dir, key) = file(keys::RSA_PRIVATE_PEM);
    let url = loopback.api_url("/orders");
    let output = curl(
        &loopback,
        &[
            "--auth-method",
            "private_key_jwt",
            "--private-key",
            &key,
            "--key-id",
            "k-7",
            "--signing-alg",
            "PS256",
            "--resource",
            "https://a.example",
            "--resource",
            "https://b.example",
            "--audience",
            "orders",
            &url,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    let form = &server.received()[0].form;
    let header = jsonwebtoken::decode_header(&form["client_assertion"]).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
    assert_eq!(header.kid.as_deref(), Some("k-7"));
    assert_eq!(form["audience"], "orders");
    assert!(form["resource"].ends_with("b.example"));
    assert!(!all_output(&output).contains("PRIVATE KEY"));
}

#[tokio::test]
async fn a_wrong_key_exits_2_with_invalid_client_and_no_key_or_assertion() {
    let (server, loopback) = demo().await;
    let server = server.assertion_client(CLIENT_ID, keys::RSA_PUBLIC_PEM);
    let (_dir, key) = file(keys::OTHER_RSA_PRIVATE_PEM);
    let output = curl(
        &loopback,
        &[
            "--auth-method",
            "private_key_jwt",
            "--private-key",
            &key,
            "--print-token",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    let shown = all_output(&output);
    assert!(shown.contains("invalid_client"), "{shown}");
    let assertion = &server.received()[0].form["client_assertion"];
    assert!(!shown.contains(assertion.as_str()) && !shown.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn an_algorithm_the_key_cannot_make_exits_2_before_any_request() {
    let (server, loopback) = demo().await;
    let (_dir, key) = file(keys::EC_PRIVATE_PEM);
    for alg in ["RS256", "HS512"] {
        let output = curl(
            &loopback,
            &[
                "--auth-method",
                "private_key_jwt",
                "--private-key",
                &key,
                "--signing-alg",
                alg,
                "--print-token",
            ],
        )
        .await;
        assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
        assert!(
            all_output(&output).contains("--signing-alg"),
            "{}",
            all_output(&output)
        );
    }
    let (_dir, garbage) =
        file("-----BEGIN PRIVATE KEY-----\nsentinel\n-----END PRIVATE KEY-----\n");
    let output = curl(
        &loopback,
        &[
            "--auth-method",
            "private_key_jwt",
            "--private-key",
            &garbage,
            "--print-token",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(!all_output(&output).contains("sentinel"));
    assert_eq!(server.grants(), 0);
}

#[tokio::test]
async fn the_jwt_bearer_grant_reads_the_assertion_file_for_every_request() {
    let (server, loopback) = demo().await;
    let (_dir, assertion) = file("workload-assertion-1\n");
    let url = loopback.api_url("/orders");
    let output = curl(
        &loopback,
        &[
            "--client-secret",
            CLIENT_SECRET,
            "--auth-method",
            "post",
            "--grant",
            "jwt_bearer",
            "--assertion-file",
            &assertion,
            &url,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    let form = &server.received()[0].form;
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert_eq!(form["assertion"], "workload-assertion-1");
    assert_eq!(form["client_id"], CLIENT_ID);
    assert!(!all_output(&output).contains("workload-assertion-1"));
}

#[tokio::test]
async fn the_jwt_bearer_grant_signs_its_own_assertion_for_the_subject() {
    let (server, loopback) = demo().await;
    let server = server.assertion_issuer(CLIENT_ID, keys::ED_PUBLIC_PEM);
    let (_dir, key) = file(keys::ED_PRIVATE_PEM);
    let output = curl(
        &loopback,
        &[
            "--client-secret",
            CLIENT_SECRET,
            "--auth-method",
            "post",
            "--grant",
            "jwt_bearer",
            "--private-key",
            &key,
            "--subject",
            "svc-7",
            "--print-token",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    let assertion = &server.received()[0].form["assertion"];
    let claims = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(assertion)
        .unwrap()
        .claims;
    assert_eq!(
        (claims["iss"].as_str(), claims["sub"].as_str()),
        (Some(CLIENT_ID), Some("svc-7"))
    );
}

#[tokio::test]
async fn a_cacert_that_is_not_a_certificate_exits_2() {
    let (server, loopback) = demo().await;
    let (_dir, bad) = file("not a certificate");
    let output = curl(
        &loopback,
        &[
            "--client-secret",
            CLIENT_SECRET,
            "--cacert",
            &bad,
            "--print-token",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("--cacert"));
    let (_dir, ca) = file(keys::TEST_CA_PEM);
    let output = curl(
        &loopback,
        &[
            "--client-secret",
            CLIENT_SECRET,
            "--cacert",
            &ca,
            "--print-token",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(server.grants(), 1);
}

#[tokio::test]
async fn help_documents_every_new_option() {
    let help = curl_with(&["--help"]).await;
    let help = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--issuer",
        "--cacert",
        "client_secret_jwt",
        "private_key_jwt",
        "--private-key",
        "--key-id",
        "--signing-alg",
        "--resource",
        "--audience",
        "jwt_bearer",
        "--assertion-file",
        "--subject",
    ] {
        assert!(help.contains(option), "{option} is not in --help");
    }
}

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
            last_stderr_line(&output).ends_with("fleet_reads=0"),
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
            "requests=20 ok=20 token_fetches=1 retries_after_401=0 fleet_reads=0",
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
    assert!(all_output(&output).contains("--features https,redis"));
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
