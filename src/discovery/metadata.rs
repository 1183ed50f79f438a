//! The authorization server's metadata document (RFC 8414, OpenID Connect Discovery 1.0):
//! where it lives, and what the crate reads from it.

use std::fmt;

use http::{HeaderMap, StatusCode, Uri};
use serde_json::{Map, Value};
use url::Url;

use crate::{
    Error, ErrorKind,
    error::sanitize,
    origin::{secure_uri, secure_url},
};

/// The metadata of an authorization server: its issuer identifier and endpoints, read from
/// `/.well-known/oauth-authorization-server` (RFC 8414) or OpenID Connect's
/// `/.well-known/openid-configuration` by a [`Discovery`](crate::Discovery).
///
/// Its `issuer` is the one the discovery was configured with, byte for byte, and every
/// endpoint it names passed the rule for URLs that receive secrets (`https`, or `http` on
/// loopback): a document that breaks either is refused whole.
///
/// ```
/// use tower_oauth2::ServerMetadata;
///
/// let json = br#"{
///     "issuer": "https://auth.example.com",
///     "token_endpoint": "https://auth.example.com/oauth2/token",
///     "revocation_endpoint": "https://auth.example.com/oauth2/revoke",
///     "authorization_response_iss_parameter_supported": true
/// }"#;
/// let metadata = ServerMetadata::from_json("https://auth.example.com", json)?;
/// assert_eq!(metadata.token_endpoint(), Some("https://auth.example.com/oauth2/token"));
/// assert!(metadata.authorization_response_iss_parameter_supported());
/// assert_eq!(metadata.device_authorization_endpoint(), None);
///
/// // A document that names another issuer is refused.
/// let error = ServerMetadata::from_json("https://auth.example.com/", json).unwrap_err();
/// assert_eq!(error.kind(), tower_oauth2::ErrorKind::IssuerMismatch);
/// # Ok::<_, tower_oauth2::Error>(())
/// ```
#[derive(Clone)]
pub struct ServerMetadata {
    issuer: String,
    token_endpoint: Option<Endpoint>,
    authorization_endpoint: Option<Endpoint>,
    revocation_endpoint: Option<Endpoint>,
    device_authorization_endpoint: Option<Endpoint>,
    pushed_authorization_request_endpoint: Option<Endpoint>,
    introspection_endpoint: Option<Endpoint>,
    jwks_uri: Option<String>,
    iss_parameter_supported: bool,
    require_pushed_authorization_requests: bool,
    certificate_bound_access_tokens: bool,
    mtls_endpoint_aliases: Option<Aliases>,
    grant_types_supported: Vec<String>,
    token_endpoint_auth_methods_supported: Vec<String>,
    token_endpoint_auth_signing_alg_values_supported: Vec<String>,
}

/// The endpoints of `mtls_endpoint_aliases` (RFC 8705 section 5) that the crate uses.
#[derive(Clone, Debug)]
struct Aliases {
    token_endpoint: Option<Endpoint>,
    revocation_endpoint: Option<Endpoint>,
    device_authorization_endpoint: Option<Endpoint>,
    pushed_authorization_request_endpoint: Option<Endpoint>,
    introspection_endpoint: Option<Endpoint>,
}

/// An endpoint's URL as the document wrote it, and parsed for sending.
#[derive(Clone, Debug)]
struct Endpoint {
    text: String,
    uri: Uri,
}

impl ServerMetadata {
    /// Reads a metadata document fetched elsewhere, for the server whose issuer identifier is
    /// `issuer`. Endpoints must be `https`, or `http` on loopback.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::IssuerMismatch`] when the document's `issuer` is not `issuer`, byte for
    ///   byte (RFC 8414 section 3.3: otherwise another server could name itself).
    /// - [`ErrorKind::InvalidResponse`] when it is not a JSON object, has no `issuer`, or a
    ///   member has the wrong type or an endpoint URL that could leak secrets.
    pub fn from_json(issuer: &str, json: &[u8]) -> Result<Self, Error> {
        Self::parse(issuer, json, false)
    }

