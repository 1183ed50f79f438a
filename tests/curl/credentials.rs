//! Credentials from files: `--client-secret-file`, and `--auth-method client_assertion` with
//! `--client-assertion-file`.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET};

use crate::{all_output, curl, demo, file};

/// A JWT for the demo client that expires `lifetime` seconds from now (or ago), unsigned: the
/// server takes external assertions on trust.
fn assertion(lifetime: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let payload = format!(r#"{{"sub":"{CLIENT_ID}","exp":{}}}"#, now + lifetime);
    format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2VudGluZWw",
        URL_SAFE_NO_PAD.encode(payload)
    )
}

/// Runs the CLI as the demo client authenticating with `jwt` from a file, against a server that
/// takes it: the server, and what the CLI printed.
async fn with_assertion_file(jwt: &str) -> (AuthServer, std::process::Output) {
    let server = AuthServer::demo().external_assertion_client(CLIENT_ID);
    let loopback = server.serve().await.unwrap();
    let (_dir, path) = file(jwt);
    let output = curl(
        &loopback,
        &[
            "--auth-method",
            "client_assertion",
            "--client-assertion-file",
            &path,
            "--print-token",
        ],
    )
    .await;
    (server, output)
}

#[tokio::test]
async fn the_client_secret_comes_from_its_file() {
    let (server, loopback) = demo().await;
    let (_dir, path) = file(&format!("{CLIENT_SECRET}\n"));
    let output = curl(&loopback, &["--client-secret-file", &path, "--print-token"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(server.grants(), 1);
}

#[tokio::test]
async fn a_missing_secret_file_exits_2_naming_the_option_and_sends_nothing() {
    let (server, loopback) = demo().await;
    let (dir, _) = file("");
    let path = dir.path().join("absent").to_str().unwrap().to_owned();
    let output = curl(&loopback, &["--client-secret-file", &path, "--print-token"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("--client-secret-file"), "{message}");
    assert_eq!(server.token_requests_started(), 0);
}

#[tokio::test]
async fn a_client_assertion_file_is_sent_as_the_client_assertion() {
    let jwt = assertion(600);
    let (server, output) = with_assertion_file(&jwt).await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(server.received()[0].form["client_assertion"], jwt);
}

#[tokio::test]
async fn an_expired_client_assertion_exits_2_naming_the_option_and_sends_nothing() {
    let jwt = assertion(-30);
    let (server, output) = with_assertion_file(&jwt).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("--client-assertion-file"), "{message}");
    assert!(message.contains("expired"), "{message}");
    let everything = all_output(&output);
    for part in jwt.split('.') {
        assert!(!everything.contains(part), "{everything}");
    }
    assert_eq!(server.token_requests_started(), 0);
}

#[tokio::test]
async fn client_assertion_without_its_file_exits_2() {
    let (server, loopback) = demo().await;
    let output = curl(
        &loopback,
        &["--auth-method", "client_assertion", "--print-token"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("--client-assertion-file"), "{message}");
    assert_eq!(server.grants(), 0);
}

#[tokio::test]
async fn a_secret_rotated_in_its_file_mid_run_is_taken_up_and_counted() {
    // One-second tokens and a request every 100 ms: about three token requests in the run,
    // and the secret changes, in the file and then at the server, between the first two.
    let server = AuthServer::demo().lifetime(std::time::Duration::from_secs(1));
    let loopback = server.serve().await.unwrap();
    let url = loopback.api_url("/orders");
    let (dir, path) = file(CLIENT_SECRET);
    let args = [
        "--client-secret-file",
        &path,
        "--repeat",
        "25",
        "--interval-ms",
        "100",
        &url,
    ];
    let run = curl(&loopback, &args);
    let rotate = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let next = dir.path().join("next");
        std::fs::write(&next, "the-rotated-secret").unwrap();
        std::fs::rename(&next, &path).unwrap();
        server.rotate_client_secret(CLIENT_ID, "the-rotated-secret");
    };
    let (output, ()) = tokio::join!(run, rotate);

    let all = all_output(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    let summary = crate::last_stderr_line(&output);
    assert!(summary.starts_with("requests=25 ok=25 "), "{summary}");
    assert!(summary.ends_with(" credential_reloads=1"), "{summary}");
    assert!(server.grants() >= 2, "{summary}");
    assert!(!all.contains("the-rotated-secret"), "{all}");
}
