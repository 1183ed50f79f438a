//! DPoP (RFC 9449): proofs on token and API requests, bound tokens, server nonces, and how
//! the nonce resend and the 401 retry stay apart, against the kit's DPoP-checking server.

mod common;

use std::convert::Infallible;

use http::{HeaderValue, Method, Request, Response, StatusCode, header::AUTHORIZATION};
use serde_json::Value;
use tower::{Layer, ServiceExt, service_fn};
use tower_oauth2::{
    ClientAuth, DpopKey, ErrorKind, NoReplay, OAuth2Layer, SigningAlgorithm, SigningKey,
    TokenCache, TokenClient, grant::ClientCredentials,
};

use common::AuthServerExt;
use tower_oauth2_testkit::{AuthServer, Body, accepted_token, keys};

const TOKEN_URL: &str = "https://auth.test/token";
const ORDERS: &str = "https://api.test/orders?page=2";

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::default()).unwrap()
}

fn proofs_to(issuer: &AuthServer, htu: &str) -> Vec<Value> {
    issuer
        .dpop_proofs()
        .into_iter()
        .filter(|proof| proof["htu"] == htu)
        .collect()
}

#[tokio::test]
async fn a_token_request_carries_a_proof_and_brings_back_a_token_bound_to_the_key() {
    let issuer = AuthServer::new().dpop();
    let key = DpopKey::generate().unwrap();
    let token = issuer.dpop_cache(&key).token().await.unwrap();

    assert_eq!(token.token().scheme(), "DPoP");
    assert_eq!(token.header_value(), "DPoP token-1");
    let proofs = proofs_to(&issuer, TOKEN_URL);
    assert_eq!(proofs.len(), 1);
    let proof = &proofs[0];
    assert_eq!(proof["_typ"], "dpop+jwt");
    assert_eq!(proof["_alg"], "ES256");
    assert_eq!(proof["_jkt"], key.thumbprint());
    assert_eq!(proof["htm"], "POST");
    assert!(proof.get("ath").is_none(), "{proof}");
    assert!(proof.get("nonce").is_none(), "{proof}");
}

#[tokio::test]
async fn each_api_request_gets_its_own_proof_for_its_method_and_url_without_the_query() {
    let issuer = AuthServer::new().dpop();
    let key = DpopKey::generate().unwrap();
    let client = OAuth2Layer::new(issuer.dpop_cache(&key)).layer(issuer.api::<Body>());

    for request in [
        get(ORDERS),
        get(ORDERS),
        Request::post(ORDERS).body(Body::from("x")).unwrap(),
    ] {
        let response = client.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(accepted_token(&response), Some("token-1"));
    }

    let proofs = proofs_to(&issuer, "https://api.test/orders");
    let methods: Vec<&str> = proofs.iter().map(|p| p["htm"].as_str().unwrap()).collect();
    assert_eq!(methods, ["GET", "GET", "POST"]);
    let mut jtis: Vec<&str> = proofs.iter().map(|p| p["jti"].as_str().unwrap()).collect();
    jtis.dedup();
    assert_eq!(jtis.len(), 3, "every proof has a jti of its own");
    assert!(proofs.iter().all(|proof| proof["ath"].is_string()));
    assert_eq!(issuer.rejected(), 0);
}

#[tokio::test]
async fn a_nonce_demanded_by_the_token_endpoint_costs_one_resend_in_one_fetch() {
    let issuer = AuthServer::new().dpop().dpop_nonces(true, false);
    let key = DpopKey::generate().unwrap();
    let cache = issuer.dpop_cache(&key);
    let token = cache.token().await.unwrap();

    assert_eq!(token.token().scheme(), "DPoP");
    assert_eq!(cache.stats().fetches, 1);
    assert_eq!(
        issuer.grants(),
        2,
        "the request, then its resend with the nonce"
    );
    let proofs = proofs_to(&issuer, TOKEN_URL);
    assert_eq!(proofs.len(), 2);
    assert!(proofs[0].get("nonce").is_none());
    assert_eq!(proofs[1]["nonce"], "nonce-0");
    assert_ne!(proofs[0]["jti"], proofs[1]["jti"]);
}