    pub(crate) fn parse(issuer: &str, json: &[u8], plain_http: bool) -> Result<Self, Error> {
        let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(json) else {
            return Err(invalid("the metadata is not a JSON object"));
        };
        let named = match fields.remove("issuer") {
            Some(Value::String(named)) => named,
            _ => return Err(invalid("the metadata has no `issuer` string")),
        };
        if named != issuer {
            return Err(Error::new(ErrorKind::IssuerMismatch).with_detail(format!(
                "the metadata's issuer is {:?}, not the configured {:?}",
                sanitize(&named, &[], 200),
                sanitize(issuer, &[], 200),
            )));
        }
        // A remote issuer naming a plain-http loopback endpoint would have the client post its
        // credentials to whatever listens on this machine.
        let http = Http {
            anywhere: plain_http,
            loopback: plain_http || issuer_is_loopback(issuer),
        };
        let mut endpoint = |name: &str| endpoint(&mut fields, name, http);
        let token_endpoint = endpoint("token_endpoint")?;
        let authorization_endpoint = endpoint("authorization_endpoint")?;
        let revocation_endpoint = endpoint("revocation_endpoint")?;
        let device_authorization_endpoint = endpoint("device_authorization_endpoint")?;
        let pushed_authorization_request_endpoint =
            endpoint("pushed_authorization_request_endpoint")?;
        let introspection_endpoint = endpoint("introspection_endpoint")?;
        let jwks_uri = string(&mut fields, "jwks_uri")?;
        let iss_parameter_supported = boolean(
            &mut fields,
            "authorization_response_iss_parameter_supported",
        )?;
        let require_pushed_authorization_requests =
            boolean(&mut fields, "require_pushed_authorization_requests")?;
        let certificate_bound_access_tokens =
            boolean(&mut fields, "tls_client_certificate_bound_access_tokens")?;
        let mtls_endpoint_aliases = aliases(&mut fields, http)?;
        Ok(Self {
            issuer: named,
            token_endpoint,
            authorization_endpoint,
            revocation_endpoint,
            device_authorization_endpoint,
            pushed_authorization_request_endpoint,
            introspection_endpoint,
            jwks_uri,
            iss_parameter_supported,
            require_pushed_authorization_requests,
            certificate_bound_access_tokens,
            mtls_endpoint_aliases,
            grant_types_supported: strings(&mut fields, "grant_types_supported")?,
            token_endpoint_auth_methods_supported: strings(
                &mut fields,
                "token_endpoint_auth_methods_supported",
            )?,
            token_endpoint_auth_signing_alg_values_supported: strings(
                &mut fields,
                "token_endpoint_auth_signing_alg_values_supported",
            )?,
        })
    }

    /// Returns the issuer identifier: the configured one, which the document repeated.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Returns the token endpoint's URL (`token_endpoint`).
    pub fn token_endpoint(&self) -> Option<&str> {
        self.token_endpoint.as_ref().map(|e| e.text.as_str())
    }

    /// Returns the authorization endpoint's URL (`authorization_endpoint`).
    pub fn authorization_endpoint(&self) -> Option<&str> {
        self.authorization_endpoint
            .as_ref()
            .map(|e| e.text.as_str())
    }

    /// Returns the revocation endpoint's URL (`revocation_endpoint`, RFC 7009), for
    /// [`Revocation::new`](crate::Revocation::new).
    pub fn revocation_endpoint(&self) -> Option<&str> {
        self.revocation_endpoint.as_ref().map(|e| e.text.as_str())
    }

    /// Returns the device authorization endpoint's URL (`device_authorization_endpoint`,
    /// RFC 8628).
    pub fn device_authorization_endpoint(&self) -> Option<&str> {
        self.device_authorization_endpoint
            .as_ref()
            .map(|e| e.text.as_str())
    }

    /// Returns the pushed authorization request endpoint's URL
    /// (`pushed_authorization_request_endpoint`, RFC 9126).
    pub fn pushed_authorization_request_endpoint(&self) -> Option<&str> {
        self.pushed_authorization_request_endpoint
            .as_ref()
            .map(|e| e.text.as_str())
    }

