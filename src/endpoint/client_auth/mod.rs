//! How the client authenticates to the token endpoint and the endpoints that share its form:
//! a secret (HTTP Basic or form fields), a signed JWT made for each request (feature `jwt`),
//! an external client assertion, a TLS client certificate (RFC 8705), or nothing.
//!
//! Glossary: a *source* is where a secret or an assertion comes from ([`CredentialSource`]);
//! what the client *presents* is what one request carries ([`Presented`]), read from the
//! source or signed for that request only.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use http::HeaderValue;
use zeroize::Zeroizing;

mod present;

pub(crate) use self::present::Presented;
use crate::{CredentialSource, secret::sensitive_header};
#[cfg(feature = "jwt")]
use crate::{Error, KeySource, Secret, SigningKey};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2).
pub(crate) const JWT_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the client authenticates to the token endpoint (RFC 6749 section 2.3).
///
/// ```
/// use tower_oauth2::ClientAuth;
///
/// // HTTP Basic, the method every server must support.
/// let basic = ClientAuth::basic("my-client", "my-secret");
/// // The credentials in the form body, for servers registered for `client_secret_post`.
/// let post = ClientAuth::post("my-client", "my-secret");
/// // A public client, such as a native app: no secret at all.
/// let public = ClientAuth::none("my-app");
/// assert_eq!(public.client_id(), "my-app");
/// ```
///
/// A secret can come from a file that is read again for every token request, or from a
/// function ([`CredentialSource`]); so can an external client assertion
/// ([`client_assertion`](Self::client_assertion)), such as a workload identity token. With the
/// `jwt` feature, the client can also prove itself with a signed JWT, made afresh
/// for every request: `client_secret_jwt` and
/// `private_key_jwt` (RFC 7523 section 2.2). With mutual TLS
/// ([`tls_client_auth`](Self::tls_client_auth),
/// [`self_signed_tls_client_auth`](Self::self_signed_tls_client_auth), RFC 8705), the
/// certificate the HTTP client presents is the proof.
#[derive(Clone)]
pub struct ClientAuth {
    client_id: String,
    method: Method,
    /// The `aud` of client assertions, when it is not the token endpoint URL.
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    assertion_audience: Option<String>,
}

#[derive(Clone)]
enum Method {
    Basic(CredentialSource),
    Post(CredentialSource),
    /// An assertion the client is given, not one it signs (RFC 7521 section 4.2).
    Assertion(CredentialSource),
    None,
    /// `tls_client_auth` (`true`) or `self_signed_tls_client_auth` (`false`): the proof is in
    /// the TLS handshake, the form carries the client id only.
    MutualTls {
        ca_issued: bool,
    },
    /// `client_secret_jwt`: the secret, to scrub from errors, and the HMAC key made of it.
    #[cfg(feature = "jwt")]
    SecretJwt(Secret, SigningKey),
    #[cfg(feature = "jwt")]
    PrivateKeyJwt(KeySource),
}

impl ClientAuth {
    /// HTTP Basic authentication (`client_secret_basic`): the id and secret, each
    /// form-urlencoded as RFC 6749 section 2.3.1 requires, in an `Authorization` header.
    ///
    /// The secret is a string, a [`Secret`](crate::Secret), or a [`CredentialSource`] for one
    /// that rotates:
    /// `ClientAuth::basic("my-client", CredentialSource::file("/run/secrets/client"))`.
    pub fn basic(client_id: impl Into<String>, client_secret: impl Into<CredentialSource>) -> Self {
        Self::with_method(client_id, Method::Basic(client_secret.into()))
    }

    /// The id and secret as `client_id` and `client_secret` form fields
    /// (`client_secret_post`). The secret is given as for [`basic`](Self::basic).
    pub fn post(client_id: impl Into<String>, client_secret: impl Into<CredentialSource>) -> Self {
        Self::with_method(client_id, Method::Post(client_secret.into()))
    }

