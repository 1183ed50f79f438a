//! The device grant and token exchange answer alike in process and over HTTP on loopback.

use http::{Method, Request};
use http_body_util::BodyExt;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::ServiceExt;
use tower_oauth2_testkit::{AuthServer, Body, DeviceUser};

const DEVICE_CODE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code";
const EXCHANGE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange";
const ACCESS_TOKEN: &str = "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token";

/// A device sign-in (a code, a pending poll, the approved poll), two exchanges of its token
/// (an unknown subject, then the real one), and a poll with the used device code.
fn conversation() -> Vec<(&'static str, String)> {
    let poll = format!("grant_type={DEVICE_CODE}&device_code=device-code-1&client_id=tv");
    let exchange = |subject: &str| {
        format!(
            "grant_type={EXCHANGE}&subject_token={subject}&subject_token_type={ACCESS_TOKEN}\
             &audience=inventory&client_id=svc"
        )
    };
    vec![
        ("/device", "client_id=tv&scope=read".to_owned()),
        ("/token", poll.clone()),
        ("/token", poll.clone()),
        ("/token", exchange("made-up")),
        ("/token", exchange("token-2")),
        ("/token", poll),
    ]
}

fn server() -> AuthServer {
    AuthServer::new().device_user(DeviceUser::ApprovesAfter(1))
}

fn request(path: &str, body: String, base: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("{base}{path}"))
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn a_device_sign_in_and_an_exchange_get_the_same_answers_in_process_and_over_http() {
    let in_process = server();
    let mut answers_in_process = Vec::new();
    for (path, body) in conversation() {
        let request = request(path, body, "");
        let response = if path == "/device" {
            in_process.device_endpoint().oneshot(request).await
        } else {
            in_process.token_endpoint().oneshot(request).await
        };
        let response = response.unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        answers_in_process.push((status, String::from_utf8(body.to_vec()).unwrap()));
    }

    let over_http = server();
    let loopback = over_http.serve().await.unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    let mut answers_over_http = Vec::new();
    for (path, body) in conversation() {
        let response = client
            .request(request(path, body, &loopback.url("")))
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        answers_over_http.push((status, String::from_utf8(body.to_vec()).unwrap()));
    }

    assert_eq!(answers_in_process, answers_over_http);
    let statuses: Vec<u16> = answers_over_http
        .iter()
        .map(|(status, _)| *status)
        .collect();
    assert_eq!(statuses, [200, 400, 200, 400, 200, 400]);
    let body = |n: usize| answers_over_http[n].1.as_str();
    assert!(body(0).contains(r#""user_code":"USER-1""#), "{}", body(0));
    assert!(body(0).contains(r#""interval":5"#), "{}", body(0));
    assert!(body(1).contains("authorization_pending"), "{}", body(1));
    assert!(
        body(2).contains(r#""refresh_token":"refresh-2""#),
        "{}",
        body(2)
    );
    assert!(body(3).contains("invalid_grant"), "{}", body(3));
    assert!(
        body(4).contains(r#""issued_token_type":"urn:ietf:params:oauth:token-type:access_token""#),
        "{}",
        body(4)
    );
    // A device code is good for one token.
    assert!(body(5).contains("invalid_grant"), "{}", body(5));
}
