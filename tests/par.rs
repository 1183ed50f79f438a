//! Pushed authorization requests (RFC 9126) against a fake server in process: what the push
//! sends, what the URL keeps, how the server's answers and failures come back, and when a
//! discovered grant pushes by itself.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header::LOCATION};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, util::BoxCloneSyncService};
use tower_oauth2::{
    ClientAuth, Discovery, ErrorKind, TokenClient,
    grant::{AuthorizationCode, Callback},
};

/// A request the fake received: path, `Authorization` header, form fields in order.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    authorization: Option<String>,
    form: Vec<(String, String)>,
}

impl Seen {
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    fn count(&self, name: &str) -> usize {
        self.form.iter().filter(|(field, _)| field == name).count()
    }
}

/// An answer: status, body, and a header if any.
type Answer = (u16, String, Option<(&'static str, String)>);

/// A fake authorization server: `/par` answers `par`, `/token` a token, the RFC 8414
/// well-known path `metadata`; everything is recorded.
#[derive(Clone)]
struct Fake {
    par: Arc<Mutex<Answer>>,
    metadata: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

const CREATED: &str = r#"{"request_uri":"urn:ietf:params:oauth:request_uri:r-1","expires_in":60}"#;

impl Fake {
    fn new() -> Self {
        Self {
            par: Arc::new(Mutex::new((201, CREATED.to_owned(), None))),
            metadata: Arc::default(),
            seen: Arc::default(),
        }
    }

    fn answer_par(&self, status: u16, body: &str) -> &Self {
        *self.par.lock().unwrap() = (status, body.to_owned(), None);
        self
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn token_client(&self) -> TokenClient {
        TokenClient::new("https://auth.test/token", self.http()).unwrap()
    }

    fn http(&self) -> BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible> {
        let fake = self.clone();
        BoxCloneSyncService::new(service_fn(move |request: Request<Full<Bytes>>| {
            let fake = fake.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let path = parts.uri.path().to_owned();
                fake.seen.lock().unwrap().push(Seen {
                    path: path.clone(),
                    authorization: parts
                        .headers
                        .get("authorization")
                        .map(|value| value.to_str().unwrap().to_owned()),
                    form: form_urlencoded::parse(&body).into_owned().collect(),
                });
                let (status, body, header) = match path.as_str() {
                    "/par" => fake.par.lock().unwrap().clone(),
                    "/token" => (
                        200,
                        r#"{"access_token":"a","token_type":"Bearer","expires_in":60}"#.to_owned(),
                        None,
                    ),
                    "/.well-known/oauth-authorization-server" => {
                        (200, fake.metadata.lock().unwrap().clone(), None)
                    }
                    _ => (404, String::new(), None),
                };
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                if let Some((name, value)) = header {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                Ok::<_, Infallible>(response)
            }
        }))
    }
}

fn grant(fake: &Fake, auth: ClientAuth) -> AuthorizationCode {
    AuthorizationCode::new(
        fake.token_client(),
        auth,
        "https://auth.test/authorize",
        "https://app.test/callback",
    )
    .unwrap()
    .scopes(["openid", "orders:read"])
    .resource("https://api.test")
    .param("prompt", "login")
    .pushed_authorization_request_endpoint("https://auth.test/par")
    .unwrap()
}

fn query(url: &str) -> Vec<(String, String)> {
    let (_, query) = url.split_once('?').unwrap();
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test]
async fn the_push_carries_every_parameter_and_the_url_only_the_client_id_and_request_uri() {
    let fake = Fake::new();
    let grant = grant(&fake, ClientAuth::basic("web", "sentinel-secret"));
    let pending = grant.authorization_request().await.unwrap();

    assert_eq!(
        query(pending.url()),
        [
            ("client_id".to_owned(), "web".to_owned()),
            (
                "request_uri".to_owned(),
                "urn:ietf:params:oauth:request_uri:r-1".to_owned()
            ),
        ]
    );
    assert!(pending.url().starts_with("https://auth.test/authorize?"));
    assert_eq!(pending.expires_in(), Some(Duration::from_secs(60)));

    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    let push = &seen[0];
    assert_eq!(push.path, "/par");
    assert!(push.authorization.as_deref().unwrap().starts_with("Basic "));
    let fields: HashMap<&str, &str> = push
        .form
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(fields["response_type"], "code");
    assert_eq!(fields["client_id"], "web");
    assert_eq!(fields["redirect_uri"], "https://app.test/callback");
    assert_eq!(fields["scope"], "openid orders:read");
    assert_eq!(fields["state"], pending.state());
    assert_eq!(fields["code_challenge"], pending.verifier().challenge());
    assert_eq!(fields["code_challenge_method"], "S256");
    assert_eq!(fields["resource"], "https://api.test");
    assert_eq!(fields["prompt"], "login");
    assert!(!fields.contains_key("client_secret"));

    // The rest of the flow is unchanged: the code goes to the token endpoint with the verifier.
    let verifier = pending.verifier().expose().to_owned();
    let state = pending.state().to_owned();
    grant
        .exchange(pending, Callback::new("c0de", state))
        .await
        .unwrap();
    let exchange = &fake.seen()[1];
    assert_eq!(exchange.path, "/token");
    assert_eq!(exchange.field("code_verifier"), Some(&*verifier));
    assert_eq!(
        exchange.field("redirect_uri"),
        Some("https://app.test/callback")
    );
}

#[tokio::test]
async fn client_id_is_sent_once_whatever_the_method() {
    let methods = [
        ClientAuth::post("web", "secret"),
        ClientAuth::none("web"),
        ClientAuth::tls_client_auth("web"),
        #[cfg(feature = "jwt")]
        ClientAuth::private_key_jwt(
            "web",
            tower_oauth2::SigningKey::from_pkcs8_pem(tower_oauth2_testkit::keys::EC_PRIVATE_PEM)
                .unwrap(),
        ),
    ];
    for auth in methods {
        let fake = Fake::new();
        let name = auth.method_name();
        grant(&fake, auth).authorization_request().await.unwrap();
        let push = &fake.seen()[0];
        assert_eq!(push.count("client_id"), 1, "{name}: {push:?}");
        assert_eq!(push.authorization, None, "{name}");
        assert_eq!(
            push.count("client_secret"),
            usize::from(name == "client_secret_post"),
            "{name}"
        );
    }
}

#[cfg(feature = "jwt")]
#[tokio::test]
async fn a_client_assertion_is_signed_for_the_push_with_the_token_endpoint_as_audience() {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    use tower_oauth2::SigningKey;
    use tower_oauth2_testkit::keys;

    let fake = Fake::new();
    let key = SigningKey::from_pkcs8_pem(keys::EC_PRIVATE_PEM).unwrap();
    grant(&fake, ClientAuth::private_key_jwt("web", key))
        .authorization_request()
        .await
        .unwrap();
    let push = &fake.seen()[0];
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["https://auth.test/token"]);
    let public = DecodingKey::from_ec_pem(keys::EC_PUBLIC_PEM.as_bytes()).unwrap();
    let claims = decode::<serde_json::Value>(
        push.field("client_assertion").unwrap(),
        &public,
        &validation,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["iss"], "web");
}

#[tokio::test]
async fn an_oauth_error_from_the_endpoint_is_a_rejection_that_names_it_and_no_secret() {
    let fake = Fake::new();
    fake.answer_par(
        401,
        r#"{"error":"invalid_client","error_description":"bad secret sentinel-secret"}"#,
    );
    let error = grant(&fake, ClientAuth::post("web", "sentinel-secret"))
        .authorization_request()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_client"));
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(
        error.to_string(),
        "pushed authorization request endpoint rejected the request (HTTP 401): \
         invalid_client: bad secret [redacted]"
    );
}

#[tokio::test]
async fn a_bad_answer_is_an_invalid_response_of_the_endpoint() {
    let fake = Fake::new();
    fake.answer_par(201, r#"{"request_uri":"urn:x","expires_in":0}"#);
    let error = grant(&fake, ClientAuth::none("app"))
        .authorization_request()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    assert_eq!(
        error.to_string(),
        "invalid response from pushed authorization request endpoint (HTTP 201): \
         `expires_in` is not a positive number of seconds"
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let fake = Fake::new();
    *fake.par.lock().unwrap() = (
        307,
        String::new(),
        Some((LOCATION.as_str(), "https://evil.test/par".to_owned())),
    );
    let error = grant(&fake, ClientAuth::basic("web", "secret"))
        .authorization_request()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
    assert_eq!(error.status(), Some(StatusCode::TEMPORARY_REDIRECT));
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn an_answer_beyond_the_size_limit_is_refused() {
    let fake = Fake::new();
    let big = format!(
        r#"{{"request_uri":"urn:x","expires_in":60,"pad":"{}"}}"#,
        "x".repeat(4096)
    );
    fake.answer_par(201, &big);
    let endpoint = fake.token_client().max_body_size(1024);
    let grant = AuthorizationCode::new(
        endpoint,
        ClientAuth::none("app"),
        "https://auth.test/authorize",
        "https://app.test/callback",
    )
    .unwrap()
    .pushed_authorization_request_endpoint("https://auth.test/par")
    .unwrap();
    let error = grant.authorization_request().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BodyTooLarge);
    assert!(
        error
            .to_string()
            .starts_with("pushed authorization request endpoint"),
        "{error}"
    );
}

#[tokio::test]
async fn authorize_url_never_pushes_and_a_grant_without_an_endpoint_never_does() {
    let fake = Fake::new();
    let pushing = grant(&fake, ClientAuth::none("app"));
    let pending = pushing.authorize_url();
    assert!(
        query(pending.url())
            .iter()
            .any(|(name, _)| name == "code_challenge")
    );
    assert_eq!(pending.expires_in(), None);

    let plain = AuthorizationCode::new(
        fake.token_client(),
        ClientAuth::none("app"),
        "https://auth.test/authorize",
        "https://app.test/callback",
    )
    .unwrap();
    let pending = plain.authorization_request().await.unwrap();
    assert!(
        query(pending.url())
            .iter()
            .any(|(name, value)| name == "state" && value == pending.state())
    );
    assert!(fake.seen().is_empty());
}

#[test]
fn an_endpoint_that_could_leak_credentials_is_refused() {
    let fake = Fake::new();
    let error = AuthorizationCode::new(
        fake.token_client(),
        ClientAuth::basic("web", "secret"),
        "https://auth.test/authorize",
        "https://app.test/callback",
    )
    .unwrap()
    .pushed_authorization_request_endpoint("http://auth.test/par")
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
}

fn metadata(extra: &str) -> String {
    format!(
        r#"{{"issuer":"https://auth.test","token_endpoint":"https://auth.test/token",
            "authorization_endpoint":"https://auth.test/authorize"{extra}}}"#
    )
}

async fn discovered(fake: &Fake, extra: &str) -> Result<AuthorizationCode, tower_oauth2::Error> {
    *fake.metadata.lock().unwrap() = metadata(extra);
    let discovery = Discovery::new("https://auth.test", fake.http()).unwrap();
    AuthorizationCode::discover(
        &discovery,
        ClientAuth::none("app"),
        "https://app.test/callback",
    )
    .await
}

#[tokio::test]
async fn a_discovered_grant_pushes_when_the_metadata_requires_it() {
    let fake = Fake::new();
    let grant = discovered(
        &fake,
        r#","pushed_authorization_request_endpoint":"https://auth.test/par",
            "require_pushed_authorization_requests":true"#,
    )
    .await
    .unwrap();
    let pending = grant.authorization_request().await.unwrap();
    assert_eq!(query(pending.url()).len(), 2, "{}", pending.url());
    assert_eq!(fake.seen().last().unwrap().path, "/par");
}

#[tokio::test]
async fn a_discovered_grant_does_not_push_where_pushing_is_only_offered() {
    let fake = Fake::new();
    let grant = discovered(
        &fake,
        r#","pushed_authorization_request_endpoint":"https://auth.test/par""#,
    )
    .await
    .unwrap();
    let pending = grant.authorization_request().await.unwrap();
    assert!(query(pending.url()).len() > 2, "{}", pending.url());
    assert!(fake.seen().iter().all(|seen| seen.path != "/par"));
}

#[tokio::test]
async fn metadata_that_requires_pushing_without_an_endpoint_is_refused() {
    let fake = Fake::new();
    let error = discovered(&fake, r#","require_pushed_authorization_requests":true"#)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    assert!(
        error
            .to_string()
            .contains("pushed_authorization_request_endpoint"),
        "{error}"
    );
}

#[cfg(feature = "loopback-redirect")]
#[tokio::test]
async fn the_loopback_receiver_pushes_with_the_port_it_listens_on() {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };
    use tower_oauth2::grant::LoopbackRedirect;

    let fake = Fake::new();
    let grant = AuthorizationCode::new(
        fake.token_client(),
        ClientAuth::none("cli"),
        "https://auth.test/authorize",
        "http://127.0.0.1/callback",
    )
    .unwrap()
    .pushed_authorization_request_endpoint("https://auth.test/par")
    .unwrap();
    let recorded = fake.clone();
    let token = LoopbackRedirect::new()
        .timeout(Duration::from_secs(10))
        .on_url(move |url| {
            assert_eq!(query(url).len(), 2, "{url}");
            // The browser: the server would send it back to the pushed redirect URI.
            let push = recorded.seen()[0].clone();
            let redirect = push.field("redirect_uri").unwrap().to_owned();
            let state = push.field("state").unwrap().to_owned();
            tokio::spawn(async move {
                let authority = redirect
                    .strip_prefix("http://")
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap()
                    .to_owned();
                assert_ne!(authority, "127.0.0.1", "the port is in the pushed URI");
                let mut stream = TcpStream::connect(&authority).await.unwrap();
                let request = format!(
                    "GET /callback?code=c0de&state={state} HTTP/1.1\r\nHost: {authority}\r\n\r\n"
                );
                stream.write_all(request.as_bytes()).await.unwrap();
                let mut page = String::new();
                stream.read_to_string(&mut page).await.unwrap();
            });
        })
        .authorize(&grant)
        .await
        .unwrap();
    assert_eq!(token.access_token().expose(), "a");
    let seen = fake.seen();
    assert_eq!(
        seen[1].field("redirect_uri"),
        seen[0].field("redirect_uri"),
        "the exchange names the redirect URI that was pushed"
    );
}
