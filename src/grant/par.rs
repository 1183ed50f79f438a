//! Pushed authorization requests (RFC 9126): the parameters of an authorization request go to
//! the server in a POST of their own, with the client's authentication, and the browser
//! carries only `client_id` and the `request_uri` the server answers with. The server then
//! knows the request came from the client, and nothing in it can be read or changed on the
//! way through the browser.

use std::{borrow::Cow, time::Duration};

use http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::{
    ClientAuth, Error, ErrorKind, TokenRequest,
    endpoint::{Endpoint, parse},
};

/// What errors call the endpoint.
pub(crate) const NAME: &str = "pushed authorization request endpoint";

/// The longest `request_uri` accepted. Servers issue URNs of a few dozen characters; the
/// limit keeps a broken answer from making a URL no browser would open.
const MAX_REQUEST_URI: usize = 2048;

/// The server's answer to a pushed request (RFC 9126 section 2.2).
#[derive(Debug)]
pub(crate) struct Pushed {
    pub(crate) request_uri: String,
    pub(crate) expires_in: Duration,
}

/// Posts the authorization request's `params` to `endpoint`, authenticated by `auth`, and
/// reads the answer. `client_id` is added when `auth` does not send it itself.
pub(crate) async fn push(
    endpoint: &Endpoint,
    auth: &ClientAuth,
    params: &[(&str, Cow<'_, str>)],
) -> Result<Pushed, Error> {
    let mut request = TokenRequest::without_grant_type();
    if !auth.writes_client_id() {
        request = request.param("client_id", auth.client_id());
    }
    for (name, value) in params {
        request = request.param(*name, value.as_ref());
    }
    endpoint.post(&request, auth, read).await
}

/// Reads the answer: 201 (any 2xx will do) with `request_uri` and `expires_in`, or an error
/// as the token endpoint's are read (RFC 9126 section 2.3 uses RFC 6749 section 5.2 bodies).
fn read(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&str],
) -> Result<Pushed, Error> {
    let mut fields = parse::parse_object(status, headers, body, secrets)?;
    let invalid = |detail: &str| {
        Error::new(ErrorKind::InvalidResponse)
            .with_detail(detail)
            .with_status(status)
    };
    let request_uri = match fields.remove("request_uri") {
        Some(Value::String(uri)) if uri.is_empty() => {
            return Err(invalid("`request_uri` is empty"));
        }
        Some(Value::String(uri)) if uri.len() > MAX_REQUEST_URI => {
            return Err(invalid("`request_uri` is too long"));
        }
        // A URI has visible ASCII only; anything else is not one.
        Some(Value::String(uri)) if !uri.bytes().all(|b| (0x21..0x7f).contains(&b)) => {
            return Err(invalid("`request_uri` has characters a URI cannot have"));
        }
        Some(Value::String(uri)) => uri,
        Some(_) => return Err(invalid("`request_uri` is not a string")),
        None => return Err(invalid("`request_uri` is missing")),
    };
    // Required by RFC 9126; a request that is already stale cannot be used.
    let seconds = match fields.remove("expires_in") {
        None | Some(Value::Null) => return Err(invalid("`expires_in` is missing")),
        Some(Value::Number(number)) => number.as_u64(),
        Some(Value::String(text)) => text.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    let Some(seconds) = seconds.filter(|seconds| *seconds > 0) else {
        return Err(invalid("`expires_in` is not a positive number of seconds"));
    };
    Ok(Pushed {
        request_uri,
        expires_in: Duration::from_secs(seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Result<Pushed, Error> {
        let status = StatusCode::from_u16(status).unwrap();
        read(status, &HeaderMap::new(), body.as_bytes(), &["sentinel"])
    }

    #[test]
    fn a_created_answer_gives_the_request_uri_and_its_lifetime() {
        let pushed = answer(
            201,
            r#"{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}"#,
        )
        .unwrap();
        assert_eq!(pushed.request_uri, "urn:ietf:params:oauth:request_uri:abc");
        assert_eq!(pushed.expires_in, Duration::from_secs(60));
        // Lenient where it is unambiguous: 200, and seconds as a string.
        let pushed = answer(200, r#"{"request_uri":"urn:x","expires_in":"90"}"#).unwrap();
        assert_eq!(pushed.expires_in, Duration::from_secs(90));
    }

    #[test]
    fn a_bad_request_uri_is_an_invalid_response() {
        let long = format!(
            r#"{{"request_uri":"{}","expires_in":60}}"#,
            "u".repeat(3000)
        );
        for body in [
            r#"{"expires_in":60}"#,
            r#"{"request_uri":"","expires_in":60}"#,
            r#"{"request_uri":7,"expires_in":60}"#,
            r#"{"request_uri":"urn:a b","expires_in":60}"#,
            r#"{"request_uri":"urn:a\nb","expires_in":60}"#,
            &long,
        ] {
            let error = answer(201, body).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{body}");
            assert!(error.to_string().contains("`request_uri`"), "{error}");
            assert_eq!(error.status(), Some(StatusCode::CREATED));
        }
    }

    #[test]
    fn a_missing_or_useless_lifetime_is_an_invalid_response() {
        for expires_in in [
            "",
            r#","expires_in":0"#,
            r#","expires_in":-5"#,
            r#","expires_in":"soon""#,
            r#","expires_in":1.5"#,
        ] {
            let body = format!(r#"{{"request_uri":"urn:x"{expires_in}}}"#);
            let error = answer(201, &body).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{body}");
            assert!(error.to_string().contains("`expires_in`"), "{error}");
        }
    }

    #[test]
    fn an_oauth_error_body_is_a_rejection_with_its_code() {
        let error = answer(
            400,
            r#"{"error":"invalid_request","error_description":"redirect_uri sentinel mismatch"}"#,
        )
        .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Rejected);
        assert_eq!(error.oauth_error(), Some("invalid_request"));
        assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
        assert!(!error.to_string().contains("sentinel"), "{error}");
        // Also in a 2xx, as some servers send errors.
        let error = answer(201, r#"{"error":"invalid_client"}"#).unwrap_err();
        assert_eq!(error.oauth_error(), Some("invalid_client"));
    }

    #[test]
    fn a_redirect_or_an_html_page_is_an_unexpected_response() {
        let error = answer(302, "").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
        assert!(
            error.to_string().contains("redirects are not followed"),
            "{error}"
        );
        let error = answer(502, "<html><body>Bad gateway</body></html>").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::UnexpectedResponse);
        assert!(error.is_transient());
        let error = answer(201, "<html></html>").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidResponse);
    }
}
