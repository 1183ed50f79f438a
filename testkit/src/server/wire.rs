//! How the fake reads a request's form and writes its answers.

use bytes::Bytes;
use http::{
    HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION, header::CONTENT_TYPE,
};
use http_body_util::BodyExt;

use super::Received;
use crate::Body;

pub(super) async fn read<B: http_body::Body>(request: Request<B>) -> Option<Received> {
    // Over HTTP the URI is a path and the host is in `Host`; in process it is what the
    // client asked for, which may be a path alone.
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok());
    let url = match (request.uri().scheme(), host) {
        (None, Some(host)) => format!("http://{host}{}", request.uri().path()),
        _ => request.uri().to_string(),
    };
    let authorization = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let dpop = request
        .headers()
        .get("dpop")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = request.into_body().collect().await.ok()?.to_bytes();
    let form = form_urlencoded::parse(&body).into_owned().collect();
    Some(Received {
        url,
        authorization,
        form,
        dpop,
    })
}

pub(super) fn respond(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Body::new(body.into()));
    *response.status_mut() = status;
    response
}

pub(super) fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = respond(status, body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(super) fn oauth_error(status: StatusCode, code: &str) -> Response<Body> {
    json(status, format!(r#"{{"error":"{code}"}}"#))
}

pub(super) fn described(status: StatusCode, code: &str, description: &str) -> Response<Body> {
    let body = serde_json::json!({"error": code, "error_description": description});
    json(status, body.to_string())
}
