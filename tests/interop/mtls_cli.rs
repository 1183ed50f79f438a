//! The `curl` example with a client certificate against oidc-provider: `--issuer` finds the
//! `mtls_endpoint_aliases`, `--client-cert` and `--client-key` go to the token endpoint and to
//! the API, whose certificate-bound token only works over the same certificate.
//! `interop/run.sh` builds the example before the tests.

use std::{path::PathBuf, process::Output, time::Duration};

use crate::{mtls::api_tls_url, support::issuer};

/// The example binary next to this test's (`target/debug/examples/curl`).
fn curl_binary() -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    let path = path
        .join("examples")
        .join(format!("curl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: interop/run.sh builds it",
        path.display()
    );
    path
}

fn key_file(name: &str) -> String {
    format!("{}/testkit/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs curl as `mtls-cli` with the certificate `name` (and its key), trusting the test CA.
async fn curl(name: &str, args: &[&str]) -> Output {
    let (cert, key) = (
        key_file(&format!("{name}.pem")),
        key_file(&format!("{name}-key.pem")),
    );
    curl_as("mtls-cli", &cert, &key, args).await
}

/// Runs curl as `client_id` with the certificate and key files given, trusting the test CA.
async fn curl_as(client_id: &str, cert: &str, key: &str, args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(curl_binary());
    command
        .args(["--issuer", &issuer(), "--client-id", client_id])
        .args(["--auth-method", "tls_client_auth", "--scope", "api:read"])
        .args(["--cacert", &key_file("tls-ca.pem")])
        .args(["--client-cert", cert, "--client-key", key])
        .args(args)
        .env_remove("OAUTH2_CLIENT_SECRET")
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("curl finished in time")
        .expect("curl ran")
}

fn shown(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn curl_with_a_client_certificate_calls_the_api_with_a_bound_token() {
    let output = curl("mtls-client", &[&api_tls_url("/read")]).await;
    assert_eq!(output.status.code(), Some(0), "{}", shown(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("200 "), "{stdout}");
    assert!(stdout.contains(r#""client_id":"mtls-cli""#), "{stdout}");
}

#[tokio::test]
async fn curl_with_the_wrong_certificate_exits_2_with_invalid_client_and_shows_no_key() {
    let output = curl("mtls-other", &["--print-token"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", shown(&output));
    let shown = shown(&output);
    assert!(shown.contains("invalid_client"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}

#[tokio::test]
async fn a_bound_token_from_curl_is_refused_by_the_api_without_the_certificate() {
    let output = curl("mtls-client", &["--print-token"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", shown(&output));
    let access_token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert_eq!(
        crate::support::status_with(&access_token, "/read").await,
        http::StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_certificate_replaced_mid_run_is_presented_on_new_connections_and_no_request_fails() {
    // Every API answer closes its connection, so each request makes a new one; halfway
    // through, the files are replaced (each by a rename, as cert-manager does) by a new
    // certificate with the same subject from the same CA.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let install = |name: &str| {
        for (path, file) in [
            (&cert, format!("{name}.pem")),
            (&key, format!("{name}-key.pem")),
        ] {
            let next = path.with_extension("next");
            std::fs::copy(key_file(&file), &next).unwrap();
            std::fs::rename(&next, path).unwrap();
        }
    };
    install("mtls-client");
    let url = api_tls_url("/read?close=1");
    let args = ["--repeat", "30", "--interval-ms", "100", url.as_str()];
    let run = curl_as(
        "mtls-rotate",
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        &args,
    );
    let rotate = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        install("mtls-client-next");
    };
    let (output, ()) = tokio::join!(run, rotate);

    assert_eq!(output.status.code(), Some(0), "{}", shown(&output));
    let serials: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            assert!(line.starts_with("200 "), "{line}");
            let body: serde_json::Value = serde_json::from_str(&line[4..]).unwrap();
            body["certificate_serial"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(serials.len(), 30);
    let changes = serials.windows(2).filter(|pair| pair[0] != pair[1]).count();
    assert_eq!(changes, 1, "one rotation, never back: {serials:?}");
    let summary = String::from_utf8_lossy(&output.stderr);
    assert!(
        summary.trim_end().ends_with("credential_reloads=1"),
        "{summary}"
    );
}
