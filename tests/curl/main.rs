//! The `curl` example, run as a user would run it, against the demo server on loopback:
//! requests and exit statuses (`basics`), discovery and JWT client authentication
//! (`identity`), credentials read from files (`credentials`), client certificates (`mtls`), DPoP (`dpop`), token exchange and the device
//! grant (`delegation`), the Redis options (`fleet`), and workload identity (`workload`).

mod basics;
mod credentials;
mod delegation;
mod dpop;
mod fleet;
mod identity;
mod mtls;
mod workload;

use std::{path::PathBuf, process::Output, time::Duration};

use tower_oauth2_testkit::{AuthServer, CLIENT_ID, Loopback};

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

/// Runs curl against `loopback`'s token endpoint as the demo client, with `args`.
async fn curl(loopback: &Loopback, args: &[&str]) -> Output {
    let token_url = loopback.token_url();
    let mut all = vec!["--token-url", &token_url, "--client-id", CLIENT_ID];
    all.extend_from_slice(args);
    curl_with(&all).await
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

/// Runs curl with exactly `args` (no `--token-url` added).
async fn curl_with(args: &[&str]) -> Output {
    curl_with_env(args, &[]).await
}

/// Runs curl with exactly `args` and the environment variables `env`, and none of the
/// workload identity variables the test runner may have (a CI job's own).
async fn curl_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(curl_binary());
    command.args(args).env_remove("OAUTH2_CLIENT_SECRET");
    for name in [
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_AUTHORITY_HOST",
        "GCE_METADATA_HOST",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied()).kill_on_drop(true);
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
