//! The device grant against the fake server, on a paused clock: intervals, `slow_down` and
//! expiry are measured in virtual seconds, and no test sleeps for real.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Request, StatusCode};
use tokio::time::Instant;
use tower::{Service, service_fn};
use tower_oauth2_testkit::{AuthServer, Body, DeviceUser};

use super::*;
use crate::{MemoryStore, TokenCache};

/// The server's token and device endpoints behind one HTTP client, which notes when each
/// token request (poll) was sent.
struct Fixture {
    server: AuthServer,
    polls: Arc<Mutex<Vec<Instant>>>,
    started: Instant,
}

impl Fixture {
    fn new(server: AuthServer) -> Self {
        Self {
            server,
            polls: Arc::default(),
            started: Instant::now(),
        }
    }

    fn grant(&self) -> DeviceCode {
        let (token, device) = (self.server.token_endpoint(), self.server.device_endpoint());
        let polls = self.polls.clone();
        let http = service_fn(move |request: Request<Body>| {
            let (mut token, mut device) = (token.clone(), device.clone());
            let polls = polls.clone();
            async move {
                if request.uri().path() == "/device" {
                    device.call(request).await
                } else {
                    polls.lock().unwrap().push(Instant::now());
                    token.call(request).await
                }
            }
        });
        let endpoint = TokenClient::new("https://auth.test/token", http).unwrap();
        DeviceCode::new(endpoint, ClientAuth::none("tv"), "https://auth.test/device")
            .unwrap()
            .on_prompt(|_| {})
    }

    /// Seconds from the start to each poll.
    fn poll_times(&self) -> Vec<u64> {
        let polls = self.polls.lock().unwrap();
        polls
            .iter()
            .map(|at| (*at - self.started).as_secs())
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn the_device_request_carries_client_auth_scope_resource_and_audience_and_is_shown() {
    let fixture = Fixture::new(AuthServer::new().device_user(DeviceUser::ApprovesAfter(0)));
    let shown = Arc::new(Mutex::new(None));
    let seen = shown.clone();
    let grant = fixture
        .grant()
        .scopes(["openid", "read"])
        .resource("https://api.test")
        .audience("api")
        .on_prompt(move |authorization| {
            let uri = authorization.verification_uri().to_owned();
            *seen.lock().unwrap() = Some((uri, authorization.user_code().to_owned()));
        });
    let token = grant.authorize().await.unwrap();
    assert_eq!(token.access_token().expose(), "token-1");
    assert!(token.refresh_token().is_some());

    let received = fixture.server.received();
    let device = &received[0].form;
    assert_eq!(device.get("client_id").map(String::as_str), Some("tv"));
    assert_eq!(device.get("scope").map(String::as_str), Some("openid read"));
    assert_eq!(
        device.get("resource").map(String::as_str),
        Some("https://api.test")
    );
    assert_eq!(device.get("audience").map(String::as_str), Some("api"));
    assert!(!device.contains_key("grant_type"));
    let poll = &received[1].form;
    assert_eq!(poll["grant_type"], GRANT_TYPE);
    assert_eq!(poll["device_code"], "device-code-1");
    let shown = shown.lock().unwrap().clone();
    assert_eq!(
        shown,
        Some(("https://auth.test/device".to_owned(), "USER-1".to_owned()))
    );
}

#[tokio::test(start_paused = true)]
async fn polls_wait_the_servers_interval_and_go_on_while_authorization_is_pending() {
    let server = AuthServer::new()
        .device_interval(Some(3))
        .device_user(DeviceUser::ApprovesAfter(2));
    let fixture = Fixture::new(server);
    let token = fixture.grant().authorize().await.unwrap();
    assert_eq!(token.access_token().expose(), "token-3");
    assert_eq!(fixture.poll_times(), [3, 6, 9]);
}

#[tokio::test(start_paused = true)]
async fn without_an_interval_polls_come_every_five_seconds() {
    let server = AuthServer::new()
        .device_interval(None)
        .device_user(DeviceUser::ApprovesAfter(1));
    let fixture = Fixture::new(server);
    fixture.grant().authorize().await.unwrap();
    assert_eq!(fixture.poll_times(), [5, 10]);
}

#[tokio::test(start_paused = true)]
async fn each_slow_down_adds_five_seconds_to_every_later_poll() {
    let fixture = Fixture::new(AuthServer::new().device_user(DeviceUser::ApprovesAfter(1)));
    let grant = fixture.grant();
    let authorization = grant.start().await.unwrap();
    let slow_down = r#"{"error":"slow_down"}"#;
    fixture
        .server
        .answer_next(StatusCode::BAD_REQUEST, slow_down);
    fixture
        .server
        .answer_next(StatusCode::BAD_REQUEST, slow_down);
    grant.wait_for_user(&authorization).await.unwrap();
    // 5 → slow_down → 10 → slow_down → 15, pending, 15, approved.
    assert_eq!(fixture.poll_times(), [5, 15, 30, 45]);
}

#[tokio::test(start_paused = true)]
async fn a_denial_ends_the_wait_with_access_denied() {
    let fixture = Fixture::new(AuthServer::new().device_user(DeviceUser::DeniesAfter(1)));
    let error = fixture.grant().authorize().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthorizationFailed);
    assert_eq!(error.oauth_error(), Some("access_denied"));
    assert_eq!(fixture.poll_times(), [5, 10]);
}

#[tokio::test(start_paused = true)]
async fn the_codes_lifetime_passing_ends_the_wait_with_expired_token_and_no_more_polls() {
    let server = AuthServer::new().device_lifetime(Duration::from_secs(12));
    let fixture = Fixture::new(server);
    let error = fixture.grant().authorize().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthorizationFailed);
    assert_eq!(error.oauth_error(), Some("expired_token"));
    assert_eq!(fixture.poll_times(), [5, 10]);
    assert_eq!(fixture.started.elapsed(), Duration::from_secs(12));
}

