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
    let mut command = tokio::process::Command::new(curl_binary());
    command
        .args(["--issuer", &issuer(), "--client-id", "mtls-cli"])
        .args(["--auth-method", "tls_client_auth", "--scope", "api:read"])
        .args(["--cacert", &key_file("tls-ca.pem")])
        .args(["--client-cert", &key_file(&format!("{name}.pem"))])
        .args(["--client-key", &key_file(&format!("{name}-key.pem"))])
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