    /// Returns the introspection endpoint's URL (`introspection_endpoint`, RFC 7662).
    pub fn introspection_endpoint(&self) -> Option<&str> {
        self.introspection_endpoint
            .as_ref()
            .map(|e| e.text.as_str())
    }

    /// Returns where the server publishes its public keys (`jwks_uri`).
    pub fn jwks_uri(&self) -> Option<&str> {
        self.jwks_uri.as_deref()
    }

    /// Returns whether the server names itself in every authorization response (`iss`, RFC
    /// 9207). When it does, a grant made by
    /// [`AuthorizationCode::discover`](crate::grant::AuthorizationCode::discover) checks it.
    pub fn authorization_response_iss_parameter_supported(&self) -> bool {
        self.iss_parameter_supported
    }

    /// Returns whether the server accepts authorization requests only through its pushed
    /// authorization request endpoint (`require_pushed_authorization_requests`, RFC 9126
    /// section 5). When it does, a grant made by
    /// [`AuthorizationCode::discover`](crate::grant::AuthorizationCode::discover) pushes them.
    pub fn require_pushed_authorization_requests(&self) -> bool {
        self.require_pushed_authorization_requests
    }

    /// Returns whether the server binds access tokens to the client certificate they were
    /// requested with (`tls_client_certificate_bound_access_tokens`, RFC 8705 section 3.3).
    pub fn tls_client_certificate_bound_access_tokens(&self) -> bool {
        self.certificate_bound_access_tokens
    }

    /// Returns whether the document has `mtls_endpoint_aliases` (RFC 8705 section 5): other
    /// URLs of some endpoints, for clients that present a certificate.
    pub fn has_mtls_endpoint_aliases(&self) -> bool {
        self.mtls_endpoint_aliases.is_some()
    }

    /// Returns the metadata as a client that presents a TLS client certificate uses it: each
    /// endpoint that `mtls_endpoint_aliases` names (token, revocation, device authorization,
    /// pushed authorization request, introspection) replaces the plain one, as RFC 8705
    /// section 5 asks of such clients. Endpoints it does not name, and the authorization
    /// endpoint, which the user's browser visits, stay as they are.
    ///
    /// A [`Discovery`](crate::Discovery) set to [`mutual_tls`](crate::Discovery::mutual_tls)
    /// hands out metadata made by this.
    ///
    /// ```
    /// use tower_oauth2::ServerMetadata;
    ///
    /// let json = br#"{
    ///     "issuer": "https://auth.example.com",
    ///     "token_endpoint": "https://auth.example.com/token",
    ///     "revocation_endpoint": "https://auth.example.com/revoke",
    ///     "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.auth.example.com/token"}
    /// }"#;
    /// let metadata = ServerMetadata::from_json("https://auth.example.com", json)?.for_mutual_tls();
    /// assert_eq!(metadata.token_endpoint(), Some("https://mtls.auth.example.com/token"));
    /// assert_eq!(metadata.revocation_endpoint(), Some("https://auth.example.com/revoke"));
    /// # Ok::<_, tower_oauth2::Error>(())
    /// ```
    #[must_use]
    pub fn for_mutual_tls(&self) -> Self {
        let mut metadata = self.clone();
        let Some(aliases) = &self.mtls_endpoint_aliases else {
            return metadata;
        };
        let pairs = [
            (&mut metadata.token_endpoint, &aliases.token_endpoint),
            (
                &mut metadata.revocation_endpoint,
                &aliases.revocation_endpoint,
            ),
            (
                &mut metadata.device_authorization_endpoint,
                &aliases.device_authorization_endpoint,
            ),
            (
                &mut metadata.pushed_authorization_request_endpoint,
                &aliases.pushed_authorization_request_endpoint,
            ),
            (
                &mut metadata.introspection_endpoint,
                &aliases.introspection_endpoint,
            ),
        ];
        for (endpoint, alias) in pairs {
            if let Some(alias) = alias {
                *endpoint = Some(alias.clone());
            }
        }
        metadata
    }

