//! Workload identity end to end against the test kit's fakes: a GitHub Actions OIDC token,
//! an Azure federated token file and a Kubernetes projected token as client assertions to a
//! server whose federated credentials trust their issuers, and the GCP and Azure metadata
//! servers as token sources of the layer. Hermetic: everything is in process or on loopback.

mod common;

use http::StatusCode;
use tower::{Layer, ServiceExt};
use tower_oauth2::{
    ClientAuth, Error, ErrorKind, OAuth2Layer, Token, TokenCache, TokenClient, TokenRequest,
    grant::ClientCredentials,
    workload::{self, AZURE_AD_TOKEN_EXCHANGE, Azure, AzureImds, GcpMetadata, GitHubActions},
};
use tower_oauth2_testkit::{
    AuthServer, Body, FederatedCredential, accepted_token, get,
    workload::{AzureImdsServer, GcpMetadataServer, GitHubActionsOidc, Issuer, Misbehave},
};

const RUNNER_SECRET: &str = "runner-request-secret";
const RUNNER_URL: &str = "https://pipelines.actions.test/idtoken?api-version=2.0";
const AUDIENCE: &str = "https://auth.test";

/// A server on which `client` trusts `issuer`'s tokens for `subject` and `audience`.
fn trusting(client: &str, issuer: &str, jwks: String, subject: &str, audience: &str) -> AuthServer {
    AuthServer::new().federated_client(
        client,
        FederatedCredential {
            issuer: issuer.to_owned(),
            jwks,
            subject: subject.to_owned(),
            audience: audience.to_owned(),
        },
    )
}

fn github_trusted(github: &GitHubActionsOidc) -> AuthServer {
    trusting(
        "ci-client",
        &github.issuer_url(),
        github.jwks(),
        &github.subject_claim(),
        AUDIENCE,
    )
}

fn github_auth(github: &GitHubActionsOidc) -> ClientAuth {
    GitHubActions::new(RUNNER_URL, RUNNER_SECRET, AUDIENCE, github.service())
        .unwrap()
        .client_auth("ci-client")
}

async fn token_request(server: &AuthServer, auth: &ClientAuth) -> Result<Token, Error> {
    TokenClient::new("https://auth.test/token", server.token_endpoint())
        .unwrap()
        .request(&TokenRequest::new("client_credentials"), auth)
        .await
}

/// One API request through a layer over `cache`: the token the API accepted.
async fn call_api(server: &AuthServer, cache: impl Into<TokenCache>) -> Option<String> {
    let client = OAuth2Layer::new(cache).layer(server.api::<Body>());
    let response = client
        .oneshot(get("https://api.test/orders"))
        .await
        .unwrap();
    accepted_token(&response).map(str::to_owned)
}

fn no_secret_in(error: &Error) {
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(RUNNER_SECRET), "{shown}");
    assert!(!shown.contains("eyJ"), "{shown}");
}

#[tokio::test]
async fn a_github_actions_token_gets_an_access_token_the_api_accepts() {
    let github = GitHubActionsOidc::new(RUNNER_SECRET);
    let server = github_trusted(&github);
    let grant = ClientCredentials::new(
        TokenClient::new("https://auth.test/token", server.token_endpoint()).unwrap(),
        github_auth(&github),
    );
    assert_eq!(call_api(&server, grant).await.as_deref(), Some("token-1"));
    assert_eq!(github.audiences(), [AUDIENCE]);
    let form = &server.received()[0].form;
    assert_eq!(form["client_id"], "ci-client");
    assert!(form["client_assertion"].starts_with("eyJ"));
}

#[tokio::test]
async fn the_github_token_is_reused_until_a_minute_before_it_expires() {
    let github = GitHubActionsOidc::new(RUNNER_SECRET);
    let server = github_trusted(&github);
    let auth = github_auth(&github);
    for _ in 0..3 {
        token_request(&server, &auth).await.unwrap();
    }
    assert_eq!((server.grants(), github.requests()), (3, 1));

    // Thirty seconds left is good to send, but too little to keep.
    github.set_lifetime(30);
    let auth = github_auth(&github);
    for _ in 0..2 {
        token_request(&server, &auth).await.unwrap();
    }
    assert_eq!(github.requests(), 3);
}

