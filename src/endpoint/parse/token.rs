//! Turning a token endpoint's answer into a [`Token`] or a typed [`Error`].
//!
//! Servers deviate from RFC 6749 in well-known ways; what is unambiguous is accepted (`expires_in`
//! as a string, `token_type` in any case, `scope` as an array). A field the token is usable
//! without (`expires_in`, `scope`, `id_token`) that cannot be read is left out with a warning.
//! The rest is rejected with an error that says what was wrong without repeating any secret;
//! when such a 2xx answer carried a refresh token, the error keeps it
//! ([`Error::salvaged`]), since the server may have retired the one the request presented.

use std::time::Duration;

use http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};

use super::{expires_in, invalid, optional_string, parse_object};
use crate::{Error, Token, dpop::Binding, error::sanitize};

/// The `token_type` of a token exchange's answer whose token is not an access token (RFC 8693
/// section 2.2.1), as the parsed token's extra fields keep it.
pub(crate) const NOT_APPLICABLE: &str = "N_A";

/// Parses the answer to a token request. `secrets` are scrubbed from any text an error quotes.
#[cfg(any(test, fuzzing))]
pub(crate) fn parse_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&str],
) -> Result<Token, Error> {
    parse_bound_response(status, headers, body, secrets, None)
}

/// Parses the answer to a token request sent with a DPoP proof signed by `dpop`'s key: a
/// token of `token_type` `DPoP` is bound to it.
pub(crate) fn parse_bound_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&str],
    dpop: Option<&Binding>,
) -> Result<Token, Error> {
    let fields = parse_object(status, headers, body, secrets)?;
    parse_token(fields, secrets, dpop, false).map_err(|error| error.with_status(status))
}

/// Parses the answer to a token exchange request (RFC 8693 section 2.2): a token response
/// whose `token_type` may also be `N_A` (the issued token is not an access token). Such a
/// token keeps `"token_type": "N_A"` among its [extra](Token::extra) fields, for the grant
/// to judge against its `issued_token_type`.
pub(crate) fn parse_exchange_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&str],
    dpop: Option<&Binding>,
) -> Result<Token, Error> {
    let fields = parse_object(status, headers, body, secrets)?;
    parse_token(fields, secrets, dpop, true).map_err(|error| error.with_status(status))
}

fn parse_token(
    mut fields: Map<String, Value>,
    secrets: &[&str],
    dpop: Option<&Binding>,
    not_applicable: bool,
) -> Result<Token, Error> {
    // Read before anything else can fail: a server that rotates refresh tokens has retired
    // the old one by now, so an answer that is unusable otherwise must still hand this one on.
    let refresh_token = optional_string(fields.remove("refresh_token"), "refresh_token")?;
    let id_token = ignore_malformed(
        optional_string(fields.remove("id_token"), "id_token"),
        "id_token",
    );
    let (access_token, binding) = match access_token(&mut fields, secrets, dpop, not_applicable) {
        Ok(usable) => usable,
        Err(error) => {
            return Err(match refresh_token {
                Some(refresh_token) => error.with_salvaged(salvage(refresh_token, id_token)),
                None => error,
            });
        }
    };

    let mut token = Token::bearer(access_token).bound(binding);
    // A lifetime that cannot be read (`"3600s"`, `true`) is unknown, as if the server left it
    // out: the token is used until a request with it gets a 401, which the layer answers with
    // one refresh. Reading it as zero instead would make every token stale on arrival, and a
    // server that always answers this way would be asked for a new token (and rotate its
    // refresh token) at every `min_refresh_interval`, which is a worse failure.
    if let Some(expires_in) =
        ignore_malformed(expires_in(fields.remove("expires_in")), "expires_in")
    {
        token = token.with_expires_in(expires_in);
    }
    if let Some(scopes) = ignore_malformed(scopes(fields.remove("scope")), "scope") {
        token = token.with_scopes(scopes);
    }
    if let Some(refresh_token) = refresh_token {
        token = token.with_refresh_token(refresh_token);
    }
    if let Some(id_token) = id_token {
        token = token.with_id_token(id_token);
    }
    Ok(token.with_extra(fields))
}

