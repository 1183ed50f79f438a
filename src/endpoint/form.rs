//! What a grant sends: the form fields, and how the client authenticates.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use http::HeaderValue;
use zeroize::Zeroizing;

use crate::{Secret, TokenSetId, secret::sensitive_header};

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
#[derive(Clone)]
pub struct ClientAuth {
    client_id: String,
    method: Method,
}

#[derive(Clone)]
enum Method {
    Basic(Secret),
    Post(Secret),
    None,
}

impl ClientAuth {
    /// HTTP Basic authentication (`client_secret_basic`): the id and secret, each
    /// form-urlencoded as RFC 6749 section 2.3.1 requires, in an `Authorization` header.
    pub fn basic(client_id: impl Into<String>, client_secret: impl Into<Secret>) -> Self {
        Self {
            client_id: client_id.into(),
            method: Method::Basic(client_secret.into()),
        }
    }

    /// The id and secret as `client_id` and `client_secret` form fields
    /// (`client_secret_post`).
    pub fn post(client_id: impl Into<String>, client_secret: impl Into<Secret>) -> Self {
        Self {
            client_id: client_id.into(),
            method: Method::Post(client_secret.into()),
        }
    }

    /// A public client: only `client_id` is sent, as a form field.
    pub fn none(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            method: Method::None,
        }
    }

    /// Returns the client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Returns the method's name as registered with servers: `client_secret_basic`,
    /// `client_secret_post` or `none`.
    pub fn method_name(&self) -> &'static str {
        match self.method {
            Method::Basic(_) => "client_secret_basic",
            Method::Post(_) => "client_secret_post",
            Method::None => "none",
        }
    }

    pub(crate) fn secret(&self) -> Option<&Secret> {
        match &self.method {
            Method::Basic(secret) | Method::Post(secret) => Some(secret),
            Method::None => None,
        }
    }

    /// The base64 credentials of HTTP Basic, `None` for the other methods.
    fn basic_credentials(&self) -> Option<Zeroizing<String>> {
        let Method::Basic(secret) = &self.method else {
            return None;
        };
        let mut credentials = Zeroizing::new(String::new());
        credentials.extend(form_urlencoded::byte_serialize(self.client_id.as_bytes()));
        credentials.push(':');
        credentials.extend(form_urlencoded::byte_serialize(secret.expose().as_bytes()));
        Some(Zeroizing::new(STANDARD.encode(credentials.as_bytes())))
    }

    /// The `Authorization` header for HTTP Basic, `None` for the other methods.
    pub(crate) fn header(&self) -> Option<HeaderValue> {
        let credentials = self.basic_credentials()?;
        // Base64 output is always a valid header value.
        sensitive_header(Zeroizing::new(
            format!("Basic {}", credentials.as_str()).into_bytes(),
        ))
    }

    /// Adds the form fields this method sends.
    pub(crate) fn write_form(&self, form: &mut form_urlencoded::Serializer<'_, String>) {
        match &self.method {
            Method::Basic(_) => {}
            Method::Post(secret) => {
                form.append_pair("client_id", &self.client_id);
                form.append_pair("client_secret", secret.expose());
            }
            Method::None => {
                form.append_pair("client_id", &self.client_id);
            }
        }
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("client_id", &self.client_id)
            .field("method", &self.method_name())
            .finish()
    }
}

/// The form of one token request: a `grant_type` and its fields.
///
/// The grants in this crate build it for you; use it to speak a grant this crate does not ship,
/// such as token exchange (RFC 8693), through [`TokenClient::request`](crate::TokenClient::request).
///
/// ```
/// use tower_oauth2::TokenRequest;
///
/// let request = TokenRequest::new("urn:ietf:params:oauth:grant-type:token-exchange")
///     .param("audience", "https://api.example.com")
///     .secret_param("subject_token", "eyJ...");
/// ```
#[derive(Clone)]
pub struct TokenRequest {
    /// `None` for the requests of other endpoints that share the token endpoint's form and
    /// client authentication, such as revocation.
    grant_type: Option<String>,
    params: Vec<(String, Value)>,
}

#[derive(Clone)]
enum Value {
    Plain(String),
    Secret(Secret),
}

