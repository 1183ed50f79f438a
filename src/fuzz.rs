//! Entry points for the fuzz targets in `fuzz/`, and the tests that run their seed corpora.
//!
//! Not part of the public API: compiled only under `--cfg fuzzing`, which cargo-fuzz passes
//! (and in this crate's own tests), hidden from the documentation, free to change in any
//! release. Each function takes the fuzzer's bytes, runs one parser of the crate, and panics
//! when an invariant breaks.

// A harness reports a broken invariant by panicking; that is its whole job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::{Engine, engine::general_purpose::STANDARD};
use http::{HeaderMap, HeaderValue, StatusCode, header::RETRY_AFTER};

use crate::{
    ClientAuth, Error, ErrorKind, TokenRequest, endpoint::parse::parse_response,
    middleware::challenge,
};

/// The client secret of the fuzzed requests. It has characters that form encoding changes, and
/// none that any fixed text of the crate contains.
const CLIENT_SECRET: &str = "Q7+mZ/vR9=kT~fz";
const CLIENT_ID: &str = "fuzz-client";
const REFRESH_TOKEN: &str = "Rt.8xW_k3-NqPz";

/// Bytes 0x01 to 0x04 of a fuzzed body stand for the secrets of the request, in the forms a
/// server that echoes the request would show: the client secret, its form encoding, the Basic
/// credentials, and the refresh token.
fn secret_forms() -> [String; 4] {
    let encoded: String = form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect();
    let credentials = STANDARD.encode(format!("{CLIENT_ID}:{encoded}"));
    [
        CLIENT_SECRET.to_owned(),
        encoded,
        credentials,
        REFRESH_TOKEN.to_owned(),
    ]
}

fn expand_markers(body: &[u8]) -> Vec<u8> {
    let forms = secret_forms();
    let mut expanded = Vec::with_capacity(body.len());
    for &byte in body {
        match byte {
            1..=4 => expanded.extend_from_slice(forms[usize::from(byte - 1)].as_bytes()),
            _ => expanded.push(byte),
        }
    }
    expanded
}

/// Parses `data` as the body of a 200 answer to a token request.
pub fn token_response(data: &[u8]) {
    check_answer(StatusCode::OK, &HeaderMap::new(), data);
}

/// Parses `data` as an answer that may be an error: the first byte picks the status, the bytes
/// up to the first newline are `Retry-After`, the rest is the body.
pub fn error_response(data: &[u8]) {
    const STATUSES: [u16; 10] = [400, 401, 403, 404, 429, 500, 502, 503, 200, 302];
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let status = StatusCode::from_u16(STATUSES[usize::from(first) % STATUSES.len()]).unwrap();
    let (retry_after, body) = match rest.iter().position(|&byte| byte == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&[][..], rest),
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(retry_after) {
        headers.insert(RETRY_AFTER, value);
    }
    check_answer(status, &headers, body);
}

fn check_answer(status: StatusCode, headers: &HeaderMap, body: &[u8]) {
    let auth = ClientAuth::basic(CLIENT_ID, CLIENT_SECRET);
    let request = TokenRequest::new("refresh_token").secret_param("refresh_token", REFRESH_TOKEN);
    let secrets = request.secrets(&auth, &presented(&auth));
    let secrets: Vec<&str> = secrets.iter().map(|secret| secret.as_str()).collect();
    let body = expand_markers(body);

    match parse_response(status, headers, &body, &secrets) {
        Ok(token) => {
            assert!(status.is_success(), "a {status} answer became a token");
            let access = token.access_token().expose();
            // The cache puts it in a header; what the parser accepts must fit there.
            let header = HeaderValue::from_str(&format!("Bearer {access}"));
            assert!(
                !access.is_empty() && header.is_ok(),
                "unusable token accepted"
            );
            let century = std::time::Duration::from_secs(100 * 365 * 86_400);
            assert!(
                token
                    .expires_in()
                    .is_none_or(|lifetime| lifetime <= century)
            );
        }
        Err(error) => check_error(&error, status),
    }
}

