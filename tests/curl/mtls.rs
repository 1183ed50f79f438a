//! Mutual TLS options: `--client-cert`, `--client-key` and the `tls_client_auth` methods. The
//! fake server speaks plain http, so here the certificate is read and checked but never
//! presented; `tests/interop/mtls_cli.rs` runs the same options against a real server over TLS.

use tower_oauth2_testkit::{AuthServer, CLIENT_ID, keys};

use crate::{all_output, curl, curl_with, file};

#[tokio::test]
async fn a_certificate_without_its_key_or_a_key_without_its_certificate_exits_2() {
    let (_cert_dir, cert) = file(keys::MTLS_CLIENT_CERT_PEM);
    let (_key_dir, key) = file(keys::MTLS_CLIENT_KEY_PEM);
    for (args, missing) in [
        (["--client-cert", &cert], "--client-key"),
        (["--client-key", &key], "--client-cert"),
    ] {
        let all = [&args[..], &["--token-url", "https://auth.test/token"]].concat();
        let all = [&all[..], &["--client-id", CLIENT_ID, "--print-token"]].concat();
        let output = curl_with(&all).await;
        assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
        assert!(
            all_output(&output).contains(missing),
            "{}",
            all_output(&output)
        );
    }
}

#[tokio::test]
async fn a_key_of_another_certificate_exits_2_before_any_request_and_shows_no_key() {
    let server = AuthServer::new();
    let loopback = server.serve().await.unwrap();
    let (_cert_dir, cert) = file(keys::MTLS_CLIENT_CERT_PEM);
    let (_key_dir, key) = file(keys::MTLS_OTHER_KEY_PEM);
    let output = curl(
        &loopback,
        &[
            "--auth-method",
            "tls_client_auth",
            "--client-cert",
            &cert,
            "--client-key",
            &key,
            "--print-token",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    let shown = all_output(&output);
    assert!(
        shown.contains("does not belong to the client certificate"),
        "{shown}"
    );
    let key_line = keys::MTLS_OTHER_KEY_PEM.lines().nth(1).unwrap();
    assert!(
        !shown.contains(key_line) && !shown.contains("PRIVATE KEY"),
        "{shown}"
    );
    assert_eq!(server.grants(), 0);
}

#[tokio::test]
async fn tls_client_auth_without_a_certificate_exits_2() {
    let server = AuthServer::new();
    let loopback = server.serve().await.unwrap();
    for method in ["tls_client_auth", "self_signed_tls_client_auth"] {
        let output = curl(&loopback, &["--auth-method", method, "--print-token"]).await;
        assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
        assert!(all_output(&output).contains("--client-cert"), "{method}");
    }
    assert_eq!(server.grants(), 0);
}

#[tokio::test]
async fn tls_client_auth_sends_the_client_id_and_no_secret() {
    let server = AuthServer::new();
    let loopback = server.serve().await.unwrap();
    let (_cert_dir, cert) = file(keys::MTLS_SELF_SIGNED_CERT_PEM);
    let (_key_dir, key) = file(keys::MTLS_SELF_SIGNED_KEY_PEM);
    let output = curl(
        &loopback,
        &[
            "--auth-method",
            "self_signed_tls_client_auth",
            "--client-secret",
            "sentinel-unused-secret",
            "--client-cert",
            &cert,
            "--client-key",
            &key,
            "--print-token",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    let request = &server.received()[0];
    assert_eq!(request.form["client_id"], CLIENT_ID);
    assert!(!request.form.contains_key("client_secret"));
    assert_eq!(request.authorization, None);
}

#[tokio::test]
async fn with_a_certificate_the_issuers_mtls_endpoint_aliases_are_used() {
    let server = AuthServer::new();
    let loopback = server.serve().await.unwrap();
    let issuer = loopback.url("");
    // Only the alias reaches the server: the plain token endpoint is a closed port.
    let document = format!(
        r#"{{"issuer":"{issuer}","token_endpoint":"http://127.0.0.1:9/token",
            "mtls_endpoint_aliases":{{"token_endpoint":"{}"}}}}"#,
        loopback.token_url()
    );
    let server = server.metadata("/.well-known/oauth-authorization-server", &document);
    let (_cert_dir, cert) = file(keys::MTLS_CLIENT_CERT_PEM);
    let (_key_dir, key) = file(keys::MTLS_CLIENT_KEY_PEM);
    let run = |with_certificate: bool| {
        let mut args = vec![
            "--issuer".to_owned(),
            issuer.clone(),
            "--client-id".to_owned(),
            CLIENT_ID.to_owned(),
            "--print-token".to_owned(),
        ];
        if with_certificate {
            let options = ["--auth-method", "tls_client_auth", "--client-cert", &cert];
            args.extend(options.iter().map(|arg| (*arg).to_owned()));
            args.extend(["--client-key".to_owned(), key.clone()]);
        } else {
            args.extend(["--auth-method".to_owned(), "none".to_owned()]);
        }
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            curl_with(&args).await
        }
    };
    let output = run(true).await;
    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(server.grants(), 1);

    let output = run(false).await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("could not reach token endpoint"));
    assert_eq!(server.grants(), 1);
}

#[tokio::test]
async fn help_documents_the_mutual_tls_options() {
    let help = curl_with(&["--help"]).await;
    let help = String::from_utf8_lossy(&help.stdout);
    for option in [
        "--client-cert",
        "--client-key",
        "tls_client_auth",
        "self_signed_tls_client_auth",
        "mtls_endpoint_aliases",
    ] {
        assert!(help.contains(option), "{option} is not in --help");
    }
}
