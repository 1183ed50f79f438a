//! No secret ever shows in the `Debug` or `Display` of a public type, in an error, or in the
//! TRACE log of a complete flow.
//!
//! Every secret here starts with `sentinel`, so one search finds any of them. When a public
//! type is added (the authorization-code grant, a PKCE verifier), render it in
//! `no_public_type_shows_a_secret_in_debug`; a new error kind goes into
//! `every_error_kind_hides_secrets_in_display_and_debug`.

mod common;

use http::{Request, StatusCode};
use tower::{Layer, ServiceExt};
use tower_oauth2::{
    ClientAuth, CredentialSource, FetchContext, FetchReason, OAuth2Layer, Secret, Token,
    TokenCache, TokenClient, TokenRequest, grant::ClientCredentials,
};

use common::AuthServerExt;
use tower_oauth2_testkit::{AuthServer, Body, get};

const SECRET: &str = "sentinel-client-secret";
const TOKEN: &str = "sentinel-access-token";
const REFRESH: &str = "sentinel-refresh-token";
const ID_TOKEN: &str = "sentinel-id-token";
/// The authorization code and PKCE verifier travel as secret form fields until their grant
/// lands; they are scrubbed and redacted like every other secret field.
const CODE: &str = "sentinel-authorization-code";
const VERIFIER: &str = "sentinel-pkce-verifier";

fn assert_clean(what: &str, text: String) {
    assert_free_of(what, &text, &["sentinel"]);
}

fn assert_free_of(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

#[tokio::test(start_paused = true)]
async fn no_public_type_shows_a_secret_in_debug() {
    let issuer = AuthServer::new();
    let endpoint = TokenClient::new("https://auth.test/token", issuer.token_endpoint()).unwrap();
    let mut extra = serde_json::Map::new();
    extra.insert("session_key".into(), format!("sentinel-{TOKEN}").into());
    let token = Token::bearer(TOKEN)
        .with_refresh_token(REFRESH)
        .with_id_token(ID_TOKEN)
        .with_extra(extra);
    let grant = ClientCredentials::new(endpoint.clone(), ClientAuth::basic("client", SECRET));
    let cache = TokenCache::new(grant.clone());
    let cached = cache.seed(token.clone()).await.unwrap();
    let layer = OAuth2Layer::new(cache.clone());
    let service = layer.layer(tower::service_fn(|_: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Body::default()))
    }));

    assert_clean("Secret", format!("{:?}", Secret::from(SECRET)));
    assert_clean("Token", format!("{token:?}"));
    assert_clean("ClientAuth", format!("{:?}", ClientAuth::post("c", SECRET)));
    assert_clean(
        "ClientAuth",
        format!("{:?}", ClientAuth::basic("c", SECRET)),
    );
    let source = CredentialSource::fixed(SECRET);
    assert_clean("CredentialSource", format!("{source:?}"));
    assert_clean(
        "ClientAuth",
        format!("{:?}", ClientAuth::client_assertion("c", source)),
    );
    let request = TokenRequest::new("authorization_code")
        .secret_param("code", CODE)
        .secret_param("code_verifier", VERIFIER)
        .secret_param("refresh_token", REFRESH);
    assert_clean("TokenRequest", format!("{request:?}"));
    assert_clean("TokenClient", format!("{endpoint:?}"));
    // Credentials in the token URL itself: user info and query stay out of `Debug`.
    let url = format!("https://user:{SECRET}@auth.test/token?client_secret={SECRET}");
    let with_credentials = TokenClient::new(&url, issuer.token_endpoint()).unwrap();
    assert_clean("TokenClient", format!("{with_credentials:?}"));
    assert_clean("ClientCredentials", format!("{grant:?}"));
    assert_clean("TokenCache", format!("{cache:?}"));
    assert_clean("CachedToken", format!("{cached:?}"));
    assert_clean("header value", format!("{:?}", cached.header_value()));
    assert_clean("OAuth2Layer", format!("{layer:?}"));
    assert_clean("OAuth2", format!("{service:?}"));
    let cx = FetchContext::new(Some(&token), FetchReason::Cold);
    assert_clean("FetchContext", format!("{cx:?}"));
    assert_clean(
        "TokenCacheBuilder",
        format!("{:?}", TokenCache::builder(grant)),
    );
    let store = tower_oauth2::MemoryStore::new();
    tower_oauth2::TokenStore::save(&store, &token)
        .await
        .unwrap();
    assert_clean("MemoryStore", format!("{store:?}"));
    assert_clean("CacheStats", format!("{:?}", cache.stats()));
    let pending = tower::Service::call(&mut service.clone(), Request::new(Body::default()));
    assert_clean("ResponseFuture", format!("{pending:?}"));
    let policies = format!(
        "{:?} {:?} {:?}",
        tower_oauth2::EmptyBodies,
        tower_oauth2::CloneBodies,
        tower_oauth2::NoReplay
    );
    assert_clean("replay policies", policies);
}

