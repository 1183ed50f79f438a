//! The authorization server's metadata document (RFC 8414, OpenID Connect Discovery 1.0): what
//! the crate reads from it. Where it lives is `well_known.rs`; the rules each member is read
//! by, `fields.rs`.

use std::fmt;

use http::Uri;
use serde_json::Value;

use super::fields::{
    Aliases, Endpoint, Http, aliases, boolean, endpoint, invalid, string, strings,
};
use crate::{Error, ErrorKind, error::sanitize};

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
        let http = Http::new(plain_http, issuer);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