fn check_error(error: &Error, status: StatusCode) {
    let display = error.to_string();
    let shown = format!("{display} {error:?}");
    for form in secret_forms() {
        assert!(!shown.contains(&form), "a secret shows: {shown}");
    }
    // Error text goes into log lines; a control character could forge one.
    assert!(
        !display.chars().any(char::is_control),
        "control character: {display:?}"
    );
    assert!(display.chars().count() < 1024, "unbounded error text");
    if status.is_success() {
        assert!(matches!(
            error.kind(),
            ErrorKind::InvalidResponse | ErrorKind::Rejected
        ));
    } else {
        assert!(matches!(
            error.kind(),
            ErrorKind::UnexpectedResponse | ErrorKind::Rejected
        ));
        assert_eq!(error.status(), Some(status));
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            assert!(error.is_transient(), "{status} is not transient");
        }
    }
}

/// Parses `data` as a `WWW-Authenticate` value, and checks that what it parsed, written out
/// again, parses to the same challenges.
pub fn www_authenticate(data: &[u8]) {
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::WWW_AUTHENTICATE, value);
        challenge::new_token_may_help(&headers, false);
        challenge::new_token_may_help(&headers, true);
        challenge::demands_dpop_nonce(&headers);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(challenges) = challenge::parse(text) else {
        return;
    };
    let written = write_challenges(&challenges);
    let reparsed = challenge::parse(&written)
        .unwrap_or_else(|| panic!("{text:?} was written as {written:?}, which does not parse"));
    assert_eq!(challenges, reparsed, "{text:?} was written as {written:?}");
}