    /// An external client assertion (RFC 7521 section 4.2, RFC 7523 section 2.2): a JWT the
    /// client is given rather than signs, such as a Kubernetes service-account token or a CI
    /// runner's OIDC token, whose issuer the authorization server trusts. Every request
    /// carries the source's current JWT as `client_assertion`, with
    /// `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
    /// `client_id`; the method's registered name is `private_key_jwt`.
    ///
    /// The JWT's `exp` is read without checking its signature (the server does that): one that
    /// has expired, or expires within 5 seconds, is read from its source once more, and if it
    /// is still expired the request is not sent and the error
    /// ([`ErrorKind::Config`](crate::ErrorKind::Config)) names the source, never the JWT. A
    /// value without a readable `exp` (not a JWT, or no such claim) is sent as it is, for the
    /// server to judge.
    ///
    /// ```
    /// use tower_oauth2::{ClientAuth, CredentialSource};
    ///
    /// let token = CredentialSource::file("/var/run/secrets/tokens/oauth-token");
    /// let auth = ClientAuth::client_assertion("my-workload", token);
    /// assert_eq!(auth.method_name(), "private_key_jwt");
    /// ```
    pub fn client_assertion(
        client_id: impl Into<String>,
        assertion: impl Into<CredentialSource>,
    ) -> Self {
        Self::with_method(client_id, Method::Assertion(assertion.into()))
    }

    /// A public client: only `client_id` is sent, as a form field.
    pub fn none(client_id: impl Into<String>) -> Self {
        Self::with_method(client_id, Method::None)
    }

    /// `tls_client_auth` (RFC 8705 section 2.1): the client proves itself with a certificate
    /// that a certificate authority the server trusts issued for it, presented in the TLS
    /// handshake; the server matches its subject (or a subject alternative name) with the
    /// client's registration. Requests carry `client_id` as a form field, and no secret.
    ///
    /// The certificate is the HTTP client's business, not this value's: give the
    /// [`TokenClient`](crate::TokenClient) an HTTP client that presents it, such as the `https`
    /// feature's client built with `https::ClientIdentity`, and use the same client for the API
    /// so that certificate-bound access tokens (RFC 8705 section 3) work there too. With a
    /// [`Discovery`](crate::Discovery), call
    /// [`mutual_tls`](crate::Discovery::mutual_tls) so that the server's
    /// `mtls_endpoint_aliases` are used.
    ///
    /// ```
    /// use tower_oauth2::ClientAuth;
    ///
    /// let auth = ClientAuth::tls_client_auth("my-service");
    /// assert_eq!(auth.method_name(), "tls_client_auth");
    /// ```
    pub fn tls_client_auth(client_id: impl Into<String>) -> Self {
        Self::with_method(client_id, Method::MutualTls { ca_issued: true })
    }

    /// `self_signed_tls_client_auth` (RFC 8705 section 2.2): like
    /// [`tls_client_auth`](Self::tls_client_auth), with a self-signed certificate that the
    /// server knows from the client's registration (its JWKS, `x5c`) rather than from a
    /// certificate authority.
    pub fn self_signed_tls_client_auth(client_id: impl Into<String>) -> Self {
        Self::with_method(client_id, Method::MutualTls { ca_issued: false })
    }

    /// `client_secret_jwt` (OpenID Connect Core section 9): every request carries a new JWT,
    /// signed with HS256 keyed by the client secret, as `client_assertion`, with
    /// `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
    /// `client_id`. The secret itself never leaves the client.
    ///
    /// The JWT's `iss` and `sub` are the client id, its `aud` the token endpoint URL (see
    /// [`assertion_audience`](Self::assertion_audience)), its `exp` two minutes after its
    /// `iat`, and its `jti` random. Fails with [`ErrorKind::Config`](crate::ErrorKind::Config)
    /// for an empty secret. Available with the `jwt` feature.
    ///
    /// ```
    /// use tower_oauth2::ClientAuth;
    ///
    /// let auth = ClientAuth::client_secret_jwt("my-client", "my-secret")?;
    /// assert_eq!(auth.method_name(), "client_secret_jwt");
    /// # Ok::<_, tower_oauth2::Error>(())
    /// ```
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn client_secret_jwt(
        client_id: impl Into<String>,
        client_secret: impl Into<Secret>,
    ) -> Result<Self, Error> {
        let secret = client_secret.into();
        let key = SigningKey::from_secret(&secret)?;
        Ok(Self::with_method(client_id, Method::SecretJwt(secret, key)))
    }