#[tokio::test(start_paused = true)]
async fn no_error_shows_a_secret_in_display_or_debug() {
    let bodies = [
        (
            400,
            format!(
                r#"{{"error":"invalid_client","error_description":"secret {SECRET} is wrong"}}"#
            ),
        ),
        (
            403,
            format!(r#"{{"meta":{{}},"errors":[{{"httpcode":403,"message":"bad {SECRET}"}}]}}"#),
        ),
        (
            500,
            format!("<html><body>client_secret={SECRET}&refresh_token={REFRESH}</body></html>"),
        ),
        (
            200,
            format!(r#"{{"access_token":"{TOKEN}","token_type":"{SECRET}"}}"#),
        ),
        // A malformed `expires_in` alone is tolerated; with an unknown `token_type` the answer
        // fails, and its error keeps the refresh token, unshown.
        (
            200,
            format!(
                r#"{{"access_token":"{TOKEN}","token_type":"mac","expires_in":"{TOKEN}","refresh_token":"{REFRESH}"}}"#
            ),
        ),
        (200, format!(r#"{{"access_token":"{TOKEN}\n"}}"#)),
    ];
    for (status, body) in bodies {
        let issuer = AuthServer::new();
        let http = tower::service_fn(move |_: Request<Body>| {
            let mut response = http::Response::new(Body::from(body.clone()));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        let endpoint = TokenClient::new("https://auth.test/token", http).unwrap();
        let request = TokenRequest::new("refresh_token").secret_param("refresh_token", REFRESH);
        let cache = TokenCache::new(ClientCredentials::new(
            endpoint.clone(),
            ClientAuth::post("client", SECRET),
        ));
        let from_endpoint = endpoint
            .request(&request, &ClientAuth::post("client", SECRET))
            .await;
        let from_cache = cache.token().await;
        let through_layer = OAuth2Layer::new(cache)
            .layer(issuer.api::<Body>())
            .oneshot(Request::new(Body::default()))
            .await;
        // Each path knows the secrets it sent, and only those can be scrubbed.
        let error = from_endpoint.unwrap_err();
        assert_free_of(
            "Error",
            &format!("{error} {error:?}"),
            &[SECRET, TOKEN, REFRESH],
        );
        let error = from_cache.unwrap_err();
        assert_free_of("Error", &format!("{error} {error:?}"), &[SECRET, TOKEN]);
        let error = through_layer.unwrap_err();
        assert_free_of("BoxError", &format!("{error} {error:?}"), &[SECRET, TOKEN]);
    }
}

/// A token endpoint that echoes what it received, as debugging pages and some gateways do:
/// the form body and the `Authorization` header, in the encodings they were sent in.
fn echoing_endpoint(status: u16, padding: usize) -> TokenClient {
    let http = tower::service_fn(move |request: Request<Body>| async move {
        use http_body_util::BodyExt;
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let page = format!(
            "<html>{}<body>authorization: {authorization} body: {}</body></html>",
            "<br>".repeat(padding),
            String::from_utf8_lossy(&body)
        );
        let mut response = http::Response::new(Body::from(page));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        Ok::<_, std::convert::Infallible>(response)
    });
    TokenClient::new("https://auth.test/token", http).unwrap()
}

/// A secret with the characters base64 secrets have, so its form encoding differs from it.
const ENCODED_SECRET: &str = "Q7+mZ/vR9=kT~sentinel";

#[tokio::test]
async fn a_secret_echoed_in_the_encoding_it_was_sent_in_is_scrubbed() {
    let encoded: String = form_urlencoded::byte_serialize(ENCODED_SECRET.as_bytes()).collect();
    let credentials = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("client:{encoded}"),
    );
    for auth in [
        ClientAuth::post("client", ENCODED_SECRET),
        ClientAuth::basic("client", ENCODED_SECRET),
    ] {
        let request = TokenRequest::new("refresh_token").secret_param("refresh_token", REFRESH);
        let error = echoing_endpoint(500, 0)
            .request(&request, &auth)
            .await
            .unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert_free_of(
            "Error",
            &shown,
            &[ENCODED_SECRET, &encoded, &credentials, REFRESH],
        );
    }
}

#[tokio::test]
async fn no_part_of_a_secret_shows_when_it_sits_where_a_long_body_is_cut() {
    // Markup collapses to nothing, so text deep in a long page is what the excerpt shows; a
    // cut through the secret must not leave its first characters behind.
    for padding in 990..1010 {
        let error = echoing_endpoint(502, padding)
            .request(
                &TokenRequest::new("client_credentials"),
                &ClientAuth::post("client", SECRET),
            )
            .await
            .unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(shown.contains("client_secret="), "{shown}");
        assert_clean("Error", shown);
    }
}

/// Every secret a request in these tests carries.
const SENTINELS: [&str; 6] = [SECRET, TOKEN, REFRESH, ID_TOKEN, CODE, VERIFIER];

/// A request carrying every kind of secret a grant sends.
fn secret_request() -> TokenRequest {
    TokenRequest::new("authorization_code")
        .secret_param("code", CODE)
        .secret_param("code_verifier", VERIFIER)
        .secret_param("refresh_token", REFRESH)
}

fn answering(status: u16, body: String) -> TokenClient {
    let http = tower::service_fn(move |_: Request<Body>| {
        let mut response = http::Response::new(Body::from(body.clone()));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    TokenClient::new("https://auth.test/token", http).unwrap()
}

async fn failure(endpoint: TokenClient) -> tower_oauth2::Error {
    endpoint
        .request(&secret_request(), &ClientAuth::post("client", SECRET))
        .await
        .unwrap_err()
}

struct Panics;

impl tower_oauth2::TokenSource for Panics {
    async fn fetch(&self, _: FetchContext<'_>) -> Result<Token, tower_oauth2::Error> {
        panic!("the source broke");
    }
}

struct FailingStore;

impl tower_oauth2::TokenStore for FailingStore {
    async fn load(&self) -> Result<Option<Token>, tower_oauth2::Error> {
        Ok(None)
    }

    async fn save(&self, _: &Token) -> Result<(), tower_oauth2::Error> {
        Err(tower_oauth2::Error::store_failed("disk full"))
    }
}

#[tokio::test(start_paused = true)]
async fn every_error_kind_hides_secrets_in_display_and_debug() {
    use tower_oauth2::ErrorKind::*;
    // The client can scrub what it sent; an access or id token it never had is the server's.
    let everything = [SECRET, REFRESH, CODE, VERIFIER].join(" ");
    let mut errors = vec![
        failure(answering(
            400,
            format!(r#"{{"error":"invalid_grant","error_description":"{everything}"}}"#),
        ))
        .await,
        failure(answering(
            502,
            format!("<html><body>{everything}</body></html>"),
        ))
        .await,
        failure(answering(
            200,
            format!(r#"{{"access_token":"{TOKEN}","token_type":"{everything}"}}"#),
        ))
        .await,
        failure(answering(200, format!("{everything} {}", "x".repeat(100))).max_body_size(64))
            .await,
    ];
    let hangs = tower::service_fn(|_: Request<Body>| {
        std::future::pending::<Result<http::Response<Body>, std::convert::Infallible>>()
    });
    let hangs = TokenClient::new("https://auth.test/token", hangs).unwrap();
    errors.push(failure(hangs.timeout(std::time::Duration::from_secs(1))).await);
    let resets = tower::service_fn(|_: Request<Body>| async {
        Err::<http::Response<Body>, _>(std::io::Error::other("connection reset by peer"))
    });
    errors.push(failure(TokenClient::new("https://auth.test/token", resets).unwrap()).await);
    let url = format!("http://user:{SECRET}@auth.test/token?secret={SECRET}");
    errors.push(TokenClient::new(&url, AuthServer::new().token_endpoint()).unwrap_err());
    errors.push(tower_oauth2::Error::source_failed("metadata server down"));
    errors.push(TokenCache::new(Panics).token().await.unwrap_err());
    let saving = TokenCache::builder(AuthServer::new().grant())
        .store(FailingStore)
        .build();
    saving.token().await.unwrap();
    errors.push(saving.store_error().unwrap());
    let refused = OAuth2Layer::new(AuthServer::new().grant())
        .allow_origin("https://api.test")
        .unwrap()
        .layer(AuthServer::new().api::<Body>())
        .oneshot(get("https://elsewhere.test/"))
        .await
        .unwrap_err();
    errors.push(
        refused
            .downcast_ref::<tower_oauth2::Error>()
            .unwrap()
            .clone(),
    );

    // ReauthorizationRequired comes from the authorization-code grant; add it when it lands.
    let kinds = [
        Rejected,
        UnexpectedResponse,
        InvalidResponse,
        BodyTooLarge,
        Timeout,
        Transport,
        Config,
        Source,
        Interrupted,
        Store,
        OriginNotAllowed,
    ];
    let made: Vec<_> = errors.iter().map(tower_oauth2::Error::kind).collect();
    assert_eq!(made, kinds);
    for error in &errors {
        let mut shown = format!("{error} {error:?}");
        let mut source = std::error::Error::source(error);
        while let Some(inner) = source {
            shown.push_str(&format!(" {inner} {inner:?}"));
            source = inner.source();
        }
        assert_free_of("Error", &shown, &SENTINELS);
    }
}

/// A log sink for `tracing-subscriber`.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An authorization server and API on loopback, over real sockets: the token endpoint issues
/// `sentinel-access-N` with refresh and id tokens; its third answer is an error and its fourth
/// a 502 page, both echoing what the request carried; the API rejects the first token.
async fn sentinel_server() -> std::net::SocketAddr {
    use http_body_util::BodyExt;
    use hyper::{body::Incoming, server::conn::http1};
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let grants = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let grants = std::sync::Arc::clone(&grants);
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let grants = std::sync::Arc::clone(&grants);
                async move {
                    let authorization = request
                        .headers()
                        .get(http::header::AUTHORIZATION)
                        .map(|value| value.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    let path = request.uri().path().to_owned();
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    let body = String::from_utf8_lossy(&body).into_owned();
                    let (status, text) = if path == "/token" {
                        let n = grants.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        match n {
                            3 => (
                                400,
                                format!(
                                    r#"{{"error":"invalid_grant","error_description":"{body} with {authorization} rejected"}}"#
                                ),
                            ),
                            4 => (
                                502,
                                format!("<html><body>{authorization}<br>{body}</body></html>"),
                            ),
                            _ => (
                                200,
                                format!(
                                    r#"{{"access_token":"sentinel-access-{n}","token_type":"Bearer","expires_in":3600,"refresh_token":"sentinel-refresh-{n}","id_token":"sentinel-id-{n}"}}"#
                                ),
                            ),
                        }
                    } else if authorization == "Bearer sentinel-access-1" {
                        (401, String::new())
                    } else {
                        (200, "orders".to_owned())
                    };
                    let mut response = http::Response::new(Body::from(text));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    if status == 401 {
                        response.headers_mut().insert(
                            http::header::WWW_AUTHENTICATE,
                            http::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                        );
                    }
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    addr
}

/// The authorization-code grant, then refresh-token grants, as the requests they send.
struct CodeThenRefresh {
    endpoint: TokenClient,
    auth: ClientAuth,
}

impl tower_oauth2::TokenSource for CodeThenRefresh {
    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, tower_oauth2::Error> {
        let request = match cx.previous().and_then(Token::refresh_token) {
            Some(refresh) => {
                TokenRequest::new("refresh_token").secret_param("refresh_token", refresh.expose())
            }
            None => TokenRequest::new("authorization_code")
                .secret_param("code", CODE)
                .secret_param("code_verifier", VERIFIER)
                .param("redirect_uri", "https://app.test/callback"),
        };
        self.endpoint.request(&request, &self.auth).await
    }
}

#[tokio::test]
async fn the_trace_log_of_a_complete_flow_shows_no_secret() {
    use tracing_subscriber::fmt::format::FmtSpan;

    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    // The runtime has one thread, so every task of the flow logs to this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let addr = sentinel_server().await;
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Body>();
    let endpoint = TokenClient::new(&format!("http://{addr}/token"), http.clone()).unwrap();
    let source = CodeThenRefresh {
        endpoint,
        auth: ClientAuth::basic("client", SECRET),
    };
    let cache = TokenCache::builder(source)
        .backoff(
            std::time::Duration::from_millis(10),
            std::time::Duration::from_millis(50),
        )
        .min_refresh_interval(std::time::Duration::from_millis(1))
        .build();
    let client = OAuth2Layer::new(cache.clone()).layer(http);

    // Code grant, a 401, a refresh and the retry; then a rejected refresh; then a 502 that the
    // fetch retries past.
    let request = Request::get(format!("http://{addr}/api/orders"))
        .body(Body::default())
        .unwrap();
    assert_eq!(
        client.oneshot(request).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        cache.refresh().await.unwrap_err().oauth_error(),
        Some("invalid_grant")
    );
    let token = cache.refresh().await.unwrap();
    assert_eq!(token.token().access_token().expose(), "sentinel-access-5");
    drop(_guard);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for expected in [
        "token fetched",
        "token fetch failed",
        "retrying once",
        "HTTP 502",
        "invalid_grant",
    ] {
        assert!(log.contains(expected), "the log lacks {expected:?}:\n{log}");
    }
    assert_clean("the TRACE log", log);
}