/// Writes challenges in the canonical form: every parameter value quoted.
pub(crate) fn write_challenges(challenges: &[challenge::Challenge<'_>]) -> String {
    let written: Vec<String> = challenges
        .iter()
        .map(|challenge| {
            let mut text = challenge.scheme.to_owned();
            if let Some(token68) = challenge.token68 {
                text.push(' ');
                text.push_str(token68);
            }
            let params: Vec<String> = challenge
                .params
                .iter()
                .map(|(name, value)| {
                    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
                    format!("{name}=\"{escaped}\"")
                })
                .collect();
            if !params.is_empty() {
                text.push(' ');
                text.push_str(&params.join(", "));
            }
            text
        })
        .collect();
    written.join(", ")
}

/// Encodes a token request made of `data`, decodes it as a form and as Basic credentials, and
/// checks that every field comes back as it went in.
///
/// The first byte picks the client authentication; the rest, split at NUL bytes, is the client
/// id, the secret, the grant type, then names and values. Every third field is a secret one.
pub fn form(data: &[u8]) {
    let Some((&method, rest)) = data.split_first() else {
        return;
    };
    let fields: Vec<String> = rest
        .split(|&byte| byte == 0)
        .map(|field| String::from_utf8_lossy(field).into_owned())
        .collect();
    let field = |i: usize| fields.get(i).cloned().unwrap_or_default();
    let (client_id, secret, grant_type) = (field(0), field(1), field(2));
    let auth = match method % 3 {
        0 => ClientAuth::none(client_id.clone()),
        1 => ClientAuth::post(client_id.clone(), secret.clone()),
        _ => ClientAuth::basic(client_id.clone(), secret.clone()),
    };
    let mut request = TokenRequest::new(grant_type.clone());
    let mut expected = vec![("grant_type".to_owned(), grant_type)];
    for (i, pair) in fields.get(3..).unwrap_or_default().chunks(2).enumerate() {
        let (name, value) = (pair[0].clone(), pair.get(1).cloned().unwrap_or_default());
        request = if i % 3 == 2 {
            request.secret_param(name.clone(), value.clone())
        } else {
            request.param(name.clone(), value.clone())
        };
        expected.push((name, value));
    }
    match method % 3 {
        0 => expected.push(("client_id".to_owned(), client_id.clone())),
        1 => {
            expected.push(("client_id".to_owned(), client_id.clone()));
            expected.push(("client_secret".to_owned(), secret.clone()));
        }
        _ => {}
    }

    let presented = presented(&auth);
    let body = request.encode(&auth, &presented);
    let decoded: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    assert_eq!(decoded, expected, "form body {:?}", body.as_str());

    match auth.header(&presented) {
        Some(header) => {
            assert!(header.is_sensitive());
            let (id, decoded_secret) = decode_basic(&header);
            assert_eq!(
                (id.as_str(), decoded_secret.as_str()),
                (&*client_id, &*secret)
            );
        }
        None => assert!(method % 3 != 2, "Basic authentication without a header"),
    }
}

/// Reads `data` as a saved token (a `FileStore` file, an opened fleet value); what it reads,
/// saved again, must read back the same.
pub fn saved(data: &[u8]) {
    let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    let Ok(token) = crate::saved::decode(data, now) else {
        return;
    };
    let json = serde_json::to_vec(&crate::saved::Saving::new(&token, now)).unwrap();
    let again = crate::saved::decode(&json, now).unwrap();
    assert_eq!(again.access_token().expose(), token.access_token().expose());
    assert_eq!(again.expires_in(), token.expires_in());
    assert_eq!(again.scopes(), token.scopes());
    assert_eq!(
        again.refresh_token().map(|secret| secret.expose()),
        token.refresh_token().map(|secret| secret.expose())
    );
}

/// What `auth` presents in one request to `https://auth.example/token`, for methods that
/// need no reading.
pub(crate) fn presented(auth: &ClientAuth) -> crate::endpoint::Presented {
    auth.present_now("https://auth.example/token")
        .unwrap()
        .unwrap()
}

/// Splits a Basic `Authorization` header into the client id and secret it carries.
pub(crate) fn decode_basic(header: &HeaderValue) -> (String, String) {
    let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
    let credentials = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
    let (id, secret) = credentials.split_once(':').unwrap();
    // Each half is form-urlencoded, so it has no raw `=` or `&`: it parses as one bare name.
    let decode = |half: &str| {
        form_urlencoded::parse(half.as_bytes())
            .next()
            .map(|(name, _)| name.into_owned())
            .unwrap_or_default()
    };
    (decode(id), decode(secret))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Runs every seed of `target`, naming each first so a failure says which.
    fn run_seeds(target: &str, harness: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds")
            .join(target);
        let mut seeds: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        seeds.sort();
        assert!(seeds.len() >= 8, "{target} has only {} seeds", seeds.len());
        for seed in seeds {
            println!("{}", seed.display());
            harness(&std::fs::read(&seed).unwrap());
        }
    }

    #[test]
    fn token_response_seeds_hold_every_invariant() {
        run_seeds("token_response", token_response);
    }

    #[test]
    fn error_response_seeds_hold_every_invariant() {
        run_seeds("error_response", error_response);
    }

    #[test]
    fn www_authenticate_seeds_hold_every_invariant() {
        run_seeds("www_authenticate", www_authenticate);
    }

    #[test]
    fn saved_seeds_hold_every_invariant() {
        run_seeds("saved", saved);
    }

    #[test]
    fn form_seeds_hold_every_invariant() {
        run_seeds("form", form);
    }

    #[test]
    #[should_panic(expected = "a secret shows")]
    fn the_harness_sees_a_secret_that_escapes_scrubbing() {
        // The oracle must be able to fail: an error that quotes a secret is caught.
        let leaked = Error::new(ErrorKind::UnexpectedResponse)
            .with_status(StatusCode::BAD_GATEWAY)
            .with_detail(format!("body: {CLIENT_SECRET}"));
        check_error(&leaked, StatusCode::BAD_GATEWAY);
    }
}