    /// Returns the grant types the server supports (`grant_types_supported`), empty when the
    /// document does not say.
    pub fn grant_types_supported(&self) -> &[String] {
        &self.grant_types_supported
    }

    /// Returns the client authentication methods the token endpoint supports
    /// (`token_endpoint_auth_methods_supported`), empty when the document does not say.
    pub fn token_endpoint_auth_methods_supported(&self) -> &[String] {
        &self.token_endpoint_auth_methods_supported
    }

    /// Returns the algorithms the token endpoint accepts for client assertions
    /// (`token_endpoint_auth_signing_alg_values_supported`), empty when the document does not
    /// say.
    pub fn token_endpoint_auth_signing_alg_values_supported(&self) -> &[String] {
        &self.token_endpoint_auth_signing_alg_values_supported
    }

    pub(crate) fn token_uri(&self) -> Option<&Uri> {
        self.token_endpoint.as_ref().map(|e| &e.uri)
    }
}

impl fmt::Debug for ServerMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerMetadata")
            .field("issuer", &self.issuer)
            .field("token_endpoint", &self.token_endpoint())
            .field("authorization_endpoint", &self.authorization_endpoint())
            .field("revocation_endpoint", &self.revocation_endpoint())
            .field(
                "device_authorization_endpoint",
                &self.device_authorization_endpoint(),
            )
            .field(
                "pushed_authorization_request_endpoint",
                &self.pushed_authorization_request_endpoint(),
            )
            .field(
                "require_pushed_authorization_requests",
                &self.require_pushed_authorization_requests,
            )
            .field(
                "mtls_endpoint_aliases",
                &self.mtls_endpoint_aliases.is_some(),
            )
            .finish_non_exhaustive()
    }
}

/// The two places a server's metadata may be: RFC 8414's first, OpenID Connect's second.
///
/// RFC 8414 section 3.1 inserts the well-known segment between the origin and the issuer's
/// path (`https://as.example/tenant` → `https://as.example/.well-known/oauth-authorization-server/tenant`);
/// OpenID Connect Discovery section 4 appends it to the issuer. A trailing `/` of the issuer
/// is dropped first in both.
pub(crate) fn well_known(issuer: &str, plain_http: bool) -> Result<[Uri; 2], Error> {
    let url = secure_url(issuer, "the issuer", plain_http)?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(Error::config(
            "the issuer must have no query, fragment or user info (RFC 8414 section 2)",
        ));
    }
    let path = url.path().trim_end_matches('/');
    let origin = origin(&url);
    let rfc8414 = format!("{origin}/.well-known/oauth-authorization-server{path}");
    let oidc = format!("{origin}{path}/.well-known/openid-configuration");
    let uri = |text: &str| secure_uri(text, "the metadata URL", plain_http);
    Ok([uri(&rfc8414)?, uri(&oidc)?])
}

fn origin(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// Reads the answer of one well-known URL: `None` for a 404, the one answer that sends
/// discovery on to the next URL.
pub(crate) fn read(
    issuer: &str,
    plain_http: bool,
) -> impl FnOnce(StatusCode, &HeaderMap, &[u8], &[&str]) -> Result<Option<ServerMetadata>, Error> {
    move |status, headers, body, secrets| {
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(crate::endpoint::parse::parse_acknowledgement(
                status, headers, body, secrets,
            )
            .err()
            .unwrap_or_else(|| Error::new(ErrorKind::UnexpectedResponse))
            .with_status(status));
        }
        ServerMetadata::parse(issuer, body, plain_http)
            .map(Some)
            .map_err(|error| error.with_status(status))
    }
}

fn invalid(detail: &str) -> Error {
    Error::new(ErrorKind::InvalidResponse).with_detail(detail)
}

fn string(fields: &mut Map<String, Value>, name: &str) -> Result<Option<String>, Error> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(&format!("`{name}` is not a string"))),
    }
}

fn boolean(fields: &mut Map<String, Value>, name: &str) -> Result<bool, Error> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(value)) => Ok(value),
        Some(_) => Err(invalid(&format!("`{name}` is not a boolean"))),
    }
}