#[tokio::test(start_paused = true)]
async fn the_servers_expired_token_ends_the_wait() {
    let fixture = Fixture::new(AuthServer::new());
    let grant = fixture.grant();
    let authorization = grant.start().await.unwrap();
    let body = r#"{"error":"expired_token"}"#;
    fixture.server.answer_next(StatusCode::BAD_REQUEST, body);
    let error = grant.wait_for_user(&authorization).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthorizationFailed);
    assert_eq!(error.oauth_error(), Some("expired_token"));
}

#[tokio::test(start_paused = true)]
async fn a_server_error_doubles_the_wait_before_the_next_poll() {
    let fixture = Fixture::new(AuthServer::new().device_user(DeviceUser::ApprovesAfter(0)));
    let grant = fixture.grant();
    let authorization = grant.start().await.unwrap();
    fixture
        .server
        .answer_next(StatusCode::BAD_GATEWAY, "<html>bad gateway</html>");
    grant.wait_for_user(&authorization).await.unwrap();
    assert_eq!(fixture.poll_times(), [5, 15]);
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_the_wait_from_another_task() {
    let fixture = Fixture::new(AuthServer::new());
    let grant = fixture.grant();
    let authorization = grant.start().await.unwrap();
    let handle = authorization.clone();
    let waiting = tokio::spawn(async move { grant.wait_for_user(&authorization).await });
    tokio::time::sleep(Duration::from_secs(7)).await;
    handle.cancel();
    let error = waiting.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AuthorizationFailed);
    assert_eq!(error.oauth_error(), None);
    assert_eq!(fixture.poll_times(), [5]);
    assert_eq!(fixture.started.elapsed(), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_wait_stops_polling() {
    let fixture = Fixture::new(AuthServer::new());
    let grant = fixture.grant();
    let authorization = grant.start().await.unwrap();
    let wait = grant.wait_for_user(&authorization);
    assert!(
        tokio::time::timeout(Duration::from_secs(7), wait)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(fixture.poll_times(), [5]);
}

#[tokio::test(start_paused = true)]
async fn after_the_sign_in_the_cache_renews_with_the_refresh_token_and_saves_it() {
    let fixture = Fixture::new(AuthServer::new().device_user(DeviceUser::ApprovesAfter(0)));
    let grant = fixture.grant();
    let store = Arc::new(MemoryStore::new());
    let cache = TokenCache::builder(grant.clone())
        .store(store.clone())
        .build();
    let error = cache.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ReauthorizationRequired);

    cache.seed(grant.authorize().await.unwrap()).await.unwrap();
    assert_eq!(store.get().unwrap().access_token().expose(), "token-1");
    let renewed = cache.refresh().await.unwrap();
    assert_eq!(renewed.token().access_token().expose(), "token-2");
    let last = fixture.server.received().pop().unwrap();
    assert_eq!(last.form["grant_type"], "refresh_token");
    assert_eq!(last.form["refresh_token"], "refresh-1");
    assert_eq!(store.get().unwrap().access_token().expose(), "token-2");
}

#[tokio::test(start_paused = true)]
async fn an_answer_without_a_user_code_is_an_invalid_response_of_the_device_endpoint() {
    let fixture = Fixture::new(AuthServer::new());
    let body =
        r#"{"device_code":"sentinel-device","verification_uri":"https://a.test","expires_in":60}"#;
    fixture.server.answer_next(StatusCode::OK, body);
    let error = fixture.grant().start().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    let text = error.to_string();
    assert!(text.contains("device authorization endpoint"), "{text}");
    assert!(text.contains("user_code"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn googles_verification_url_is_read_and_the_device_code_never_shown() {
    let fixture = Fixture::new(AuthServer::new());
    let body = r#"{"device_code":"sentinel-device","user_code":"ABCD","verification_url":"https://g.test/device","expires_in":"1800","interval":0}"#;
    fixture.server.answer_next(StatusCode::OK, body);
    let authorization = fixture.grant().start().await.unwrap();
    assert_eq!(authorization.verification_uri(), "https://g.test/device");
    assert_eq!(authorization.expires_in(), Duration::from_secs(1800));
    // An interval of zero must not make the device spin.
    assert_eq!(authorization.interval(), Duration::from_secs(1));
    assert!(!format!("{authorization:?}").contains("sentinel"));
}

#[test]
fn only_a_grant_with_a_subject_has_an_identity() {
    let fixture = Fixture {
        server: AuthServer::new(),
        polls: Arc::default(),
        started: tokio::time::Instant::now(),
    };
    let grant = fixture.grant().scopes(["read"]);
    assert!(grant.identity().is_none());
    let id = grant.audience("api").subject("user-1").identity().unwrap();
    let expected = TokenSetId::new("https://auth.test/token", "tv", GRANT_TYPE)
        .scopes(["read"])
        .audience("api")
        .subject("user-1");
    assert_eq!(id, expected);
}

#[cfg(feature = "dpop")]
#[tokio::test(start_paused = true)]
async fn a_grant_given_a_dpop_key_polls_with_proofs_and_gets_a_bound_token() {
    let server = AuthServer::new()
        .dpop()
        .device_user(DeviceUser::ApprovesAfter(0));
    let fixture = Fixture::new(server);
    let key = crate::DpopKey::generate().unwrap();
    let token = fixture.grant().dpop(&key).authorize().await.unwrap();
    assert_eq!(token.scheme(), "DPoP");
    let proofs = fixture.server.dpop_proofs();
    assert_eq!(
        proofs.len(),
        1,
        "the poll carries a proof, the device request none"
    );
    assert_eq!(proofs[0]["htu"], "https://auth.test/token");
    assert_eq!(proofs[0]["_jkt"], key.thumbprint());
}