/// The access token of an answer, and the DPoP key it is bound to, or why the answer holds
/// none that may be sent.
fn access_token(
    fields: &mut Map<String, Value>,
    secrets: &[&str],
    dpop: Option<&Binding>,
    not_applicable: bool,
) -> Result<(String, Option<Binding>), Error> {
    let access_token = match fields.remove("access_token") {
        Some(Value::String(token)) if token.is_empty() => {
            return Err(invalid("`access_token` is empty"));
        }
        // It goes into an `Authorization` header, which takes visible ASCII only.
        Some(Value::String(token)) if !token.bytes().all(|b| (0x20..0x7f).contains(&b)) => {
            return Err(invalid(
                "`access_token` has characters not allowed in a header",
            ));
        }
        Some(Value::String(token)) => token,
        Some(_) => return Err(invalid("`access_token` is not a string")),
        None => return Err(invalid("`access_token` is missing")),
    };
    // RFC 6749 requires `token_type`; servers that omit it mean bearer. A server asked for a
    // DPoP-bound token may still issue a bearer one (RFC 9449 section 5). Any other type
    // stays an error: sent as a bearer token, it would be refused, or accepted by a resource
    // server that should have asked for the proof the type stands for.
    let mut binding = None;
    match fields.remove("token_type") {
        None | Some(Value::Null) => {}
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("bearer") => {}
        Some(Value::String(kind)) if kind.eq_ignore_ascii_case("dpop") => match dpop {
            Some(key) => binding = Some(key.clone()),
            None => {
                return Err(invalid(
                    "`token_type` is `DPoP`, but the token client has no DPoP key",
                ));
            }
        },
        Some(Value::String(kind)) if not_applicable && kind.eq_ignore_ascii_case("n_a") => {
            fields.insert("token_type".into(), Value::from(NOT_APPLICABLE));
        }
        Some(Value::String(kind)) => {
            let kind = sanitize(&kind, secrets, 32);
            return Err(invalid(&format!("unsupported `token_type` `{kind}`")));
        }
        Some(_) => return Err(invalid("`token_type` is not a string")),
    }
    Ok((access_token, binding))
}

/// What an answer without a usable access token leaves to keep: its refresh token and id
/// token, with an empty access token (the cache never puts one in a header) that is stale at
/// once.
fn salvage(refresh_token: String, id_token: Option<String>) -> Token {
    let mut token = Token::bearer(String::new())
        .with_expires_in(Duration::ZERO)
        .with_refresh_token(refresh_token);
    if let Some(id_token) = id_token {
        token = token.with_id_token(id_token);
    }
    token
}

/// The value of a field the token is usable without, or nothing when it cannot be read: a
/// warning names the field, never its value (it may be a secret).
fn ignore_malformed<T>(value: Result<Option<T>, Error>, field: &'static str) -> Option<T> {
    value.unwrap_or_else(|_| {
        tracing::warn!(field, "ignoring a malformed field of the token response");
        None
    })
}