#[tokio::test]
async fn a_github_token_for_another_repository_or_audience_is_refused_as_invalid_client() {
    let github = GitHubActionsOidc::new(RUNNER_SECRET);
    let issuer = github.issuer_url();
    let other_repo = trusting(
        "ci-client",
        &issuer,
        github.jwks(),
        "repo:evil/fork:ref:x",
        AUDIENCE,
    );
    let other_aud = trusting(
        "ci-client",
        &issuer,
        github.jwks(),
        &github.subject_claim(),
        "api://other",
    );
    for server in [other_repo, other_aud] {
        let error = token_request(&server, &github_auth(&github))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Rejected, "{error}");
        assert_eq!(error.oauth_error(), Some("invalid_client"));
        no_secret_in(&error);
    }
    // An issuer the server does not trust, with the same subject and audience.
    let impostor = GitHubActionsOidc::new(RUNNER_SECRET).issuer("https://token.impostor.test");
    let error = token_request(&github_trusted(&github), &github_auth(&impostor))
        .await
        .unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_client"));
}

#[tokio::test]
async fn invalid_client_drops_the_kept_github_token_and_fetches_one_more() {
    let github = GitHubActionsOidc::new(RUNNER_SECRET);
    let refusing = trusting(
        "ci-client",
        &github.issuer_url(),
        github.jwks(),
        "repo:evil/fork:ref:x",
        AUDIENCE,
    );
    let auth = github_auth(&github);
    let error = token_request(&refusing, &auth).await.unwrap_err();
    assert_eq!(error.oauth_error(), Some("invalid_client"));
    assert_eq!(
        github.requests(),
        2,
        "the refused token was not fetched again"
    );
    // Refused again: still one more fetch per refused token request, no loop.
    token_request(&refusing, &auth).await.unwrap_err();
    assert_eq!(github.requests(), 4);
}