/// Reads `mtls_endpoint_aliases`, whose URLs pass the same rule as the document's own.
fn aliases(fields: &mut Map<String, Value>, http: Http) -> Result<Option<Aliases>, Error> {
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

fn strings(fields: &mut Map<String, Value>, name: &str) -> Result<Vec<String>, Error> {
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
struct Http {
    /// Anywhere: the user opted in to plain http.
    anywhere: bool,
    /// On loopback: the issuer itself is on this machine.
    loopback: bool,
}

fn issuer_is_loopback(issuer: &str) -> bool {
    url::Url::parse(issuer)
        .ok()
        .and_then(|url| url.host_str().map(crate::origin::is_loopback))
        .unwrap_or(false)
}

fn endpoint(
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
    use super::*;

    #[test]
    fn well_known_urls_insert_rfc8414_before_the_path_and_append_oidc_after_it() {
        let urls = |issuer| {
            well_known(issuer, false)
                .unwrap()
                .map(|uri| uri.to_string())
        };
        assert_eq!(
            urls("https://as.example"),
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration",
            ]
        );
        assert_eq!(urls("https://as.example/"), urls("https://as.example"));
        assert_eq!(
            urls("https://as.example:8443/tenant/a/"),
            [
                "https://as.example:8443/.well-known/oauth-authorization-server/tenant/a",
                "https://as.example:8443/tenant/a/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            urls("http://127.0.0.1:9000/realms/x")[0],
            "http://127.0.0.1:9000/.well-known/oauth-authorization-server/realms/x"
        );
    }

    #[test]
    fn an_issuer_with_a_query_or_plain_http_is_refused() {
        for bad in [
            "https://as.example/?tenant=a",
            "https://as.example/#x",
            "http://as.example",
            "https://user@as.example",
        ] {
            let error = well_known(bad, false).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Config, "{bad}");
        }
    }

    #[test]
    fn the_issuer_must_match_byte_for_byte() {
        let json = br#"{"issuer":"https://as.example","token_endpoint":"https://as.example/t"}"#;
        assert!(ServerMetadata::from_json("https://as.example", json).is_ok());
        for other in [
            "https://as.example/",
            "https://AS.example",
            "https://as.example:443",
        ] {
            let error = ServerMetadata::from_json(other, json).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::IssuerMismatch, "{other}");
            assert!(error.to_string().contains("issuer"), "{error}");
        }
    }

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
    fn every_endpoint_and_list_is_read() {
        let json = br#"{
            "issuer": "https://as.example",
            "token_endpoint": "https://as.example/token",
            "authorization_endpoint": "https://as.example/auth",
            "revocation_endpoint": "https://as.example/revoke",
            "device_authorization_endpoint": "https://as.example/device",
            "pushed_authorization_request_endpoint": "https://as.example/par",
            "introspection_endpoint": "https://as.example/introspect",
            "jwks_uri": "https://as.example/jwks",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
            "unknown": {"ignored": true}
        }"#;
        let m = ServerMetadata::from_json("https://as.example", json).unwrap();
        assert_eq!(m.authorization_endpoint(), Some("https://as.example/auth"));
        assert_eq!(m.revocation_endpoint(), Some("https://as.example/revoke"));
        assert_eq!(
            m.device_authorization_endpoint(),
            Some("https://as.example/device")
        );
        assert_eq!(
            m.pushed_authorization_request_endpoint(),
            Some("https://as.example/par")
        );
        assert_eq!(
            m.introspection_endpoint(),
            Some("https://as.example/introspect")
        );
        assert_eq!(m.jwks_uri(), Some("https://as.example/jwks"));
        assert_eq!(m.grant_types_supported(), ["client_credentials"]);
        assert_eq!(
            m.token_endpoint_auth_methods_supported(),
            ["private_key_jwt"]
        );
        assert_eq!(
            m.token_endpoint_auth_signing_alg_values_supported(),
            ["ES256"]
        );
        assert!(!m.authorization_response_iss_parameter_supported());
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
