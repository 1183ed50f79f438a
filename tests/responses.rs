//! What the token endpoint may answer, and what the crate makes of it.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::service_fn;
use tower_oauth2::{ClientAuth, Error, ErrorKind, Token, TokenClient, TokenRequest};

type Body = Full<Bytes>;

fn client_answering(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: Vec<u8>,
) -> TokenClient {
    let headers = headers.to_vec();
    let http = service_fn(move |_: Request<Body>| {
        let mut response = Response::new(Full::new(Bytes::from(body.clone())));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        for (name, value) in &headers {
            response.headers_mut().insert(*name, value.parse().unwrap());
        }
        async move { Ok::<_, Infallible>(response) }
    });
    TokenClient::new("https://auth.test/token", http).unwrap()
}

async fn answer(status: u16, body: &str) -> Result<Token, Error> {
    answer_with(status, &[], body.as_bytes().to_vec()).await
}

async fn answer_with(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: Vec<u8>,
) -> Result<Token, Error> {
    let client = client_answering(status, headers, body);
    let request = TokenRequest::new("client_credentials");
    client
        .request(&request, &ClientAuth::post("client", "s3cret-sentinel"))
        .await
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[tokio::test]
async fn a_complete_response_keeps_every_field() {
    let token = answer(
        200,
        r#"{"access_token":"at","token_type":"bearer","expires_in":3600,"scope":"read write",
            "refresh_token":"rt","id_token":"it","tenant":"acme"}"#,
    )
    .await
    .unwrap();
    assert_eq!(token.access_token().expose(), "at");
    assert_eq!(token.expires_in(), Some(secs(3600)));
    assert_eq!(token.scopes().unwrap(), ["read", "write"]);
    assert_eq!(token.refresh_token().unwrap().expose(), "rt");
    assert_eq!(token.id_token().unwrap().expose(), "it");
    assert_eq!(token.extra()["tenant"], "acme");
    assert_eq!(token.extra().len(), 1);
}

#[tokio::test]
async fn token_type_bearer_is_accepted_in_any_case_or_missing() {
    for body in [
        r#"{"access_token":"a","token_type":"Bearer"}"#,
        r#"{"access_token":"a","token_type":"BEARER"}"#,
        r#"{"access_token":"a"}"#,
    ] {
        assert!(answer(200, body).await.is_ok(), "{body}");
    }
}