    /// `private_key_jwt` (OpenID Connect Core section 9, RFC 7523 section 2.2): every request
    /// carries a new JWT signed with `key` (RS256, PS256, ES256 or EdDSA; see [`SigningKey`]),
    /// with the claims of `client_secret_jwt`. The server holds
    /// the public key, registered or from the client's JWKS URL. Available with the `jwt`
    /// feature.
    ///
    /// `key` is a [`SigningKey`], or a [`KeySource`] for a key rotated while the client runs:
    /// a file (PEM or JWK) read again for every token request, or a function. A changed key
    /// signs from the next token request on, with its `kid`.
    ///
    /// ```
    /// use tower_oauth2::{ClientAuth, KeySource, SigningKey};
    ///
    /// # let pem = tower_oauth2_testkit::keys::RSA_PRIVATE_PEM;
    /// // let pem = std::fs::read("client-key.pem")?;
    /// let key = SigningKey::from_pkcs8_pem(pem)?.with_key_id("2024-05");
    /// let auth = ClientAuth::private_key_jwt("my-client", key);
    /// assert_eq!(auth.method_name(), "private_key_jwt");
    ///
    /// // A key a secret manager rotates on disk, named by the JWK's `kid`.
    /// let rotated = ClientAuth::private_key_jwt("my-client", KeySource::file("/run/keys/client.jwk"));
    /// # Ok::<_, tower_oauth2::Error>(())
    /// ```
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn private_key_jwt(client_id: impl Into<String>, key: impl Into<KeySource>) -> Self {
        Self::with_method(client_id, Method::PrivateKeyJwt(key.into()))
    }

    /// Sets the `aud` of client assertions. Default: the URL of the token endpoint, as
    /// OpenID Connect Core section 9 says, sent to the revocation endpoint too.
    ///
    /// Servers differ: RFC 7523 lets any value that identifies the server do, and some
    /// servers (FAPI 2.0 profiles, the successor draft of RFC 7523) accept only the
    /// issuer identifier; pass it here for them. Methods without an assertion ignore it.
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    #[must_use]
    pub fn assertion_audience(mut self, audience: impl Into<String>) -> Self {
        self.assertion_audience = Some(audience.into());
        self
    }

    fn with_method(client_id: impl Into<String>, method: Method) -> Self {
        Self {
            client_id: client_id.into(),
            method,
            assertion_audience: None,
        }
    }

    /// Returns the client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Returns the method's name as registered with servers (`token_endpoint_auth_method`):
    /// `client_secret_basic`, `client_secret_post`, `none`, `tls_client_auth`,
    /// `self_signed_tls_client_auth`, `client_secret_jwt` or `private_key_jwt` (for
    /// [`client_assertion`](Self::client_assertion) too: servers register an external
    /// assertion's client under it, trusting the assertion's issuer).
    pub fn method_name(&self) -> &'static str {
        match self.method {
            Method::Basic(_) => "client_secret_basic",
            Method::Post(_) => "client_secret_post",
            Method::Assertion(_) => "private_key_jwt",
            Method::None => "none",
            Method::MutualTls { ca_issued: true } => "tls_client_auth",
            Method::MutualTls { ca_issued: false } => "self_signed_tls_client_auth",
            #[cfg(feature = "jwt")]
            Method::SecretJwt(..) => "client_secret_jwt",
            #[cfg(feature = "jwt")]
            Method::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }

    /// How many times a rotated credential of this client (a secret or an assertion from a
    /// [`CredentialSource`], or a signing key from a key source, that changed) was taken up since it was made; clones share it.
    /// Worth a metric: a count that never moves after a rotation means the file is not
    /// where the client reads it.
    pub fn credential_reloads(&self) -> u64 {
        match &self.method {
            #[cfg(feature = "jwt")]
            Method::PrivateKeyJwt(key) => key.reloads(),
            _ => self.source().map_or(0, CredentialSource::reloads),
        }
    }

