//! The parts of reading any answer of the server: the JSON object or the acknowledgement of a
//! success, and the error a failure stands for (an OAuth error body, a vendor's error
//! envelope, or the status and a safe excerpt of whatever came instead), with its
//! `Retry-After`.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode, header::RETRY_AFTER};
use serde_json::{Map, Value};

use super::invalid;
use crate::{
    Error, ErrorKind,
    error::{sanitize, scrub},
};

/// How much of a server's text an error quotes.
const EXCERPT_CHARS: usize = 160;
/// How much of an OAuth error's description an error keeps.
const DESCRIPTION_CHARS: usize = 300;

/// The JSON object of a successful answer, or the error the answer stands for: an OAuth
/// error body (in any status, as some servers answer 200 with one), or the status and an
/// excerpt of whatever came instead. For endpoints whose success is not a token, such as
/// pushed authorization requests (RFC 9126) and device authorization (RFC 8628 section 3.2).
pub(crate) fn parse_object(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&str],
) -> Result<Map<String, Value>, Error> {
    let json = serde_json::from_slice::<Value>(body).ok();
    if !status.is_success() {
        return Err(failure(status, headers, body, json, secrets));
    }
    let Some(Value::Object(fields)) = json else {
        let detail = format!("the body is not a JSON object; {}", excerpt(body, secrets));
        return Err(invalid(&detail).with_status(status));
    };
    // Some servers answer 200 with an error body.
    if let Some(error) = oauth_error(&fields, secrets) {
        return Err(error.with_status(status));
    }
    Ok(fields)
}

/// Reads the answer of an endpoint whose success is its status alone, such as revocation
/// (RFC 7009 section 2.2: the body of a 200 carries nothing the client needs).
pub(crate) fn parse_acknowledgement(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&str],
) -> Result<(), Error> {
    if status.is_success() {
        return Ok(());
    }
    let json = serde_json::from_slice::<Value>(body).ok();
    Err(failure(status, headers, body, json, secrets))
}

/// The error an answer other than success stands for: an OAuth error body, or the status and
/// an excerpt of whatever came instead.
fn failure(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    json: Option<Value>,
    secrets: &[&str],
) -> Error {
    let retry_after = retry_after(headers);
    let error = match json {
        Some(Value::Object(fields)) => oauth_error(&fields, secrets),
        _ => None,
    };
    let error = error.unwrap_or_else(|| {
        let error = Error::new(ErrorKind::UnexpectedResponse);
        if status.is_redirection() {
            error.with_detail("redirects are not followed")
        } else {
            error.with_detail(excerpt(body, secrets))
        }
    });
    error.with_status(status).with_retry_after(retry_after)
}

/// Whether a token endpoint's answer demands a DPoP nonce it gives (RFC 9449 section 8): an
/// error `use_dpop_nonce` with a `DPoP-Nonce` header.
pub(crate) fn demands_dpop_nonce(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> bool {
    headers.contains_key("dpop-nonce") && is_error(status, body, "use_dpop_nonce")
}

/// Whether the server refused the client's authentication (RFC 6749 section 5.2): an error
/// `invalid_client`, which comes as a 400 or, when the client sent credentials in a header,
/// a 401.
pub(crate) fn is_invalid_client(status: StatusCode, body: &[u8]) -> bool {
    is_error(status, body, "invalid_client")
}

fn is_error(status: StatusCode, body: &[u8], code: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct ErrorBody<'a> {
        #[serde(borrow)]
        error: Option<std::borrow::Cow<'a, str>>,
    }
    (status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED)
        && serde_json::from_slice::<ErrorBody<'_>>(body)
            .is_ok_and(|body| body.error.as_deref() == Some(code))
}

/// Reads an RFC 6749 section 5.2 error body or a vendor error envelope.
fn oauth_error(fields: &Map<String, Value>, secrets: &[&str]) -> Option<Error> {
    let clean = |text: &str, max| sanitize(text, secrets, max);
    if let Some(code) = fields.get("error").and_then(Value::as_str) {
        let description = fields.get("error_description").and_then(Value::as_str);
        let uri = fields.get("error_uri").and_then(Value::as_str);
        return Some(Error::new(ErrorKind::Rejected).with_oauth(
            Some(clean(code, 64)),
            description.map(|text| clean(text, DESCRIPTION_CHARS)),
            uri.map(|text| clean(text, DESCRIPTION_CHARS)),
        ));
    }
    // {"meta": {..}, "errors": [{"httpcode": 400, "message": ".."}]}
    let first = fields.get("errors")?.as_array()?.first()?.as_object()?;
    let message = first.get("message").and_then(Value::as_str);
    let description = message.map_or_else(
        || "the server reported an error without a message".to_owned(),
        |text| clean(text, DESCRIPTION_CHARS),
    );
    Some(Error::new(ErrorKind::Rejected).with_oauth(None, Some(description), None))
}

/// A short, safe excerpt of a body: the text of an HTML page without its markup, or the start
/// of anything else.
fn excerpt(body: &[u8], secrets: &[&str]) -> String {
    if body.is_empty() {
        return "empty body".to_owned();
    }
    // Secrets go before anything is cut or stripped: a cut through a secret, or a tag
    // inside one, would leave part of it behind. The body is bounded by `max_body_size`.
    let text = scrub(&String::from_utf8_lossy(body), secrets);
    let text = if text.trim_start().starts_with('<') {
        strip_markup(&text)
    } else {
        text
    };
    format!("body: {}", sanitize(&text, secrets, EXCERPT_CHARS))
}

fn strip_markup(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));

        let later = SystemTime::now() + Duration::from_secs(3600);
        let date = httpdate::fmt_http_date(later);
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let parsed = retry_after(&headers).unwrap();
        assert!(parsed > Duration::from_secs(3500) && parsed <= Duration::from_secs(3600));

        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));

        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn excerpts_of_html_keep_the_text() {
        let page = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1></body></html>";
        assert_eq!(excerpt(page, &[]), "body: 502 Bad Gateway Bad Gateway");
        assert_eq!(excerpt(b"", &[]), "empty body");
    }
}
