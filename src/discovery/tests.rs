use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{service_fn, util::BoxCloneSyncService};

use super::*;
use crate::{ClientAuth, TokenClient, TokenRequest};

const ISSUER: &str = "https://auth.example.com/tenant";

/// A fake server: answers by path from `routes` (status, body), 404 for any other, and
/// records every path asked for.
#[derive(Clone, Default)]
struct Fake {
    routes: Arc<Mutex<Vec<(String, StatusCode, String)>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn route(&self, path: &str, status: StatusCode, body: &str) {
        let mut routes = self.routes.lock().unwrap();
        routes.retain(|(p, ..)| p != path);
        routes.push((path.to_owned(), status, body.to_owned()));
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn http(&self) -> BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible> {
        let fake = self.clone();
        BoxCloneSyncService::new(service_fn(move |request: Request<Full<Bytes>>| {
            let fake = fake.clone();
            async move {
                let path = request.uri().path().to_owned();
                fake.seen.lock().unwrap().push(path.clone());
                let routes = fake.routes.lock().unwrap();
                let (status, body) = routes
                    .iter()
                    .find(|(p, ..)| *p == path)
                    .map_or((StatusCode::NOT_FOUND, String::new()), |(_, s, b)| {
                        (*s, b.clone())
                    });
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                Ok::<_, Infallible>(response)
            }
        }))
    }
}

fn document(issuer: &str, token_path: &str) -> String {
    format!(r#"{{"issuer":"{issuer}","token_endpoint":"https://auth.example.com{token_path}"}}"#)
}

const RFC8414: &str = "/.well-known/oauth-authorization-server/tenant";
const OIDC: &str = "/tenant/.well-known/openid-configuration";
const TOKEN: &str = r#"{"access_token":"abc","token_type":"Bearer"}"#;

#[test]
fn the_well_known_urls_follow_the_issuers_path() {
    let discovery = Discovery::new(ISSUER, Fake::default().http()).unwrap();
    let [first, second] = discovery.urls();
    assert_eq!(first.path(), RFC8414);
    assert_eq!(second.path(), OIDC);
}

#[tokio::test]
async fn rfc8414_metadata_is_used_when_the_server_has_it() {
    let fake = Fake::default();
    fake.route(RFC8414, StatusCode::OK, &document(ISSUER, "/a"));
    fake.route(OIDC, StatusCode::OK, &document(ISSUER, "/b"));
    let discovery = Discovery::new(ISSUER, fake.http()).unwrap();
    let metadata = discovery.metadata().await.unwrap();
    assert_eq!(
        metadata.token_endpoint(),
        Some("https://auth.example.com/a")
    );
    assert_eq!(fake.seen(), [RFC8414]);
}

#[tokio::test]
async fn openid_configuration_is_read_only_after_a_404() {
    let fake = Fake::default();
    fake.route(OIDC, StatusCode::OK, &document(ISSUER, "/b"));
    let discovery = Discovery::new(ISSUER, fake.http()).unwrap();
    let metadata = discovery.metadata().await.unwrap();
    assert_eq!(
        metadata.token_endpoint(),
        Some("https://auth.example.com/b")
    );
    assert_eq!(fake.seen(), [RFC8414, OIDC]);

    // A server error is not "missing": it fails rather than trying the other document.
    let fake = Fake::default();
    fake.route(RFC8414, StatusCode::SERVICE_UNAVAILABLE, "");
    fake.route(OIDC, StatusCode::OK, &document(ISSUER, "/b"));
    let error = Discovery::new(ISSUER, fake.http())
        .unwrap()
        .metadata()
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(error.to_string().contains("metadata endpoint"), "{error}");
    assert_eq!(fake.seen(), [RFC8414]);
}

#[tokio::test]
async fn no_document_at_all_is_an_error_naming_both_places() {
    let fake = Fake::default();
    let error = Discovery::new(ISSUER, fake.http())
        .unwrap()
        .metadata()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
    assert!(
        error.to_string().contains("openid-configuration"),
        "{error}"
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let fake = Fake::default();
    fake.route(RFC8414, StatusCode::FOUND, "");
    let error = Discovery::new(ISSUER, fake.http())
        .unwrap()
        .metadata()
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
    assert_eq!(fake.seen(), [RFC8414]);
}

#[tokio::test]
async fn metadata_naming_another_issuer_sends_nothing_to_its_token_endpoint() {
    let fake = Fake::default();
    fake.route(
        RFC8414,
        StatusCode::OK,
        &document("https://evil.example", "/token"),
    );
    fake.route("/token", StatusCode::OK, TOKEN);
    let discovery = Discovery::new(ISSUER, fake.http()).unwrap();
    let error = TokenClient::discover(&discovery).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::IssuerMismatch);
    assert!(error.to_string().contains("evil.example"), "{error}");
    assert_eq!(fake.seen(), [RFC8414]);
}

#[tokio::test(start_paused = true)]
async fn metadata_is_cached_then_fetched_again_on_schedule() {
    let fake = Fake::default();
    fake.route(RFC8414, StatusCode::OK, &document(ISSUER, "/a"));
    let discovery = Discovery::new(ISSUER, fake.http())
        .unwrap()
        .refresh_interval(Duration::from_secs(60));
    discovery.metadata().await.unwrap();
    discovery.clone().metadata().await.unwrap();
    assert_eq!(fake.seen().len(), 1);
    tokio::time::advance(Duration::from_secs(61)).await;
    discovery.metadata().await.unwrap();
    assert_eq!(fake.seen().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_serves_the_old_metadata_and_retries_later() {
    let fake = Fake::default();
    fake.route(RFC8414, StatusCode::OK, &document(ISSUER, "/a"));
    let discovery = Discovery::new(ISSUER, fake.http())
        .unwrap()
        .refresh_interval(Duration::from_secs(60))
        .retry_interval(Duration::from_secs(10));
    discovery.metadata().await.unwrap();
    fake.route(RFC8414, StatusCode::INTERNAL_SERVER_ERROR, "");
    tokio::time::advance(Duration::from_secs(61)).await;
    let stale = discovery.metadata().await.unwrap();
    assert_eq!(stale.token_endpoint(), Some("https://auth.example.com/a"));
    // Within the retry interval nothing is fetched; after it, the next use fetches.
    discovery.metadata().await.unwrap();
    assert_eq!(fake.seen().len(), 2);
    fake.route(RFC8414, StatusCode::OK, &document(ISSUER, "/b"));
    tokio::time::advance(Duration::from_secs(11)).await;
    let fresh = discovery.metadata().await.unwrap();
    assert_eq!(fresh.token_endpoint(), Some("https://auth.example.com/b"));
    assert_eq!(fake.seen().len(), 3);
}

#[tokio::test]
async fn a_token_client_follows_an_endpoint_that_moved_after_a_404() {
    let fake = Fake::default();
    fake.route(RFC8414, StatusCode::OK, &document(ISSUER, "/old"));
    fake.route("/old", StatusCode::OK, TOKEN);
    let discovery = Discovery::new(ISSUER, fake.http()).unwrap();
    let client = TokenClient::discover(&discovery).await.unwrap();
    let (request, auth) = (
        TokenRequest::new("client_credentials"),
        ClientAuth::none("app"),
    );
    client.request(&request, &auth).await.unwrap();

    // The server moves its endpoint: the old one answers 404 once, then the metadata is
    // fetched again and the next request goes to the new one.
    fake.route("/old", StatusCode::NOT_FOUND, "");
    fake.route("/new", StatusCode::OK, TOKEN);
    fake.route(RFC8414, StatusCode::OK, &document(ISSUER, "/new"));
    let error = client.request(&request, &auth).await.unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
    client.request(&request, &auth).await.unwrap();
    assert_eq!(fake.seen(), [RFC8414, "/old", "/old", RFC8414, "/new"]);
    // The client keeps naming the endpoint it was made with.
    assert_eq!(client.url(), "https://auth.example.com/old");
}

const WITH_ALIASES: &str = r#"{
    "issuer": "https://auth.example.com/tenant",
    "token_endpoint": "https://auth.example.com/token",
    "authorization_endpoint": "https://auth.example.com/authorize",
    "revocation_endpoint": "https://auth.example.com/revoke",
    "device_authorization_endpoint": "https://auth.example.com/device",
    "pushed_authorization_request_endpoint": "https://auth.example.com/par",
    "introspection_endpoint": "https://auth.example.com/introspect",
    "require_pushed_authorization_requests": true,
    "tls_client_certificate_bound_access_tokens": true,
    "mtls_endpoint_aliases": {
        "token_endpoint": "https://mtls.auth.example.com/mtls/token",
        "revocation_endpoint": "https://mtls.auth.example.com/mtls/revoke",
        "device_authorization_endpoint": "https://mtls.auth.example.com/mtls/device",
        "pushed_authorization_request_endpoint": "https://mtls.auth.example.com/mtls/par",
        "introspection_endpoint": "https://mtls.auth.example.com/mtls/introspect",
        "userinfo_endpoint": "https://mtls.auth.example.com/mtls/userinfo"
    }
}"#;

#[test]
fn for_mutual_tls_puts_every_alias_in_place_and_leaves_the_browsers_endpoint() {
    let plain = ServerMetadata::from_json(ISSUER, WITH_ALIASES.as_bytes()).unwrap();
    assert!(plain.has_mtls_endpoint_aliases());
    assert!(plain.require_pushed_authorization_requests());
    assert!(plain.tls_client_certificate_bound_access_tokens());
    assert_eq!(
        plain.token_endpoint(),
        Some("https://auth.example.com/token")
    );

    let mtls = plain.for_mutual_tls();
    let alias = |path: &str| format!("https://mtls.auth.example.com/mtls/{path}");
    assert_eq!(mtls.token_endpoint(), Some(&*alias("token")));
    assert_eq!(mtls.revocation_endpoint(), Some(&*alias("revoke")));
    assert_eq!(
        mtls.device_authorization_endpoint(),
        Some(&*alias("device"))
    );
    assert_eq!(
        mtls.pushed_authorization_request_endpoint(),
        Some(&*alias("par"))
    );
    assert_eq!(mtls.introspection_endpoint(), Some(&*alias("introspect")));
    assert_eq!(
        mtls.authorization_endpoint(),
        Some("https://auth.example.com/authorize")
    );
    assert_eq!(mtls.issuer(), ISSUER);
}

#[test]
fn an_endpoint_without_an_alias_stays_and_a_document_without_aliases_is_unchanged() {
    let json = r#"{"issuer":"https://auth.example.com/tenant",
        "token_endpoint":"https://auth.example.com/token",
        "revocation_endpoint":"https://auth.example.com/revoke",
        "mtls_endpoint_aliases":{"token_endpoint":"https://mtls.auth.example.com/token"}}"#;
    let mtls = ServerMetadata::from_json(ISSUER, json.as_bytes())
        .unwrap()
        .for_mutual_tls();
    assert_eq!(
        mtls.token_endpoint(),
        Some("https://mtls.auth.example.com/token")
    );
    assert_eq!(
        mtls.revocation_endpoint(),
        Some("https://auth.example.com/revoke")
    );

    let none = ServerMetadata::from_json(ISSUER, document(ISSUER, "/t").as_bytes()).unwrap();
    assert!(!none.has_mtls_endpoint_aliases());
    assert!(!none.require_pushed_authorization_requests());
    assert_eq!(
        none.for_mutual_tls().token_endpoint(),
        Some("https://auth.example.com/t")
    );
}

#[test]
fn aliases_that_could_leak_secrets_or_are_malformed_refuse_the_document() {
    for aliases in [
        r#"{"token_endpoint":"http://mtls.auth.example.com/token"}"#,
        r#"{"token_endpoint":7}"#,
        r#"["https://mtls.auth.example.com/token"]"#,
        r#""https://mtls.auth.example.com""#,
    ] {
        let json = format!(r#"{{"issuer":"{ISSUER}","mtls_endpoint_aliases":{aliases}}}"#);
        let error = ServerMetadata::from_json(ISSUER, json.as_bytes()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{aliases}");
        assert!(
            error.to_string().contains("mtls_endpoint_aliases"),
            "{error}"
        );
    }
    for flag in [
        "require_pushed_authorization_requests",
        "tls_client_certificate_bound_access_tokens",
    ] {
        let json = format!(r#"{{"issuer":"{ISSUER}","{flag}":"yes"}}"#);
        let error = ServerMetadata::from_json(ISSUER, json.as_bytes()).unwrap_err();
        assert!(error.to_string().contains(flag), "{error}");
    }
}

#[tokio::test]
async fn a_mutual_tls_discovery_sends_token_requests_to_the_alias() {
    let fake = Fake::default();
    fake.route(RFC8414, StatusCode::OK, WITH_ALIASES);
    fake.route("/mtls/token", StatusCode::OK, TOKEN);
    fake.route("/token", StatusCode::OK, TOKEN);
    let request = TokenRequest::new("client_credentials");
    let auth = ClientAuth::tls_client_auth("svc");

    let discovery = Discovery::new(ISSUER, fake.http()).unwrap().mutual_tls();
    assert!(format!("{discovery:?}").contains("mutual_tls: true"));
    let endpoint = TokenClient::discover(&discovery).await.unwrap();
    assert_eq!(endpoint.url(), "https://mtls.auth.example.com/mtls/token");
    endpoint.request(&request, &auth).await.unwrap();
    assert_eq!(fake.seen(), [RFC8414, "/mtls/token"]);

    // Without it, the plain endpoint: the aliases are for clients with a certificate.
    let fake_plain = Fake::default();
    fake_plain.route(RFC8414, StatusCode::OK, WITH_ALIASES);
    fake_plain.route("/token", StatusCode::OK, TOKEN);
    let discovery = Discovery::new(ISSUER, fake_plain.http()).unwrap();
    let endpoint = TokenClient::discover(&discovery).await.unwrap();
    endpoint.request(&request, &auth).await.unwrap();
    assert_eq!(fake_plain.seen(), [RFC8414, "/token"]);
}
