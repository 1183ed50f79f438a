//! Discovery from the issuer, and the JWT methods: client assertions and the JWT bearer grant.

use std::process::Output;

use tower_oauth2_testkit::{AuthServer, CLIENT_ID, CLIENT_SECRET, keys};

use crate::{all_output, curl, curl_with, demo, file, stdout};

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
        "client_assertion",
        "--client-assertion-file",
        "--client-secret-file",
    ] {
        assert!(help.contains(option), "{option} is not in --help");
    }
}