#[tokio::test]
async fn a_github_token_service_that_misbehaves_fails_typed_and_nothing_goes_to_the_server() {
    let big = format!(r#"{{"value":"{}"}}"#, "a".repeat(2048));
    let cases = [
        (
            Misbehave::Redirect("https://evil.test/steal".into()),
            ErrorKind::UnexpectedResponse,
        ),
        (
            Misbehave::Answer(
                StatusCode::BAD_GATEWAY,
                "<html><body><h1>502 Bad Gateway</h1></body></html>".into(),
            ),
            ErrorKind::UnexpectedResponse,
        ),
        (
            Misbehave::Answer(StatusCode::OK, "<html>sign in</html>".into()),
            ErrorKind::InvalidResponse,
        ),
        (
            Misbehave::Answer(StatusCode::OK, big),
            ErrorKind::BodyTooLarge,
        ),
    ];
    for (how, kind) in cases {
        let github = GitHubActionsOidc::new(RUNNER_SECRET);
        let server = github_trusted(&github);
        github.misbehave(how);
        let auth = GitHubActions::new(RUNNER_URL, RUNNER_SECRET, AUDIENCE, github.service())
            .unwrap()
            .max_body_size(1024)
            .client_auth("ci-client");
        let error = token_request(&server, &auth).await.unwrap_err();
        assert_eq!(error.kind(), kind, "{error}");
        assert!(
            error
                .to_string()
                .contains("GitHub Actions OIDC token endpoint"),
            "{error}"
        );
        no_secret_in(&error);
        assert_eq!(server.token_requests_started(), 0);
    }
}

#[tokio::test]
async fn a_wrong_runner_request_token_is_an_unexpected_response_that_does_not_quote_it() {
    let github = GitHubActionsOidc::new("the-real-one");
    let error = token_request(&github_trusted(&github), &github_auth(&github))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    no_secret_in(&error);
}

#[tokio::test]
async fn github_actions_from_env_names_a_missing_variable_and_never_a_value() {
    let github = GitHubActionsOidc::new(RUNNER_SECRET);
    let error = GitHubActions::from_env_with(AUDIENCE, github.service(), |name| {
        (name == "ACTIONS_ID_TOKEN_REQUEST_TOKEN").then(|| RUNNER_SECRET.to_owned())
    })
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(
        error.to_string().contains("ACTIONS_ID_TOKEN_REQUEST_URL"),
        "{error}"
    );
    no_secret_in(&error);
    let found = GitHubActions::from_env_with(AUDIENCE, github.service(), |name| {
        Some(match name {
            "ACTIONS_ID_TOKEN_REQUEST_URL" => RUNNER_URL.to_owned(),
            _ => RUNNER_SECRET.to_owned(),
        })
    })
    .unwrap();
    assert!(!format!("{found:?}").contains(RUNNER_SECRET));
    token_request(&github_trusted(&github), &found.client_auth("ci-client"))
        .await
        .unwrap();
}

const AKS_ISSUER: &str = "https://oidc.prod-aks.azure.test/tenant-1/";
const AKS_SUBJECT: &str = "system:serviceaccount:default:workload";

#[tokio::test]
async fn azure_workload_identity_from_env_gets_a_token_at_the_tenant_s_endpoint() {
    let aks = Issuer::new(AKS_ISSUER);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("azure-identity-token");
    std::fs::write(
        &token_file,
        aks.sign(AKS_SUBJECT, AZURE_AD_TOKEN_EXCHANGE, 3600),
    )
    .unwrap();
    let server = trusting(
        "app-1",
        AKS_ISSUER,
        aks.jwks(),
        AKS_SUBJECT,
        AZURE_AD_TOKEN_EXCHANGE,
    );
    let file = token_file.to_str().unwrap().to_owned();
    let azure = Azure::from_env_with(|name| match name {
        "AZURE_CLIENT_ID" => Some("app-1".to_owned()),
        "AZURE_TENANT_ID" => Some("tenant-1".to_owned()),
        "AZURE_FEDERATED_TOKEN_FILE" => Some(file.clone()),
        _ => None,
    })
    .unwrap();
    let grant = azure
        .client_credentials(server.token_endpoint())
        .unwrap()
        .scopes(["https://graph.microsoft.com/.default"]);
    assert_eq!(call_api(&server, grant).await.as_deref(), Some("token-1"));
    let received = &server.received()[0];
    assert_eq!(
        received.url,
        "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token"
    );
    assert_eq!(
        received.form["scope"],
        "https://graph.microsoft.com/.default"
    );
}

#[test]
fn azure_from_env_names_the_missing_variable() {
    let error =
        Azure::from_env_with(|name| (name != "AZURE_FEDERATED_TOKEN_FILE").then(|| "x".to_owned()))
            .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(
        error.to_string().contains("AZURE_FEDERATED_TOKEN_FILE"),
        "{error}"
    );
}

#[tokio::test]
async fn a_kubernetes_projected_token_is_the_client_assertion_and_an_expired_one_is_never_sent() {
    let cluster = Issuer::new("https://kubernetes.default.svc.cluster.local");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let sub = "system:serviceaccount:orders:api";
    std::fs::write(&path, cluster.sign(sub, AUDIENCE, 3600)).unwrap();
    let server = trusting("orders", cluster.url(), cluster.jwks(), sub, AUDIENCE);
    let auth = workload::kubernetes("orders", &path);
    token_request(&server, &auth).await.unwrap();

    std::fs::write(&path, cluster.sign(sub, AUDIENCE, -60)).unwrap();
    let error = token_request(&server, &auth).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    assert_eq!(server.grants(), 1);
}

#[tokio::test]
async fn the_gcp_metadata_server_s_token_is_used_by_the_layer_and_cached() {
    let server = AuthServer::new();
    let gcp = GcpMetadataServer::new(&server);
    let source = GcpMetadata::with_base_url("http://metadata.google.test", gcp.service())
        .unwrap()
        .scopes(["https://www.googleapis.com/auth/cloud-platform"]);
    let cache = TokenCache::new(source);
    assert_eq!(
        call_api(&server, cache.clone()).await.as_deref(),
        Some("gcp-1")
    );
    assert_eq!(call_api(&server, cache).await.as_deref(), Some("gcp-1"));
    assert_eq!(gcp.requests(), 1);
    let scopes = [(
        "scopes".to_owned(),
        "https://www.googleapis.com/auth/cloud-platform".to_owned(),
    )];
    assert_eq!(gcp.queries(), [scopes]);
}

#[tokio::test]
async fn azure_imds_s_token_is_used_by_the_layer_for_a_user_assigned_identity() {
    let server = AuthServer::new();
    let imds = AzureImdsServer::new(&server).identity("mi-1");
    let source =
        AzureImds::with_base_url("http://169.254.169.254", "https://api.test", imds.service())
            .unwrap()
            .client_id("mi-1");
    assert_eq!(call_api(&server, source).await.as_deref(), Some("imds-1"));

    let unknown =
        AzureImds::with_base_url("http://169.254.169.254", "https://api.test", imds.service())
            .unwrap()
            .client_id("mi-unknown");
    let cache = TokenCache::new(unknown);
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected, "{error}");
    assert_eq!(error.oauth_error(), Some("invalid_request"));
    assert!(
        error
            .to_string()
            .contains("Azure instance metadata service"),
        "{error}"
    );
}

