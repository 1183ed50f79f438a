//! `--dpop`: a key per run, proofs on token and API requests, server nonces met by one resend.

use tower_oauth2_testkit::{AuthServer, CLIENT_SECRET};

use crate::{all_output, curl, last_stderr_line, stdout};

#[tokio::test]
async fn dpop_binds_the_token_and_meets_both_servers_nonces_with_one_fetch() {
    let server = AuthServer::demo().dpop().dpop_nonces(true, true);
    let loopback = server.serve().await.unwrap();
    let url = loopback.api_url("/orders?page=2");
    let output = curl(
        &loopback,
        &[
            "--client-secret",
            CLIENT_SECRET,
            "--dpop",
            "--repeat",
            "2",
            &url,
        ],
    )
    .await;

    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(stdout(&output).len(), 2);
    assert_eq!(
        last_stderr_line(&output),
        "requests=2 ok=2 token_fetches=1 retries_after_401=0 credential_reloads=0"
    );
    let proofs = server.dpop_proofs();
    let token_url = loopback.token_url();
    let api_url = loopback.api_url("/orders");
    let to = |url: &str| proofs.iter().filter(|proof| proof["htu"] == url).count();
    // The token request and its resend with the nonce; then the two API requests, which
    // carry that nonce from the start: the API is on the token endpoint's origin here, and
    // nonces are kept per origin.
    assert_eq!((to(&token_url), to(&api_url)), (2, 2), "{proofs:?}");
    assert!(proofs[1..].iter().all(|proof| proof["nonce"] == "nonce-0"));
    assert!(
        proofs
            .iter()
            .all(|proof| proof["_jkt"] == proofs[0]["_jkt"])
    );
    assert!(server.api_tokens().iter().all(Option::is_some));
}

#[tokio::test]
async fn an_api_nonce_demand_costs_one_resend_with_the_same_token_not_a_401_retry() {
    // Only the API demands a nonce: the token request goes without one, the first API
    // request is refused with the nonce and sent once more with it.
    let server = AuthServer::demo().dpop().dpop_nonces(false, true);
    let loopback = server.serve().await.unwrap();
    let url = loopback.api_url("/orders");
    let output = curl(
        &loopback,
        &["--client-secret", CLIENT_SECRET, "--dpop", &url],
    )
    .await;

    assert_eq!(output.status.code(), Some(0), "{}", all_output(&output));
    assert_eq!(
        last_stderr_line(&output),
        "requests=1 ok=1 token_fetches=1 retries_after_401=0 credential_reloads=0"
    );
    let proofs = server.dpop_proofs();
    let to_api: Vec<_> = proofs.iter().filter(|proof| proof["htu"] == url).collect();
    assert_eq!(to_api.len(), 2, "{proofs:?}");
    assert!(to_api[0].get("nonce").is_none(), "{proofs:?}");
    assert_eq!(to_api[1]["nonce"], "nonce-0");
    assert_eq!(
        to_api[0]["ath"], to_api[1]["ath"],
        "the same token both times"
    );
    assert_eq!(server.grants(), 1);
}

#[tokio::test]
async fn dpop_with_redis_is_refused_before_anything_is_sent() {
    let server = AuthServer::demo().dpop();
    let loopback = server.serve().await.unwrap();
    let url = loopback.api_url("/orders");
    let output = curl(
        &loopback,
        &[
            "--client-secret",
            CLIENT_SECRET,
            "--dpop",
            "--redis",
            "redis://127.0.0.1:1",
            "--redis-plaintext",
            &url,
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", all_output(&output));
    assert!(all_output(&output).contains("--dpop"));
    assert_eq!(server.grants(), 0);
}