impl TokenRequest {
    /// Starts a request for `grant_type`.
    pub fn new(grant_type: impl Into<String>) -> Self {
        Self {
            grant_type: Some(grant_type.into()),
            params: Vec::new(),
        }
    }

    /// Starts a form without `grant_type`, for an endpoint that is not the token endpoint.
    pub(crate) fn without_grant_type() -> Self {
        Self {
            grant_type: None,
            params: Vec::new(),
        }
    }

    /// Adds a form field.
    #[must_use]
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), Value::Plain(value.into())));
        self
    }

    /// Adds a form field whose value is a secret: it is kept out of `Debug` output, and scrubbed
    /// from any server text an error reports.
    #[must_use]
    pub fn secret_param(mut self, name: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.params.push((name.into(), Value::Secret(value.into())));
        self
    }

    /// Adds `scope` with the scopes space-delimited, unless there are none.
    #[must_use]
    pub fn scopes<I, T>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let joined = scopes
            .into_iter()
            .map(|scope| scope.as_ref().to_owned())
            .collect::<Vec<_>>()
            .join(" ");
        if joined.is_empty() {
            self
        } else {
            self.param("scope", joined)
        }
    }

    /// Returns the grant type.
    pub fn grant_type(&self) -> &str {
        self.grant_type.as_deref().unwrap_or_default()
    }

    /// What tokens this request gets, for `client_id` at `token_endpoint`: its grant type and
    /// its plain fields (secret fields are no part of it).
    pub(crate) fn identity(&self, token_endpoint: &str, client_id: &str) -> TokenSetId {
        let mut id = TokenSetId::new(token_endpoint, client_id, self.grant_type());
        for (name, value) in &self.params {
            let Value::Plain(value) = value else {
                continue;
            };
            id = match name.as_str() {
                "scope" => id.scopes(value.split_whitespace()),
                "resource" => id.resource(value),
                "audience" => id.audience(value),
                _ => id.param(name, value),
            };
        }
        id
    }

    /// Every secret the request carries, in each form it takes on the wire, so error text can
    /// be scrubbed of them: a server that echoes the request echoes the form-encoded body and
    /// the Basic credentials, not the plain values.
    pub(crate) fn secrets(&self, auth: &ClientAuth) -> Vec<Zeroizing<String>> {
        let params = self.params.iter().filter_map(|(_, value)| match value {
            Value::Secret(secret) => Some(secret.expose()),
            Value::Plain(_) => None,
        });
        let mut forms = Vec::new();
        for secret in params.chain(auth.secret().map(Secret::expose)) {
            let encoded =
                Zeroizing::new(form_urlencoded::byte_serialize(secret.as_bytes()).collect());
            forms.push(Zeroizing::new(secret.to_owned()));
            if *encoded != secret {
                forms.push(encoded);
            }
        }
        forms.extend(auth.basic_credentials());
        forms
    }

    /// The form body, `application/x-www-form-urlencoded`.
    pub(crate) fn encode(&self, auth: &ClientAuth) -> Zeroizing<String> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        if let Some(grant_type) = &self.grant_type {
            form.append_pair("grant_type", grant_type);
        }
        for (name, value) in &self.params {
            let value = match value {
                Value::Plain(value) => value.as_str(),
                Value::Secret(secret) => secret.expose(),
            };
            form.append_pair(name, value);
        }
        auth.write_form(&mut form);
        Zeroizing::new(form.finish())
    }
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(name, value)| match value {
                Value::Plain(value) => (name.as_str(), value.as_str()),
                Value::Secret(_) => (name.as_str(), "[redacted]"),
            })
            .collect();
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type())
            .field("params", &params)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_basic(header: &HeaderValue) -> String {
        let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap()
    }

    #[test]
    fn basic_credentials_are_form_urlencoded_before_base64() {
        let auth = ClientAuth::basic("id:with+odd chars", "sé cret:+/");
        let header = auth.header().unwrap();
        assert!(header.is_sensitive());
        assert_eq!(
            decode_basic(&header),
            "id%3Awith%2Bodd+chars:s%C3%A9+cret%3A%2B%2F"
        );
    }

    #[test]
    fn basic_sends_no_credentials_in_the_body() {
        let auth = ClientAuth::basic("id", "secret");
        let body = TokenRequest::new("client_credentials").encode(&auth);
        assert_eq!(body.as_str(), "grant_type=client_credentials");
    }

    #[test]
    fn post_puts_credentials_in_the_body_and_sends_no_header() {
        let auth = ClientAuth::post("id:1", "s é+");
        assert!(auth.header().is_none());
        let body = TokenRequest::new("client_credentials").encode(&auth);
        assert_eq!(
            body.as_str(),
            "grant_type=client_credentials&client_id=id%3A1&client_secret=s+%C3%A9%2B"
        );
    }

    #[test]
    fn public_clients_send_only_their_id() {
        let auth = ClientAuth::none("app");
        assert!(auth.header().is_none());
        assert!(auth.secret().is_none());
        let body = TokenRequest::new("authorization_code").encode(&auth);
        assert_eq!(body.as_str(), "grant_type=authorization_code&client_id=app");
    }

    #[test]
    fn scopes_are_space_delimited_and_omitted_when_empty() {
        let auth = ClientAuth::none("app");
        let with = TokenRequest::new("g").scopes(["read", "write"]);
        assert_eq!(
            with.encode(&auth).as_str(),
            "grant_type=g&scope=read+write&client_id=app"
        );
        let without = TokenRequest::new("g").scopes(Vec::<String>::new());
        assert_eq!(without.encode(&auth).as_str(), "grant_type=g&client_id=app");
    }

    #[test]
    fn debug_redacts_secrets() {
        let auth = ClientAuth::post("id", "sentinel-secret");
        let request = TokenRequest::new("g").secret_param("refresh_token", "sentinel-refresh");
        let debug = format!("{auth:?} {request:?}");
        assert!(!debug.contains("sentinel"), "{debug}");
        let secrets = request.secrets(&auth);
        let secrets: Vec<&str> = secrets.iter().map(|secret| secret.as_str()).collect();
        assert_eq!(secrets, ["sentinel-refresh", "sentinel-secret"]);
    }

    #[test]
    fn secrets_include_the_forms_they_take_on_the_wire() {
        let auth = ClientAuth::basic("id", "a+b/c");
        let request = TokenRequest::new("g").secret_param("code", "x y");
        let secrets = request.secrets(&auth);
        let secrets: Vec<&str> = secrets.iter().map(|secret| secret.as_str()).collect();
        // "id:a%2Bb%2Fc" in base64.
        assert_eq!(
            secrets,
            ["x y", "x+y", "a+b/c", "a%2Bb%2Fc", "aWQ6YSUyQmIlMkZj"]
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;
        use crate::__fuzz::decode_basic;

        proptest! {
            #[test]
            fn the_form_body_decodes_to_the_fields_that_went_in(
                grant_type in any::<String>(),
                params in proptest::collection::vec((any::<String>(), any::<String>(), any::<bool>()), 0..8),
                client_id in any::<String>(),
                secret in any::<String>(),
            ) {
                let mut request = TokenRequest::new(grant_type.clone());
                let mut expected = vec![("grant_type".to_owned(), grant_type)];
                for (name, value, is_secret) in params {
                    request = if is_secret {
                        request.secret_param(name.clone(), value.clone())
                    } else {
                        request.param(name.clone(), value.clone())
                    };
                    expected.push((name, value));
                }
                expected.push(("client_id".to_owned(), client_id.clone()));
                expected.push(("client_secret".to_owned(), secret.clone()));
                let body = request.encode(&ClientAuth::post(client_id, secret));
                let decoded: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                    .map(|(name, value)| (name.into_owned(), value.into_owned()))
                    .collect();
                prop_assert_eq!(decoded, expected);
            }

            #[test]
            fn basic_credentials_decode_to_the_id_and_secret(
                client_id in any::<String>(),
                secret in any::<String>(),
            ) {
                let header = ClientAuth::basic(client_id.clone(), secret.clone()).header().unwrap();
                prop_assert!(header.is_sensitive());
                prop_assert_eq!(decode_basic(&header), (client_id, secret));
            }
        }
    }
}