#[tokio::test]
async fn expires_in_may_be_a_number_or_a_numeric_string() {
    let cases = [
        (r#""3600""#, Some(secs(3600))),
        (r#"" 60 ""#, Some(secs(60))),
        ("3600.9", Some(secs(3600))),
        ("null", None),
        ("0", Some(Duration::ZERO)),
        ("-30", Some(Duration::ZERO)),
        (r#""-30""#, Some(Duration::ZERO)),
    ];
    for (value, expected) in cases {
        let body = format!(r#"{{"access_token":"a","token_type":"bearer","expires_in":{value}}}"#);
        let token = answer(200, &body).await.unwrap();
        assert_eq!(token.expires_in(), expected, "{value}");
    }
    let missing = answer(200, r#"{"access_token":"a","token_type":"bearer"}"#).await;
    assert_eq!(missing.unwrap().expires_in(), None);
}

#[tokio::test]
async fn an_expires_in_that_cannot_be_read_leaves_the_lifetime_unknown_and_keeps_the_refresh_token()
{
    for value in [r#""3600s""#, r#""soon""#, "true", "[]", "{}", r#""1e400""#] {
        let body = format!(
            r#"{{"access_token":"a","token_type":"bearer","expires_in":{value},"refresh_token":"rt-sentinel"}}"#
        );
        let token = answer(200, &body).await.unwrap();
        assert_eq!(token.expires_in(), None, "{value}");
        assert_eq!(
            token.refresh_token().map(|secret| secret.expose()),
            Some("rt-sentinel"),
            "{value}"
        );
    }
}

#[tokio::test]
async fn a_number_too_large_for_json_is_still_an_invalid_response() {
    // serde_json cannot read the body at all, so nothing in it can be kept.
    let body = r#"{"access_token":"a","expires_in":1e400}"#;
    let error = answer(200, body).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    assert!(error.to_string().contains("not a JSON object"), "{error}");
}

#[tokio::test]
async fn scope_may_be_a_string_or_a_list() {
    let token = answer(200, r#"{"access_token":"a","scope":["read","write"]}"#)
        .await
        .unwrap();
    assert_eq!(token.scopes().unwrap(), ["read", "write"]);
    let token = answer(200, r#"{"access_token":"a","scope":"  read   write "}"#)
        .await
        .unwrap();
    assert_eq!(token.scopes().unwrap(), ["read", "write"]);
}

#[tokio::test]
async fn a_scope_that_is_not_a_string_or_a_list_of_strings_is_dropped_and_the_refresh_token_kept() {
    for value in ["5", "[1]", r#"["read",2]"#, "true", r#"{"read":true}"#] {
        let body =
            format!(r#"{{"access_token":"a","scope":{value},"refresh_token":"rt-sentinel"}}"#);
        let token = answer(200, &body).await.unwrap();
        assert_eq!(token.scopes(), None, "{value}");
        assert_eq!(
            token.refresh_token().map(|secret| secret.expose()),
            Some("rt-sentinel"),
            "{value}"
        );
    }
}

#[tokio::test]
async fn an_id_token_that_is_not_a_string_is_dropped_and_the_refresh_token_kept() {
    for value in ["5", "true", r#"{"sub":"x"}"#, r#"["it"]"#] {
        let body =
            format!(r#"{{"access_token":"a","id_token":{value},"refresh_token":"rt-sentinel"}}"#);
        let token = answer(200, &body).await.unwrap();
        assert!(token.id_token().is_none(), "{value}");
        assert_eq!(
            token.refresh_token().map(|secret| secret.expose()),
            Some("rt-sentinel"),
            "{value}"
        );
    }
}

#[tokio::test]
async fn extra_fields_of_any_shape_are_kept() {
    let token = answer(
        200,
        r#"{"access_token":"a","refresh_token":"rt","nested":{"a":[1,true,null]},"list":[{}],"n":1.5,"flag":false,"none":null}"#,
    )
    .await
    .unwrap();
    let extra = token.extra();
    assert_eq!(extra["nested"], serde_json::json!({"a": [1, true, null]}));
    assert_eq!(extra["list"], serde_json::json!([{}]));
    assert_eq!(extra["n"], serde_json::json!(1.5));
    assert_eq!(extra["flag"], serde_json::json!(false));
    assert_eq!(extra["none"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_response_without_a_usable_access_token_is_an_invalid_response() {
    let cases = [
        (r#"{"token_type":"bearer"}"#, "missing"),
        (r#"{"access_token":"","token_type":"bearer"}"#, "empty"),
        (r#"{"access_token":42}"#, "not a string"),
        (r#"{"access_token":"a\nb"}"#, "not allowed in a header"),
        (r#"{"access_token":"café"}"#, "not allowed in a header"),
        (r#"{"access_token":"a","token_type":"mac"}"#, "`mac`"),
        (r#"{"access_token":"a","refresh_token":5}"#, "refresh_token"),
        (r#"["access_token"]"#, "not a JSON object"),
        (r#"{"access_token":"a","#, "not a JSON object"),
        ("<html><body>Sign in</body></html>", "not a JSON object"),
        ("", "not a JSON object"),
    ];
    for (body, says) in cases {
        let error = answer(200, body).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{body}");
        assert!(error.to_string().contains(says), "{body}: {error}");
        assert_eq!(error.status(), Some(StatusCode::OK));
    }
}

#[tokio::test]
async fn an_rfc_6749_error_body_becomes_a_rejected_error() {
    let body = r#"{"error":"invalid_scope","error_description":"scope `admin` is not allowed",
                   "error_uri":"https://auth.test/errors/scope"}"#;
    let error = answer(400, body).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
    assert_eq!(error.oauth_error(), Some("invalid_scope"));
    assert_eq!(error.description(), Some("scope `admin` is not allowed"));
    assert_eq!(error.error_uri(), Some("https://auth.test/errors/scope"));
    assert!(!error.is_transient());
}

#[tokio::test]
async fn a_200_with_an_error_member_is_an_error() {
    let error = answer(200, r#"{"error":"invalid_client"}"#)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    assert_eq!(error.oauth_error(), Some("invalid_client"));
}

#[tokio::test]
async fn the_vendor_envelope_becomes_a_rejected_error_on_400_and_403() {
    for status in [400, 403] {
        let body = format!(
            r#"{{"meta":{{"pagination":{{"limit":0,"offset":0,"total_count":0}}}},
                 "errors":[{{"httpcode":{status},"message":"invalid client secret"}}]}}"#
        );
        let error = answer(status, &body).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Rejected, "{status}");
        assert_eq!(error.status().unwrap().as_u16(), status);
        assert_eq!(error.description(), Some("invalid client secret"));
        assert_eq!(error.oauth_error(), None);
        assert!(error.to_string().contains("invalid client secret"));
        assert!(!error.is_transient());
    }
}

#[tokio::test]
async fn an_html_error_page_becomes_an_unexpected_response_with_its_text() {
    let page = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>\
                <body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";
    let error = answer(502, page).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
    assert_eq!(error.status(), Some(StatusCode::BAD_GATEWAY));
    assert!(error.is_transient());
    let message = error.to_string();
    assert!(message.contains("502 Bad Gateway"), "{message}");
    assert!(!message.contains('<'), "{message}");
}

#[tokio::test]
async fn empty_and_truncated_error_bodies_become_unexpected_responses() {
    let error = answer(500, "").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
    assert!(error.to_string().contains("empty body"));
    let error = answer(400, r#"{"error":"invalid_gr"#).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let error = answer_with(
        302,
        &[("location", "https://elsewhere.test/token")],
        Vec::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
    assert!(error.to_string().contains("redirects are not followed"));
}

#[tokio::test]
async fn retry_after_is_reported() {
    let error = answer_with(503, &[("retry-after", "7")], b"busy".to_vec())
        .await
        .unwrap_err();
    assert!(error.is_transient());
    assert_eq!(error.retry_after(), Some(secs(7)));
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let huge = vec![b'a'; 2 * 1024 * 1024];
    let error = answer_with(200, &[], huge.clone()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BodyTooLarge);

    // Without a length up front, reading stops at the limit.
    let http = service_fn(move |_: Request<Body>| {
        let chunks = huge.chunks(64 * 1024).map(|chunk| {
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::copy_from_slice(chunk)))
        });
        let body =
            http_body_util::StreamBody::new(futures_util::stream::iter(chunks.collect::<Vec<_>>()));
        async move { Ok::<_, Infallible>(Response::new(body)) }
    });
    let client = TokenClient::new("https://auth.test/token", http)
        .unwrap()
        .max_body_size(1024 * 1024);
    let error = client
        .request(&TokenRequest::new("g"), &ClientAuth::none("c"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BodyTooLarge);
}

#[tokio::test]
async fn secrets_the_server_echoes_are_scrubbed_from_errors() {
    let body = r#"{"error":"invalid_client","error_description":"bad secret s3cret-sentinel"}"#;
    let error = answer(401, body).await.unwrap_err();
    assert_eq!(error.description(), Some("bad secret [redacted]"));
    let error = answer(500, "debug: client_secret=s3cret-sentinel")
        .await
        .unwrap_err();
    assert!(!format!("{error} {error:?}").contains("s3cret-sentinel"));
}

#[tokio::test(start_paused = true)]
async fn a_hung_endpoint_times_out() {
    let http = service_fn(|_: Request<Body>| async {
        std::future::pending::<Result<Response<Body>, Infallible>>().await
    });
    let client = TokenClient::new("https://auth.test/token", http)
        .unwrap()
        .timeout(secs(3));
    let started = tokio::time::Instant::now();
    let error = client
        .request(&TokenRequest::new("g"), &ClientAuth::none("c"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(started.elapsed(), secs(3));
}

#[tokio::test]
async fn a_transport_failure_is_a_transport_error() {
    let http = service_fn(|_: Request<Body>| async {
        Err::<Response<Body>, _>(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    });
    let client = TokenClient::new("https://auth.test/token", http).unwrap();
    let error = client
        .request(&TokenRequest::new("g"), &ClientAuth::none("c"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transport);
    assert!(error.is_transient());
    assert!(std::error::Error::source(&error).is_some());
}

#[tokio::test]
async fn requests_are_form_posts_that_accept_json() {
    let seen = Arc::new(Mutex::new(None));
    let http = {
        let seen = Arc::clone(&seen);
        service_fn(move |request: Request<Body>| {
            let seen = Arc::clone(&seen);
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                *seen.lock().unwrap() = Some((parts, body));
                let token = r#"{"access_token":"a","token_type":"bearer"}"#;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(token))))
            }
        })
    };
    let client = TokenClient::new("https://auth.test/token", http).unwrap();
    let request = TokenRequest::new("client_credentials")
        .scopes(["a", "b"])
        .param("audience", "https://api.test");
    client
        .request(&request, &ClientAuth::basic("id", "secret"))
        .await
        .unwrap();
    let (parts, body) = seen.lock().unwrap().take().unwrap();
    assert_eq!(parts.method, "POST");
    assert_eq!(parts.uri, "https://auth.test/token");
    assert_eq!(
        parts.headers["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(parts.headers["accept"], "application/json");
    assert_eq!(parts.headers["authorization"], "Basic aWQ6c2VjcmV0");
    assert_eq!(
        body,
        "grant_type=client_credentials&scope=a+b&audience=https%3A%2F%2Fapi.test"
    );
}

/// A token endpoint for the refresh grant that answers each request by the refresh token it
/// presents, and records which ones were presented.
fn rotating_endpoint(
    answers: &'static [(&'static str, &'static str)],
    presented: Arc<Mutex<Vec<String>>>,
) -> TokenClient {
    let http = service_fn(move |request: Request<Body>| {
        let presented = Arc::clone(&presented);
        async move {
            let form = request.into_body().collect().await.unwrap().to_bytes();
            let refresh = form_urlencoded::parse(&form)
                .find(|(name, _)| name == "refresh_token")
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default();
            presented.lock().unwrap().push(refresh.clone());
            let body = answers
                .iter()
                .find(|(expected, _)| *expected == refresh)
                .map_or(r#"{"error":"invalid_grant"}"#, |(_, body)| *body);
            let status = if body.contains("invalid_grant") {
                400
            } else {
                200
            };
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = StatusCode::from_u16(status).unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    TokenClient::new("https://auth.test/token", http).unwrap()
}

#[tokio::test]
async fn the_refresh_token_of_an_unusable_answer_is_saved_and_presented_by_the_next_fetch() {
    // The answer to r1 rotates the refresh token but names a token type no client can send.
    const ANSWERS: &[(&str, &str)] = &[
        (
            "r1",
            r#"{"access_token":"a1","token_type":"mac","refresh_token":"r2"}"#,
        ),
        (
            "r2",
            r#"{"access_token":"a2","token_type":"bearer","expires_in":3600,"refresh_token":"r3"}"#,
        ),
    ];
    let presented = Arc::new(Mutex::new(Vec::new()));
    let store = Arc::new(tower_oauth2::MemoryStore::new());
    let grant = tower_oauth2::grant::RefreshToken::new(
        rotating_endpoint(ANSWERS, Arc::clone(&presented)),
        ClientAuth::post("client", "s3cret-sentinel"),
        "r1",
    );
    let cache = tower_oauth2::TokenCache::builder(grant)
        .store(Arc::clone(&store))
        .attempts_per_fetch(1)
        .backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build();

    let error = cache.token().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    let saved = store.get().expect("the salvaged set was saved");
    assert_eq!(saved.refresh_token().unwrap().expose(), "r2");
    assert_eq!(saved.expires_in(), Some(Duration::ZERO));

    tokio::time::sleep(Duration::from_millis(5)).await;
    let token = cache.token().await.unwrap();
    assert_eq!(token.token().access_token().expose(), "a2");
    assert_eq!(*presented.lock().unwrap(), ["r1", "r2"]);
    assert_eq!(store.get().unwrap().refresh_token().unwrap().expose(), "r3");
}