#[tokio::test]
async fn metadata_servers_that_redirect_or_answer_html_or_too_much_fail_typed() {
    let server = AuthServer::new();
    let cases = [
        (
            Misbehave::Redirect("http://evil.test/".into()),
            ErrorKind::UnexpectedResponse,
        ),
        (
            Misbehave::Answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "<html><h1>Oops</h1></html>".into(),
            ),
            ErrorKind::UnexpectedResponse,
        ),
        (
            Misbehave::Answer(StatusCode::OK, "not json".into()),
            ErrorKind::InvalidResponse,
        ),
        (
            Misbehave::Answer(StatusCode::OK, "x".repeat(4096)),
            ErrorKind::BodyTooLarge,
        ),
    ];
    for (how, kind) in cases {
        let gcp = GcpMetadataServer::new(&server);
        gcp.misbehave(how.clone());
        let source = GcpMetadata::with_base_url("http://metadata.test", gcp.service())
            .unwrap()
            .max_body_size(1024);
        let error = TokenCache::new(source).token().await.unwrap_err();
        assert_eq!(error.kind(), kind, "gcp: {error}");

        let imds = AzureImdsServer::new(&server);
        imds.misbehave(how);
        let source = AzureImds::with_base_url("http://imds.test", "r", imds.service())
            .unwrap()
            .max_body_size(1024);
        let error = TokenCache::new(source).token().await.unwrap_err();
        assert_eq!(error.kind(), kind, "imds: {error}");
        if kind == ErrorKind::UnexpectedResponse && error.status() == Some(StatusCode::FOUND) {
            assert!(
                error.to_string().contains("redirects are not followed"),
                "{error}"
            );
        }
    }
}

#[tokio::test]
async fn the_metadata_fakes_refuse_requests_without_their_header() {
    let server = AuthServer::new();
    let gcp = GcpMetadataServer::new(&server);
    let plain =
        get("http://metadata.test/computeMetadata/v1/instance/service-accounts/default/token");
    let response = gcp.service().oneshot(plain).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let imds = AzureImdsServer::new(&server);
    let plain =
        get("http://imds.test/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r");
    let response = imds.service().oneshot(plain).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_github_preset_works_over_a_real_socket() {
    let github = GitHubActionsOidc::new(RUNNER_SECRET);
    let loopback = github.serve().await.unwrap();
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Body>();
    let auth = GitHubActions::new(
        &GitHubActionsOidc::request_url(&loopback),
        RUNNER_SECRET,
        AUDIENCE,
        http,
    )
    .unwrap()
    .client_auth("ci-client");
    token_request(&github_trusted(&github), &auth)
        .await
        .unwrap();
    assert_eq!(github.requests(), 1);
}