#[tokio::test]
async fn the_resend_after_a_token_endpoint_nonce_signs_a_new_client_assertion() {
    let issuer = AuthServer::new()
        .dpop()
        .dpop_nonces(true, false)
        .assertion_client("jwt-client", keys::EC_PUBLIC_PEM);
    let key = DpopKey::generate().unwrap();
    let signer = SigningKey::from_pkcs8_pem(keys::EC_PRIVATE_PEM).unwrap();
    let endpoint = TokenClient::new(TOKEN_URL, issuer.token_endpoint())
        .unwrap()
        .dpop(&key);
    let grant = ClientCredentials::new(endpoint, ClientAuth::private_key_jwt("jwt-client", signer));
    TokenCache::new(grant).token().await.unwrap();

    let assertions: Vec<String> = issuer
        .received()
        .iter()
        .map(|request| request.form["client_assertion"].clone())
        .collect();
    assert_eq!(assertions.len(), 2);
    assert_ne!(assertions[0], assertions[1]);
}

#[tokio::test]
async fn an_api_nonce_demand_is_met_by_one_resend_that_is_not_a_401_retry() {
    let issuer = AuthServer::new().dpop().dpop_nonces(false, true);
    let key = DpopKey::generate().unwrap();
    let cache = issuer.dpop_cache(&key);
    let client = OAuth2Layer::new(cache.clone()).layer(issuer.api::<Body>());

    // The first request waits for the token; the second finds it cached.
    for _ in 0..2 {
        let response = client.clone().oneshot(get(ORDERS)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(
        issuer.rejected(),
        1,
        "only the first request lacked the nonce"
    );
    assert_eq!(issuer.grants(), 1);
    assert_eq!(cache.stats().retries_after_401, 0);
    let proofs = proofs_to(&issuer, "https://api.test/orders");
    let nonces: Vec<&Value> = proofs.iter().map(|proof| &proof["nonce"]).collect();
    assert_eq!(
        nonces,
        [
            &Value::Null,
            &Value::from("nonce-0"),
            &Value::from("nonce-0")
        ]
    );
}

#[tokio::test]
async fn a_rotated_nonce_is_learned_from_the_demand_for_it() {
    let issuer = AuthServer::new().dpop().dpop_nonces(false, true);
    let key = DpopKey::generate().unwrap();
    let client = OAuth2Layer::new(issuer.dpop_cache(&key)).layer(issuer.api::<Body>());
    client.clone().oneshot(get(ORDERS)).await.unwrap();
    issuer.rotate_dpop_nonce();

    let response = client.clone().oneshot(get(ORDERS)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let proofs = proofs_to(&issuer, "https://api.test/orders");
    assert_eq!(proofs.last().unwrap()["nonce"], "nonce-1");
    assert_eq!(issuer.rejected(), 2);
}

#[tokio::test]
async fn a_server_that_keeps_demanding_a_nonce_gets_one_resend_and_its_answer_back() {
    let issuer = AuthServer::new().dpop();
    let key = DpopKey::generate().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let api = {
        let sent = sent.clone();
        service_fn(move |request: Request<Body>| {
            sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            assert!(request.headers().contains_key("dpop"));
            let mut response = Response::new(Body::default());
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            let headers = response.headers_mut();
            headers.insert(
                "www-authenticate",
                HeaderValue::from_static(r#"DPoP error="use_dpop_nonce""#),
            );
            headers.insert("dpop-nonce", HeaderValue::from_static("always-new"));
            async move { Ok::<_, Infallible>(response) }
        })
    };
    let cache = issuer.dpop_cache(&key);
    let client = OAuth2Layer::new(cache.clone()).layer(api);

    let response = client.oneshot(get(ORDERS)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(issuer.grants(), 1, "a nonce demand never costs a token");
}

#[tokio::test]
async fn a_revoked_bound_token_is_refreshed_and_the_retry_signs_for_the_new_one() {
    let issuer = AuthServer::new().dpop();
    let key = DpopKey::generate().unwrap();
    let client = OAuth2Layer::new(issuer.dpop_cache(&key)).layer(issuer.api::<Body>());
    client.clone().oneshot(get(ORDERS)).await.unwrap();
    issuer.revoke("token-1");

    let response = client.oneshot(get(ORDERS)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(accepted_token(&response), Some("token-2"));
    // The API refuses the revoked token before it reads the proof.
    let proofs = proofs_to(&issuer, "https://api.test/orders");
    assert_eq!(proofs.len(), 2);
    assert_ne!(
        proofs[0]["ath"], proofs[1]["ath"],
        "the retry's proof names the new token"
    );
}

#[tokio::test]
async fn a_401_retry_and_a_nonce_resend_each_happen_once_for_the_same_request() {
    let issuer = AuthServer::new().dpop().dpop_nonces(false, true);
    let key = DpopKey::generate().unwrap();
    let cache = issuer.dpop_cache(&key);
    let client = OAuth2Layer::new(cache.clone()).layer(issuer.api::<Body>());
    client.clone().oneshot(get(ORDERS)).await.unwrap();
    issuer.revoke("token-1");
    issuer.rotate_dpop_nonce();

    // 401 for the revoked token, a retry with token-2 and the old nonce, a demand for the
    // new nonce, and a resend with it.
    let response = client.oneshot(get(ORDERS)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(accepted_token(&response), Some("token-2"));
    assert_eq!(cache.stats().retries_after_401, 1);
    let proofs = proofs_to(&issuer, "https://api.test/orders");
    let last = &proofs[proofs.len() - 1];
    assert_eq!(last["nonce"], "nonce-1");
}

#[tokio::test]
async fn without_a_copy_a_nonce_demand_is_returned_as_it_came() {
    let issuer = AuthServer::new().dpop().dpop_nonces(false, true);
    let key = DpopKey::generate().unwrap();
    let client = OAuth2Layer::new(issuer.dpop_cache(&key))
        .replay(NoReplay)
        .layer(issuer.api::<Body>());

    let response = client.clone().oneshot(get(ORDERS)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The nonce came with the refusal: the next request has it.
    let response = client.oneshot(get(ORDERS)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_server_that_issues_bearer_tokens_gets_bearer_requests_without_proofs() {
    let issuer = AuthServer::new();
    let key = DpopKey::generate().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let api = {
        let seen = seen.clone();
        service_fn(move |request: Request<Body>| {
            let authorization = request.headers()[AUTHORIZATION]
                .to_str()
                .unwrap()
                .to_owned();
            seen.lock()
                .unwrap()
                .push((authorization, request.headers().contains_key("dpop")));
            async { Ok::<_, Infallible>(Response::new(Body::default())) }
        })
    };
    let client = OAuth2Layer::new(issuer.dpop_cache(&key)).layer(api);
    client.oneshot(get(ORDERS)).await.unwrap();

    assert_eq!(
        *seen.lock().unwrap(),
        [("Bearer token-1".to_owned(), false)]
    );
}

#[tokio::test]
async fn a_dpop_token_for_a_client_without_a_key_is_refused() {
    let issuer = AuthServer::new();
    issuer.answer_next(
        StatusCode::OK,
        r#"{"access_token":"x","token_type":"DPoP","expires_in":60}"#,
    );
    let endpoint = TokenClient::new(TOKEN_URL, issuer.token_endpoint()).unwrap();
    let grant = ClientCredentials::new(endpoint, ClientAuth::basic("client", "secret"));
    let error = TokenCache::new(grant).token().await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    assert!(error.to_string().contains("no DPoP key"), "{error}");
}

#[tokio::test]
async fn a_request_without_an_absolute_url_cannot_be_proven_and_fails() {
    let issuer = AuthServer::new().dpop();
    let key = DpopKey::generate().unwrap();
    let client = OAuth2Layer::new(issuer.dpop_cache(&key))
        .send_others_without_token()
        .layer(issuer.api::<Body>());
    let cache_warm = client.clone().oneshot(get(ORDERS)).await.unwrap();
    assert_eq!(cache_warm.status(), StatusCode::OK);

    let error = client.oneshot(get("/orders")).await.unwrap_err();
    let error = error.downcast::<tower_oauth2::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(error.to_string().contains("absolute"), "{error}");
}

#[test]
fn keys_of_every_dpop_algorithm_sign_and_shared_secrets_are_refused() {
    let loaded = [
        (keys::EC_PRIVATE_PEM, SigningAlgorithm::Es256),
        (keys::ED_PRIVATE_PEM, SigningAlgorithm::EdDsa),
        (keys::RSA_PRIVATE_PEM, SigningAlgorithm::Rs256),
    ];
    for (pem, algorithm) in loaded {
        let key = DpopKey::from_signing_key(&SigningKey::from_pkcs8_pem(pem).unwrap()).unwrap();
        assert_eq!(key.algorithm(), algorithm);
    }
    let pss = SigningKey::from_pkcs8_pem(keys::RSA_PRIVATE_PEM)
        .unwrap()
        .with_algorithm(SigningAlgorithm::Ps256)
        .unwrap();
    assert_eq!(
        DpopKey::from_signing_key(&pss).unwrap().algorithm(),
        SigningAlgorithm::Ps256
    );
    assert_eq!(
        DpopKey::generate_with(SigningAlgorithm::EdDsa)
            .unwrap()
            .algorithm(),
        SigningAlgorithm::EdDsa
    );

    let secret = SigningKey::from_secret(&"a-shared-secret".into()).unwrap();
    assert_eq!(
        DpopKey::from_signing_key(&secret).unwrap_err().kind(),
        ErrorKind::Config
    );
    assert!(DpopKey::generate_with(SigningAlgorithm::Hs256).is_err());
}

#[tokio::test]
async fn proofs_verify_for_every_algorithm_at_a_checking_server() {
    let loaded = [
        keys::EC_PRIVATE_PEM,
        keys::ED_PRIVATE_PEM,
        keys::RSA_PRIVATE_PEM,
    ]
    .map(|pem| SigningKey::from_pkcs8_pem(pem).unwrap());
    let from_jwk =
        [keys::ED_PRIVATE_JWK, keys::EC_PRIVATE_JWK].map(|jwk| SigningKey::from_jwk(jwk).unwrap());
    for signing in loaded.iter().chain(&from_jwk) {
        let issuer = AuthServer::new().dpop();
        let key = DpopKey::from_signing_key(signing).unwrap();
        let client = OAuth2Layer::new(issuer.dpop_cache(&key)).layer(issuer.api::<Body>());
        let response = client.oneshot(get(ORDERS)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{:?}", key.algorithm());
        assert_eq!(issuer.dpop_proofs()[0]["_jkt"], key.thumbprint());
    }
}

#[test]
fn a_key_never_shows_its_private_half() {
    let key = DpopKey::from_signing_key(&SigningKey::from_pkcs8_pem(keys::EC_PRIVATE_PEM).unwrap())
        .unwrap();
    let shown = format!("{key:?}");
    assert!(
        shown.contains("redacted") && shown.contains(key.thumbprint()),
        "{shown}"
    );
    let d = serde_json::from_str::<Value>(keys::EC_PRIVATE_JWK).unwrap()["d"].clone();
    assert!(!shown.contains(d.as_str().unwrap()));
}

#[tokio::test]
async fn the_method_of_the_proof_is_the_requests_own() {
    let issuer = AuthServer::new().dpop();
    let key = DpopKey::generate().unwrap();
    let client = OAuth2Layer::new(issuer.dpop_cache(&key)).layer(issuer.api::<Body>());
    let request = Request::builder()
        .method(Method::DELETE)
        .uri("https://api.test/orders/7")
        .body(Body::default())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        proofs_to(&issuer, "https://api.test/orders/7")[0]["htm"],
        "DELETE"
    );
}

/// Bound tokens with refresh tokens, each fetch noting the refresh token it was given.
struct Refreshing {
    key: DpopKey,
    given: std::sync::Mutex<Vec<Option<String>>>,
}

impl tower_oauth2::TokenSource for Refreshing {
    async fn fetch(
        &self,
        cx: tower_oauth2::FetchContext<'_>,
    ) -> Result<tower_oauth2::Token, tower_oauth2::Error> {
        let mut given = self.given.lock().unwrap();
        let previous = cx
            .previous()
            .and_then(|token| token.refresh_token())
            .map(|secret| secret.expose().to_owned());
        given.push(previous);
        let n = given.len();
        Ok(tower_oauth2::Token::bearer(format!("bound-{n}"))
            .with_refresh_token(format!("refresh-{n}"))
            .with_expires_in(std::time::Duration::from_secs(3600))
            .with_dpop(&self.key))
    }
}

#[tokio::test]
async fn a_saved_bound_token_is_refreshed_with_a_proof_after_a_restart_not_sent_as_bearer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token.json");
    let key = DpopKey::generate().unwrap();
    let source = |key: &DpopKey| {
        std::sync::Arc::new(Refreshing {
            key: key.clone(),
            given: Default::default(),
        })
    };
    let first = source(&key);
    let cache = TokenCache::builder(std::sync::Arc::clone(&first))
        .store(tower_oauth2::FileStore::new(&path))
        .build();
    assert_eq!(cache.token().await.unwrap().header_value(), "DPoP bound-1");
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.contains(r#""token_type": "DPoP""#), "{saved}");

    // After a restart the saved access token is not used, as it would go out as a bearer
    // token; its refresh token gets a bound one.
    let restarted = source(&key);
    let cache = TokenCache::builder(std::sync::Arc::clone(&restarted))
        .store(tower_oauth2::FileStore::new(&path))
        .build();
    let token = cache.token().await.unwrap();
    assert_eq!(token.header_value(), "DPoP bound-1");
    assert_eq!(token.token().scheme(), "DPoP");
    assert_eq!(
        *restarted.given.lock().unwrap(),
        [Some("refresh-1".to_owned())]
    );
}

#[tokio::test]
async fn an_authorization_code_grant_given_a_key_exchanges_and_refreshes_with_proofs() {
    let issuer = AuthServer::new().dpop();
    let key = DpopKey::generate().unwrap();
    let grant = tower_oauth2::grant::AuthorizationCode::new(
        TokenClient::new(TOKEN_URL, issuer.token_endpoint()).unwrap(),
        ClientAuth::none("app"),
        "https://auth.test/authorize",
        "https://app.test/callback",
    )
    .unwrap()
    .dpop(&key);
    let pending = grant.authorize_url();
    let callback = tower_oauth2::grant::Callback::new("c0de", pending.state());
    let token = grant.exchange(pending, callback).await.unwrap();
    assert_eq!(token.scheme(), "DPoP");

    let cache = TokenCache::new(grant);
    cache.seed(token).await.unwrap();
    cache.invalidate(&cache.token().await.unwrap());
    let renewed = cache.token().await.unwrap();
    assert_eq!(renewed.token().scheme(), "DPoP");
    let proofs = proofs_to(&issuer, TOKEN_URL);
    assert_eq!(proofs.len(), 2, "the exchange and the refresh");
    assert!(proofs.iter().all(|proof| proof["_jkt"] == key.thumbprint()));
}

#[tokio::test]
async fn htu_names_the_host_in_lowercase_without_the_default_port() {
    let issuer = AuthServer::new().dpop();
    let key = DpopKey::generate().unwrap();
    let client = OAuth2Layer::new(issuer.dpop_cache(&key)).layer(issuer.api::<Body>());
    let response = client
        .oneshot(get("https://API.Test:443/orders?page=2"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(proofs_to(&issuer, "https://api.test/orders").len(), 1);
}