    fn source(&self) -> Option<&CredentialSource> {
        match &self.method {
            Method::Basic(source) | Method::Post(source) | Method::Assertion(source) => {
                Some(source)
            }
            _ => None,
        }
    }

    /// Whether [`write_form`](Self::write_form) adds `client_id`: every method but HTTP Basic,
    /// which names the client in its header. A form that must name the client, such as a
    /// pushed authorization request, adds it only when this is `false`: servers refuse a
    /// field sent twice.
    pub(crate) fn writes_client_id(&self) -> bool {
        !matches!(self.method, Method::Basic(_))
    }

    /// The base64 credentials of HTTP Basic, `None` for the other methods.
    pub(crate) fn basic_credentials(&self, presented: &Presented) -> Option<Zeroizing<String>> {
        let (Method::Basic(_), Some(secret)) = (&self.method, &presented.secret) else {
            return None;
        };
        let mut credentials = Zeroizing::new(String::new());
        credentials.extend(form_urlencoded::byte_serialize(self.client_id.as_bytes()));
        credentials.push(':');
        credentials.extend(form_urlencoded::byte_serialize(secret.expose().as_bytes()));
        Some(Zeroizing::new(STANDARD.encode(credentials.as_bytes())))
    }

    /// The `Authorization` header for HTTP Basic, `None` for the other methods.
    pub(crate) fn header(&self, presented: &Presented) -> Option<HeaderValue> {
        let credentials = self.basic_credentials(presented)?;
        // Base64 output is always a valid header value.
        sensitive_header(Zeroizing::new(
            format!("Basic {}", credentials.as_str()).into_bytes(),
        ))
    }

    /// Adds the form fields this method sends, with what the client
    /// [presents](Self::present) in this request.
    pub(crate) fn write_form(
        &self,
        form: &mut form_urlencoded::Serializer<'_, String>,
        presented: &Presented,
    ) {
        if self.writes_client_id() {
            form.append_pair("client_id", &self.client_id);
        }
        if let (Method::Post(_), Some(secret)) = (&self.method, &presented.secret) {
            form.append_pair("client_secret", secret.expose());
        }
        if let Some(assertion) = &presented.assertion {
            form.append_pair("client_assertion_type", JWT_ASSERTION_TYPE);
            form.append_pair("client_assertion", assertion.expose());
        }
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("ClientAuth");
        out.field("client_id", &self.client_id)
            .field("method", &self.method_name());
        match &self.method {
            #[cfg(feature = "jwt")]
            Method::PrivateKeyJwt(key) => out.field("key", key),
            _ => out.field("source", &self.source()),
        };
        out.field("assertion_audience", &self.assertion_audience)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{__fuzz::presented, TokenRequest};

    #[test]
    fn mutual_tls_methods_send_the_client_id_and_no_secret() {
        for (auth, name) in [
            (ClientAuth::tls_client_auth("svc"), "tls_client_auth"),
            (
                ClientAuth::self_signed_tls_client_auth("svc"),
                "self_signed_tls_client_auth",
            ),
        ] {
            assert_eq!(auth.method_name(), name);
            let presented = presented(&auth);
            assert!(auth.header(&presented).is_none());
            assert_eq!(presented.secrets().count(), 0);
            assert!(auth.writes_client_id());
            let body = TokenRequest::new("client_credentials").encode(&auth, &presented);
            assert_eq!(body.as_str(), "grant_type=client_credentials&client_id=svc");
            assert!(format!("{auth:?}").contains(name));
        }
    }

    #[test]
    fn only_http_basic_leaves_the_client_id_out_of_the_form() {
        assert!(!ClientAuth::basic("id", "secret").writes_client_id());
        assert!(ClientAuth::post("id", "secret").writes_client_id());
        assert!(ClientAuth::none("id").writes_client_id());
    }
}