/// A space-delimited string, or a JSON array of strings.
fn scopes(value: Option<Value>) -> Result<Option<Vec<String>>, Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.split_whitespace().map(Into::into).collect())),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(scope) => Ok(scope),
                _ => Err(invalid("`scope` has an entry that is not a string")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid("`scope` is neither a string nor a list")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn answer(body: &str) -> Result<Token, Error> {
        parse_response(StatusCode::OK, &HeaderMap::new(), body.as_bytes(), &[])
    }

    fn refresh_token_of(token: &Token) -> Option<&str> {
        token.refresh_token().map(crate::Secret::expose)
    }

    #[test]
    fn an_unknown_token_type_stays_an_error_that_keeps_the_refresh_token() {
        let body = r#"{"access_token":"sentinel-access","token_type":"mac","expires_in":3600,
            "refresh_token":"sentinel-refresh","id_token":"sentinel-id"}"#;
        let error = answer(body).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidResponse);
        assert!(error.to_string().contains("`mac`"), "{error}");
        let salvaged = error.salvaged().unwrap();
        assert_eq!(refresh_token_of(salvaged), Some("sentinel-refresh"));
        assert_eq!(
            salvaged.id_token().map(crate::Secret::expose),
            Some("sentinel-id")
        );
        // Never sent: the cache refuses an empty access token, and it is stale at once.
        assert_eq!(salvaged.access_token().expose(), "");
        assert_eq!(salvaged.expires_in(), Some(Duration::ZERO));
        assert_eq!(salvaged.scheme(), "Bearer");
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("sentinel"), "{shown}");
        assert!(shown.contains("salvaged: true"), "{shown}");
    }

    #[test]
    fn every_unusable_access_token_keeps_the_refresh_token_of_the_answer() {
        for unusable in [
            r#""token_type":"bearer""#,
            r#""access_token":"","token_type":"bearer""#,
            r#""access_token":42"#,
            r#""access_token":"a\nb""#,
            r#""access_token":"a","token_type":7"#,
            r#""access_token":"a","token_type":"N_A""#,
            // Asked without a DPoP key.
            r#""access_token":"a","token_type":"DPoP""#,
        ] {
            let body = format!(r#"{{{unusable},"refresh_token":"sentinel-refresh"}}"#);
            let error = answer(&body).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{body}");
            assert_eq!(error.status(), Some(StatusCode::OK), "{body}");
            let salvaged = error.salvaged().expect(&body);
            assert_eq!(
                refresh_token_of(salvaged),
                Some("sentinel-refresh"),
                "{body}"
            );
            assert!(salvaged.id_token().is_none());
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("sentinel"), "{shown}");
        }
    }

    #[test]
    fn a_token_exchange_answer_keeps_the_refresh_token_the_same_way() {
        let body = br#"{"access_token":"a","token_type":"mac","refresh_token":"sentinel-refresh"}"#;
        let error = parse_exchange_response(StatusCode::OK, &HeaderMap::new(), body, &[], None)
            .unwrap_err();
        assert_eq!(
            refresh_token_of(error.salvaged().unwrap()),
            Some("sentinel-refresh")
        );
    }

    #[test]
    fn nothing_is_salvaged_without_a_string_refresh_token() {
        for body in [
            r#"{"access_token":"a","token_type":"mac"}"#,
            r#"{"access_token":"a","token_type":"mac","refresh_token":""}"#,
            r#"{"access_token":"a","token_type":"mac","refresh_token":5}"#,
            r#"{"access_token":"a","refresh_token":5}"#,
        ] {
            let error = answer(body).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{body}");
            assert!(error.salvaged().is_none(), "{body}");
            assert!(!format!("{error:?}").contains("salvaged"), "{error:?}");
        }
        // Not a token answer at all: nothing in it is read.
        let error = parse_response(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":"invalid_grant","refresh_token":"r"}"#,
            &[],
        )
        .unwrap_err();
        assert!(error.salvaged().is_none());
    }

    #[test]
    fn benign_quirks_in_one_answer_leave_a_token_that_keeps_the_refresh_token() {
        let body = r#"{"access_token":"at","token_type":"Bearer","expires_in":"3600s","scope":5,
            "id_token":{"sub":"x"},"refresh_token":"sentinel-refresh","shape":[{"any":true}]}"#;
        let token = answer(body).unwrap();
        assert_eq!(token.access_token().expose(), "at");
        assert_eq!(refresh_token_of(&token), Some("sentinel-refresh"));
        assert_eq!(token.expires_in(), None);
        assert_eq!(token.scopes(), None);
        assert!(token.id_token().is_none());
        assert_eq!(token.extra()["shape"], serde_json::json!([{"any": true}]));
    }

    #[test]
    fn a_malformed_field_is_named_in_a_warning_and_its_value_never() {
        #[derive(Clone, Default)]
        struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let body = r#"{"access_token":"a","expires_in":"sentinel-1","scope":{"sentinel-2":1},
                "id_token":["sentinel-3"]}"#;
            answer(body).unwrap();
        });
        let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        for field in ["expires_in", "scope", "id_token"] {
            assert!(logged.contains(&format!("field=\"{field}\"")), "{logged}");
        }
        assert_eq!(logged.matches("WARN").count(), 3, "{logged}");
        assert!(!logged.contains("sentinel"), "{logged}");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn a_well_formed_token_response_parses_to_its_fields(
                access in "[!-~]{1,64}",
                refresh in proptest::option::of("[!-~]{1,64}"),
                expires_in in proptest::option::of(0_u32..=u32::MAX),
                scopes in proptest::collection::vec("[!-~]{1,12}", 0..4),
                as_string in any::<bool>(),
            ) {
                let mut body = serde_json::json!({"access_token": access, "token_type": "Bearer"});
                if let Some(refresh) = &refresh {
                    body["refresh_token"] = refresh.as_str().into();
                }
                if let Some(seconds) = expires_in {
                    body["expires_in"] = if as_string { seconds.to_string().into() } else { seconds.into() };
                }
                if !scopes.is_empty() {
                    body["scope"] = scopes.join(" ").into();
                }
                let body = serde_json::to_vec(&body).unwrap();
                let token = parse_response(StatusCode::OK, &HeaderMap::new(), &body, &[]).unwrap();
                prop_assert_eq!(token.access_token().expose(), access.as_str());
                prop_assert_eq!(token.refresh_token().map(|secret| secret.expose()), refresh.as_deref());
                // A lifetime beyond a century is cut to one, by design.
                let century = 100 * 365 * 86_400;
                let lifetime = expires_in.map(|s| Duration::from_secs(u64::from(s).min(century)));
                prop_assert_eq!(token.expires_in(), lifetime);
                let expected_scopes = (!scopes.is_empty()).then_some(scopes);
                prop_assert_eq!(token.scopes().map(<[String]>::to_vec), expected_scopes);
            }
        }
    }
}
