//! Token exchange (`--grant token_exchange`) and the device authorization grant
//! (`--grant device_code`).

use std::{process::Output, time::Duration};

use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET, DeviceUser, Loopback};

use crate::{all_output, curl, curl_with, demo, file, stdout};

const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Runs curl with `--grant token_exchange` as the demo client, plus `args`.
async fn exchange(loopback: &Loopback, args: &[&str]) -> Output {
    let base = [
        "--client-secret",
        CLIENT_SECRET,
        "--grant",
        "token_exchange",
    ];
    curl(loopback, &[&base[..], args].concat()).await
}

#[tokio::test]
async fn token_exchange_trades_the_subject_file_for_a_token_the_api_accepts() {
    let (server, loopback) = demo().await;
    let server = server.access_token("caller-token");
    let (_dir, subject) = file("caller-token\n");
    let url = loopback.api_url("/orders");
    let args = [
        "--subject-token-file",
        &subject,
        "--audience",
        "inventory",
        "--resource",
        "https://inventory.test",
        "--scope",
        "read",
        &url,
    ];
    let output = exchange(&loopback, &args).await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(stdout(&output), [r#"200 {"orders":[]}"#]);
    let received = server.received();
    let form = &received[0].form;
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    assert_eq!(form["subject_token"], "caller-token");
    assert_eq!(form["subject_token_type"], ACCESS_TOKEN);
    assert_eq!(form["audience"], "inventory");
    assert_eq!(form["resource"], "https://inventory.test");
    assert_eq!(form["scope"], "read");
    assert!(!form.contains_key("actor_token"));
    assert!(!all_output(&output).contains("caller-token"));
}

#[tokio::test]
async fn the_actor_token_and_every_token_type_are_sent_as_given() {
    let (server, loopback) = demo().await;
    let (_subject_dir, subject) = file("subject.jwt.value");
    let (_actor_dir, actor) = file("actor.jwt.value");
    let args = [
        "--subject-token-file",
        &subject,
        "--subject-token-type",
        JWT,
        "--actor-token-file",
        &actor,
        "--actor-token-type",
        JWT,
        "--requested-token-type",
        ACCESS_TOKEN,
        "--print-token",
    ];
    let output = exchange(&loopback, &args).await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    let form = &server.received()[0].form;
    assert_eq!(form["subject_token_type"], JWT);
    assert_eq!(form["actor_token"], "actor.jwt.value");
    assert_eq!(form["actor_token_type"], JWT);
    assert_eq!(form["requested_token_type"], ACCESS_TOKEN);
}

#[tokio::test]
async fn the_subject_file_is_read_again_for_every_token_request() {
    let server = AuthServer::demo()
        .lifetime(Duration::from_secs(1))
        .access_token("first")
        .access_token("second");
    let loopback = server.serve().await.unwrap();
    // A named pipe hands each read the next value, whenever curl reads it.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("subject");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = fifo.clone();
    std::thread::spawn(move || {
        for value in ["first", "second"] {
            std::fs::write(&writer, value).unwrap();
            // An open that comes before curl closes its end would join the same read.
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let (path, url) = (fifo.to_str().unwrap(), loopback.api_url("/orders"));
    let args = [
        "--subject-token-file",
        path,
        "--repeat",
        "2",
        "--interval-ms",
        "1300",
        &url,
    ];
    let output = exchange(&loopback, &args).await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    let subjects: Vec<String> = server
        .received()
        .iter()
        .map(|r| r.form["subject_token"].clone())
        .collect();
    assert_eq!(subjects, ["first", "second"]);
}

#[tokio::test]
async fn a_missing_issued_token_type_exits_2_naming_it() {
    let (server, loopback) = demo().await;
    let _server = server.exchange_answers(None, "Bearer");
    let (_dir, subject) = file("subject");
    let args = [
        "--subject-token-file",
        &subject,
        "--subject-token-type",
        JWT,
    ];
    let output = exchange(&loopback, &[&args[..], &["--print-token"]].concat()).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("issued_token_type"));
    assert!(stdout(&output).is_empty());
}

#[tokio::test]
async fn an_issued_token_type_other_than_the_requested_one_exits_2() {
    let (server, loopback) = demo().await;
    let _server = server.exchange_answers(Some(ACCESS_TOKEN), "Bearer");
    let (_dir, subject) = file("subject");
    let args = [
        "--subject-token-file",
        &subject,
        "--subject-token-type",
        JWT,
        "--requested-token-type",
        JWT,
        "--print-token",
    ];
    let output = exchange(&loopback, &args).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    let all = all_output(&output);
    assert!(
        all.contains("issued_token_type") && all.contains(ACCESS_TOKEN),
        "{all}"
    );
}

#[tokio::test]
async fn token_exchange_options_with_another_grant_exit_2() {
    let (_server, loopback) = demo().await;
    let output = curl(&loopback, &["--subject-token-file", "x", "--print-token"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("token_exchange"));
}

/// Runs curl with `--grant device_code` against `server`, which serves metadata naming its
/// device authorization endpoint, plus `args`.
async fn device(server: AuthServer, args: &[&str]) -> (AuthServer, Output) {
    let probe = server.serve().await.unwrap();
    let own = probe.url("");
    let document = serde_json::json!({
        "issuer": own,
        "token_endpoint": probe.token_url(),
        "device_authorization_endpoint": probe.url("/device"),
    });
    let server = server.metadata(
        "/.well-known/oauth-authorization-server",
        &document.to_string(),
    );
    let base = [
        "--issuer",
        &own,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--grant",
        "device_code",
    ];
    let output = curl_with(&[&base[..], args].concat()).await;
    (server, output)
}

#[tokio::test]
async fn device_code_prints_the_prompt_line_then_polls_until_approved() {
    let server = AuthServer::demo()
        .device_interval(Some(1))
        .device_complete_uri()
        .device_user(DeviceUser::ApprovesAfter(1));
    let args = [
        "--scope",
        "read",
        "--resource",
        "https://api.test",
        "--audience",
        "api",
        "--print-token",
    ];
    let (server, output) = device(server, &args).await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        "device_authorization verification_uri=https://auth.test/device user_code=USER-1 \
         verification_uri_complete=https://auth.test/device?user_code=USER-1"
    );
    assert_eq!(stdout(&output), ["token-2"]);
    let received = server.received();
    let request = &received[0];
    assert!(request.url.ends_with("/device"), "{}", request.url);
    assert!(
        request
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("Basic ")
    );
    assert_eq!(request.form["scope"], "read");
    assert_eq!(request.form["resource"], "https://api.test");
    assert_eq!(request.form["audience"], "api");
    let polls = received
        .iter()
        .filter(|r| r.form.contains_key("device_code"));
    assert_eq!(polls.count(), 2);
}

#[tokio::test]
async fn a_denied_device_code_exits_2_naming_access_denied() {
    let server = AuthServer::demo()
        .device_interval(Some(1))
        .device_user(DeviceUser::DeniesAfter(0));
    let (_server, output) = device(server, &["--print-token"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("device_authorization verification_uri="),
        "{stderr}"
    );
    assert!(stderr.contains("access_denied"), "{stderr}");
}

#[tokio::test]
async fn a_device_code_that_expires_exits_2_naming_expired_token() {
    let server = AuthServer::demo()
        .device_interval(Some(1))
        .device_lifetime(Duration::from_secs(2));
    let (server, output) = device(server, &["--print-token"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("expired_token"));
    // Polls at 1 s; the next would be at 2 s, when the code has expired: none is sent.
    let polls = server
        .received()
        .iter()
        .filter(|r| r.form.contains_key("device_code"))
        .count();
    assert_eq!(polls, 1);
}

#[tokio::test]
async fn device_code_without_an_issuer_exits_2() {
    let (_server, loopback) = demo().await;
    let args = [
        "--client-secret",
        CLIENT_SECRET,
        "--grant",
        "device_code",
        "--print-token",
    ];
    let output = curl(&loopback, &args).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("--issuer"));
}
