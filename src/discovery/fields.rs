//! The rules the members of a metadata document are read by: their JSON types, and the rule
//! for endpoint URLs, which receive secrets.

use http::Uri;
use serde_json::{Map, Value};

use crate::{Error, ErrorKind, origin::secure_uri};

/// The endpoints of `mtls_endpoint_aliases` (RFC 8705 section 5) that the crate uses.
#[derive(Clone, Debug)]
pub(super) struct Aliases {
    pub(super) token_endpoint: Option<Endpoint>,
    pub(super) revocation_endpoint: Option<Endpoint>,
    pub(super) device_authorization_endpoint: Option<Endpoint>,
    pub(super) pushed_authorization_request_endpoint: Option<Endpoint>,
    pub(super) introspection_endpoint: Option<Endpoint>,
}

/// An endpoint's URL as the document wrote it, and parsed for sending.
#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    pub(super) text: String,
    pub(super) uri: Uri,
}

pub(super) fn invalid(detail: &str) -> Error {
    Error::new(ErrorKind::InvalidResponse).with_detail(detail)
}

pub(super) fn string(fields: &mut Map<String, Value>, name: &str) -> Result<Option<String>, Error> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(&format!("`{name}` is not a string"))),
    }
}

pub(super) fn boolean(fields: &mut Map<String, Value>, name: &str) -> Result<bool, Error> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(value)) => Ok(value),
        Some(_) => Err(invalid(&format!("`{name}` is not a boolean"))),
    }
}

/// Reads `mtls_endpoint_aliases`, whose URLs pass the same rule as the document's own.
pub(super) fn aliases(
    fields: &mut Map<String, Value>,
    http: Http,
) -> Result<Option<Aliases>, Error> {
    let mut aliases = match fields.remove("mtls_endpoint_aliases") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(aliases)) => aliases,
        Some(_) => return Err(invalid("`mtls_endpoint_aliases` is not a JSON object")),
    };
    let mut alias = |name: &str| {
        endpoint(&mut aliases, name, http)
            .map_err(|_| invalid(&format!("`mtls_endpoint_aliases` has a bad `{name}`")))
    };
    Ok(Some(Aliases {
        token_endpoint: alias("token_endpoint")?,
        revocation_endpoint: alias("revocation_endpoint")?,
        device_authorization_endpoint: alias("device_authorization_endpoint")?,
        pushed_authorization_request_endpoint: alias("pushed_authorization_request_endpoint")?,
        introspection_endpoint: alias("introspection_endpoint")?,
    }))
}

pub(super) fn strings(fields: &mut Map<String, Value>, name: &str) -> Result<Vec<String>, Error> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(text) => Ok(text),
                _ => Err(invalid(&format!(
                    "`{name}` has an entry that is not a string"
                ))),
            })
            .collect(),
        Some(_) => Err(invalid(&format!("`{name}` is not a list"))),
    }
}

/// Where a document's endpoints may be plain `http`.
#[derive(Clone, Copy)]
pub(super) struct Http {
    /// Anywhere: the user opted in to plain http.
    anywhere: bool,
    /// On loopback: the issuer itself is on this machine.
    loopback: bool,
}

impl Http {
    /// The rule for the document of `issuer`: plain `http` anywhere if the user opted in
    /// (`plain_http`), on loopback if the issuer is there too. A remote issuer naming a
    /// plain-http loopback endpoint would have the client post its credentials to whatever
    /// listens on this machine.
    pub(super) fn new(plain_http: bool, issuer: &str) -> Self {
        Self {
            anywhere: plain_http,
            loopback: plain_http || issuer_is_loopback(issuer),
        }
    }
}

fn issuer_is_loopback(issuer: &str) -> bool {
    url::Url::parse(issuer)
        .ok()
        .and_then(|url| url.host_str().map(crate::origin::is_loopback))
        .unwrap_or(false)
}

pub(super) fn endpoint(
    fields: &mut Map<String, Value>,
    name: &str,
    http: Http,
) -> Result<Option<Endpoint>, Error> {
    let Some(text) = string(fields, name)? else {
        return Ok(None);
    };
    let refused = || {
        invalid(&format!(
            "`{name}` is not an https URL (or http on loopback, for an issuer on loopback)"
        ))
    };
    let uri = secure_uri(&text, name, http.anywhere).map_err(|_| refused())?;
    if uri.scheme_str() == Some("http") && !http.loopback {
        return Err(refused());
    }
    Ok(Some(Endpoint { text, uri }))
}

#[cfg(test)]
mod tests {
    use crate::{ErrorKind, ServerMetadata};

    #[test]
    fn an_endpoint_that_could_leak_secrets_refuses_the_document() {
        let json = br#"{"issuer":"https://as.example","token_endpoint":"http://as.example/t"}"#;
        let error = ServerMetadata::from_json("https://as.example", json).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidResponse);
        assert!(error.to_string().contains("token_endpoint"), "{error}");
    }

    #[test]
    fn a_remote_issuer_may_not_name_a_plain_http_endpoint_on_loopback() {
        for endpoint in ["http://127.0.0.1:6379/token", "http://localhost/token"] {
            let json =
                format!(r#"{{"issuer":"https://as.example","token_endpoint":"{endpoint}"}}"#);
            let error =
                ServerMetadata::from_json("https://as.example", json.as_bytes()).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidResponse, "{endpoint}");
            assert!(error.to_string().contains("token_endpoint"), "{error}");
        }
        let aliased = br#"{"issuer":"https://as.example","mtls_endpoint_aliases":
            {"token_endpoint":"http://127.0.0.1/token"}}"#;
        assert!(ServerMetadata::from_json("https://as.example", aliased).is_err());
    }

    #[test]
    fn an_issuer_on_loopback_may_name_plain_http_endpoints_on_loopback() {
        let json =
            br#"{"issuer":"http://127.0.0.1:4000","token_endpoint":"http://127.0.0.1:4000/token"}"#;
        let metadata = ServerMetadata::from_json("http://127.0.0.1:4000", json).unwrap();
        assert_eq!(
            metadata.token_endpoint(),
            Some("http://127.0.0.1:4000/token")
        );
    }

    #[test]
    fn malformed_documents_are_invalid_responses() {
        for json in [
            &b"<html>"[..],
            br#"[]"#,
            br#"{"token_endpoint":"https://as.example/t"}"#,
            br#"{"issuer":"https://as.example","token_endpoint":7}"#,
            br#"{"issuer":"https://as.example","grant_types_supported":"x"}"#,
            br#"{"issuer":"https://as.example","authorization_response_iss_parameter_supported":"yes"}"#,
        ] {
            let error = ServerMetadata::from_json("https://as.example", json).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::InvalidResponse);
        }
    }
}
