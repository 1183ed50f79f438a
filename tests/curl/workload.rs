//! Workload identity: `--workload-identity github-actions|azure` and
//! `--token-source gcp-metadata|azure-imds`, against the test kit's fakes on loopback.

use http::StatusCode;
use tower_oauth2_testkit::{
    AuthServer, FederatedCredential,
    workload::{AzureImdsServer, GcpMetadataServer, GitHubActionsOidc, Issuer, Misbehave},
};

use crate::{all_output, curl_with_env, file, last_stderr_line, stdout};

const RUNNER_SECRET: &str = "runner-request-secret";
const AZURE_AUDIENCE: &str = "api://AzureADTokenExchange";

fn trusting(client: &str, issuer: &str, jwks: String, subject: &str) -> AuthServer {
    AuthServer::new().federated_client(
        client,
        FederatedCredential {
            issuer: issuer.to_owned(),
            jwks,
            subject: subject.to_owned(),
            audience: AZURE_AUDIENCE.to_owned(),
        },
    )
}

#[tokio::test]
async fn github_actions_identity_gets_a_token_with_the_azure_audience_by_default() {
    let github = GitHubActionsOidc::new(RUNNER_SECRET);
    let runner = github.serve().await.unwrap();
    let server = trusting(
        "ci",
        &github.issuer_url(),
        github.jwks(),
        &github.subject_claim(),
    );
    let loopback = server.serve().await.unwrap();
    let request_url = GitHubActionsOidc::request_url(&runner);
    let env = [
        ("ACTIONS_ID_TOKEN_REQUEST_URL", request_url.as_str()),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", RUNNER_SECRET),
    ];
    let token_url = loopback.token_url();
    let args = [
        "--token-url",
        &token_url,
        "--client-id",
        "ci",
        "--workload-identity",
        "github-actions",
    ];
    let output = curl_with_env(&[&args[..], &["--print-token"]].concat(), &env).await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(github.audiences(), [AZURE_AUDIENCE]);

    let output = curl_with_env(
        &[
            &args[..],
            &["--assertion-audience", "https://auth.test", "--print-token"],
        ]
        .concat(),
        &env,
    )
    .await;
    // The server's federated credential expects the Azure audience: another is refused.
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("invalid_client"));
    assert!(!all_output(&output).contains(RUNNER_SECRET));
}

#[tokio::test]
async fn github_actions_identity_outside_a_job_exits_2_naming_the_variable() {
    let output = curl_with_env(
        &[
            "--token-url",
            "http://127.0.0.1:9/token",
            "--client-id",
            "ci",
            "--workload-identity",
            "github-actions",
            "--print-token",
        ],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("ACTIONS_ID_TOKEN_REQUEST_URL"));
}

#[tokio::test]
async fn azure_identity_reads_the_tenant_client_and_token_file_from_the_environment() {
    let aks = Issuer::new("https://oidc.aks.test/tenant-1/");
    let subject = "system:serviceaccount:default:app";
    let (_dir, token_file) = file(&aks.sign(subject, AZURE_AUDIENCE, 3600));
    let server = trusting("app-1", aks.url(), aks.jwks(), subject);
    let loopback = server.serve().await.unwrap();
    let authority = loopback.url("/");
    let env = [
        ("AZURE_CLIENT_ID", "app-1"),
        ("AZURE_TENANT_ID", "tenant-1"),
        ("AZURE_FEDERATED_TOKEN_FILE", token_file.as_str()),
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
    ];
    let output = curl_with_env(
        &[
            "--workload-identity",
            "azure",
            "--scope",
            "https://graph.microsoft.com/.default",
            "--print-token",
        ],
        &env,
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    let received = &server.received()[0];
    assert!(
        received.url.ends_with("/tenant-1/oauth2/v2.0/token"),
        "{}",
        received.url
    );
    assert_eq!(received.form["client_id"], "app-1");
}

#[tokio::test]
async fn gcp_metadata_tokens_reach_the_api_with_one_fetch() {
    let server = AuthServer::new();
    let loopback = server.serve().await.unwrap();
    let gcp = GcpMetadataServer::new(&server);
    let metadata = gcp.serve().await.unwrap();
    let base = metadata.url("");
    let api = loopback.api_url("/orders");
    let output = curl_with_env(
        &[
            "--token-source",
            "gcp-metadata",
            "--metadata-url",
            &base,
            "--repeat",
            "3",
            &api,
        ],
        &[],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(stdout(&output).len(), 3);
    assert!(
        last_stderr_line(&output).contains("token_fetches=1"),
        "{}",
        all_output(&output)
    );
    assert_eq!(gcp.requests(), 1);
}

#[tokio::test]
async fn without_metadata_url_gce_metadata_host_names_the_metadata_server() {
    let server = AuthServer::new();
    let loopback = server.serve().await.unwrap();
    let gcp = GcpMetadataServer::new(&server);
    let metadata = gcp.serve().await.unwrap();
    let host = metadata.url("");
    let host = host.trim_start_matches("http://").trim_end_matches('/');
    let api = loopback.api_url("/orders");
    let output = curl_with_env(
        &["--token-source", "gcp-metadata", &api],
        &[("GCE_METADATA_HOST", host)],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(gcp.requests(), 1);
}

#[tokio::test]
async fn azure_imds_tokens_reach_the_api_and_a_redirect_is_refused() {
    let server = AuthServer::new();
    let loopback = server.serve().await.unwrap();
    let imds = AzureImdsServer::new(&server);
    let metadata = imds.serve().await.unwrap();
    let base = metadata.url("");
    let api = loopback.api_url("/orders");
    let args = [
        "--token-source",
        "azure-imds",
        "--metadata-url",
        &base,
        "--resource",
        "https://api.test",
        &api,
    ];
    let output = curl_with_env(&args, &[]).await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(
        imds.queries()[0][1],
        ("resource".to_owned(), "https://api.test".to_owned())
    );

    imds.misbehave(Misbehave::Redirect("http://evil.test/".into()));
    let output = curl_with_env(&args, &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(
        all_output(&output).contains("redirects are not followed"),
        "{}",
        all_output(&output)
    );
    imds.misbehave(Misbehave::Answer(
        StatusCode::OK,
        "<html>captive portal</html>".into(),
    ));
    let output = curl_with_env(&args, &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("Azure instance metadata service"));
}

#[tokio::test]
async fn azure_imds_without_a_resource_exits_2() {
    let output = curl_with_env(&["--token-source", "azure-imds", "--print-token"], &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("--resource"));
}
