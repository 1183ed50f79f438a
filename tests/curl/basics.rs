//! Requests, answers and exit statuses.

use std::time::Duration;

use tower_oauth2_testkit::{CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN};

use crate::{all_output, curl, curl_binary, demo, last_stderr_line, stdout};

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
        "requests=5 ok=5 token_fetches=1 retries_after_401=0 credential_reloads=0"
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
        "requests=2 ok=2 token_fetches=2 retries_after_401=1 credential_reloads=0"
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
        "requests=2 ok=1 token_fetches=1 retries_after_401=0 credential_reloads=0"
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
