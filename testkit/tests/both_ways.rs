//! The server answers alike in process and over HTTP on loopback.

use http::{Method, Request, Response, StatusCode, header::AUTHORIZATION};
use http_body_util::BodyExt;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::ServiceExt;
use tower_oauth2_testkit::{AuthServer, Body, accepted_token};

/// Basic credentials of the demo client, `demo-client:demo-secret`.
const DEMO_BASIC: &str = "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=";
const FORM_CREDENTIALS: &str = "client_id=demo-client&client_secret=demo-secret";

/// A request of the conversation: method, path, `Authorization` and body.
type Call = (Method, &'static str, Option<&'static str>, String);

/// A grant, API calls with the token, refresh grants with unknown and known tokens, a
/// revocation and the API call it makes fail, and a client with the wrong secret.
fn conversation() -> Vec<Call> {
    let post = |path, authorization, body: &str| (Method::POST, path, authorization, body.into());
    vec![
        post("/token", Some(DEMO_BASIC), "grant_type=client_credentials"),
        (
            Method::GET,
            "/api/orders",
            Some("Bearer token-1"),
            String::new(),
        ),
        (
            Method::PUT,
            "/api/orders",
            Some("Bearer token-1"),
            "item=book".into(),
        ),
        post(
            "/token",
            None,
            &format!("grant_type=refresh_token&refresh_token=stolen&{FORM_CREDENTIALS}"),
        ),
        post(
            "/token",
            Some(DEMO_BASIC),
            "grant_type=refresh_token&refresh_token=demo-refresh-token",
        ),
        post("/revoke", Some(DEMO_BASIC), "token=token-1"),
        (
            Method::GET,
            "/api/orders",
            Some("Bearer token-1"),
            String::new(),
        ),
        post(
            "/token",
            None,
            "grant_type=client_credentials&client_id=demo-client&client_secret=wrong",
        ),
    ]
}

fn request((method, path, authorization, body): Call, base: &str) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    if let Some(authorization) = authorization {
        request = request.header(AUTHORIZATION, authorization);
    }
    request.body(Body::from(body)).unwrap()
}

/// What a test can see of an answer: status, `WWW-Authenticate`, accepted token and body.
async fn seen<B: http_body::Body>(
    response: Response<B>,
) -> (StatusCode, Option<String>, Option<String>, String)
where
    B::Error: std::fmt::Debug,
{
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned());
    let accepted = accepted_token(&response).map(str::to_owned);
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    (status, challenge, accepted, body)
}

#[tokio::test]
async fn a_conversation_gets_the_same_answers_in_process_and_over_http() {
    let in_process = AuthServer::demo();
    let mut answers_in_process = Vec::new();
    for call in conversation() {
        let path = call.1;
        let request = request(call, "");
        let response = if path == "/token" {
            in_process.token_endpoint().oneshot(request).await
        } else if path == "/revoke" {
            in_process.revocation_endpoint().oneshot(request).await
        } else {
            in_process.api::<Body>().oneshot(request).await
        };
        answers_in_process.push(seen(response.unwrap()).await);
    }

    let over_http = AuthServer::demo();
    let loopback = over_http.serve().await.unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let mut answers_over_http = Vec::new();
    for call in conversation() {
        let response = client.request(request(call, &loopback.url(""))).await;
        answers_over_http.push(seen(response.unwrap()).await);
    }

    assert_eq!(answers_in_process, answers_over_http);
    let statuses: Vec<u16> = answers_over_http
        .iter()
        .map(|(status, ..)| status.as_u16())
        .collect();
    assert_eq!(statuses, [200, 200, 200, 400, 200, 200, 401, 401]);
    assert!(
        answers_over_http[0]
            .3
            .contains(r#""access_token":"token-1""#)
    );
    assert_eq!(answers_over_http[2].2.as_deref(), Some("token-1"));
    assert_eq!(answers_over_http[2].3, r#"{"method":"PUT","bytes":9}"#);
    assert!(answers_over_http[3].3.contains("invalid refresh token"));
    assert!(
        answers_over_http[4]
            .3
            .contains(r#""refresh_token":"refresh-3""#)
    );
    assert_eq!(
        answers_over_http[6].1.as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(
        answers_over_http[7].3,
        r#"{"error":"invalid_client","error_description":"unknown client or wrong secret"}"#
    );
    assert_eq!(
        (
            over_http.grants(),
            over_http.rejected(),
            over_http.received().len()
        ),
        (4, 1, 5)
    );
}

#[tokio::test]
async fn over_http_any_other_path_is_not_found() {
    let loopback = AuthServer::new().serve().await.unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    for (method, path) in [(Method::GET, "/token"), (Method::POST, "/missing")] {
        let call = (method, path, None, String::new());
        let response = client.request(request(call, &loopback.url(""))).await;
        assert_eq!(response.unwrap().status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn a_delayed_token_request_counts_as_started_before_it_is_answered() {
    let server = AuthServer::demo().token_delay(std::time::Duration::from_millis(300));
    let call = (
        Method::POST,
        "/token",
        Some(DEMO_BASIC),
        "grant_type=client_credentials".to_owned(),
    );
    let answer = tokio::spawn(server.token_endpoint().oneshot(request(call, "")));
    while server.token_requests_started() == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!((server.token_requests_started(), server.grants()), (1, 0));
    assert_eq!(answer.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!((server.token_requests_started(), server.grants()), (1, 1));
}
