//! What a grant sends: the form fields of a token request (the client's authentication is
//! `client_auth.rs`).

use std::fmt;

use zeroize::Zeroizing;

use super::client_auth::{ClientAuth, Presented};
use crate::{Secret, TokenSetId};

/// The form of one token request: a `grant_type` and its fields.
///
/// The grants in this crate build it for you; use it to speak a grant this crate does not ship,
/// such as a vendor's own, through [`TokenClient::request`](crate::TokenClient::request).
///
/// ```
/// use tower_oauth2::TokenRequest;
///
/// let request = TokenRequest::new("urn:example:params:oauth:grant-type:api-key")
///     .param("audience", "https://api.example.com")
///     .secret_param("api_key", "k3y...");
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

    /// Adds a resource indicator (RFC 8707): the absolute URI of an API the token is for.
    /// Repeat it for a token good at several; servers that support it limit the token's
    /// audience to them.
    #[must_use]
    pub fn resource(self, resource: impl Into<String>) -> Self {
        self.param("resource", resource)
    }

    /// Adds `audience`: the name of the API the token is for, as servers that predate
    /// RFC 8707 ask for it (Auth0, Okta, token exchange's RFC 8693).
    #[must_use]
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.param("audience", audience)
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
    pub(crate) fn secrets(
        &self,
        auth: &ClientAuth,
        presented: &Presented,
    ) -> Vec<Zeroizing<String>> {
        let params = self.params.iter().filter_map(|(_, value)| match value {
            Value::Secret(secret) => Some(secret.expose()),
            Value::Plain(_) => None,
        });
        let mut forms = Vec::new();
        for secret in params.chain(presented.secrets().map(Secret::expose)) {
            let encoded =
                Zeroizing::new(form_urlencoded::byte_serialize(secret.as_bytes()).collect());
            forms.push(Zeroizing::new(secret.to_owned()));
            if *encoded != secret {
                forms.push(encoded);
            }
        }
        forms.extend(auth.basic_credentials(presented));
        forms
    }

    /// The form body, `application/x-www-form-urlencoded`, with what the client presents in
    /// this request.
    pub(crate) fn encode(&self, auth: &ClientAuth, presented: &Presented) -> Zeroizing<String> {
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
        auth.write_form(&mut form, presented);
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
    use base64::{Engine, engine::general_purpose::STANDARD};
    use http::HeaderValue;

    use super::*;
    use crate::__fuzz::presented;
    #[cfg(feature = "jwt")]
    use crate::endpoint::client_auth::JWT_ASSERTION_TYPE;

    fn decode_basic(header: &HeaderValue) -> String {
        let encoded = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap()
    }

    #[test]
    fn basic_credentials_are_form_urlencoded_before_base64() {
        let auth = ClientAuth::basic("id:with+odd chars", "sé cret:+/");
        let header = auth.header(&presented(&auth)).unwrap();
        assert!(header.is_sensitive());
        assert_eq!(
            decode_basic(&header),
            "id%3Awith%2Bodd+chars:s%C3%A9+cret%3A%2B%2F"
        );
    }

    #[test]
    fn basic_sends_no_credentials_in_the_body() {
        let auth = ClientAuth::basic("id", "secret");
        let body = TokenRequest::new("client_credentials").encode(&auth, &presented(&auth));
        assert_eq!(body.as_str(), "grant_type=client_credentials");
    }

    #[test]
    fn post_puts_credentials_in_the_body_and_sends_no_header() {
        let auth = ClientAuth::post("id:1", "s é+");
        assert!(auth.header(&presented(&auth)).is_none());
        let body = TokenRequest::new("client_credentials").encode(&auth, &presented(&auth));
        assert_eq!(
            body.as_str(),
            "grant_type=client_credentials&client_id=id%3A1&client_secret=s+%C3%A9%2B"
        );
    }

    #[test]
    fn public_clients_send_only_their_id() {
        let auth = ClientAuth::none("app");
        assert!(auth.header(&presented(&auth)).is_none());
        assert_eq!(presented(&auth).secrets().count(), 0);
        let body = TokenRequest::new("authorization_code").encode(&auth, &presented(&auth));
        assert_eq!(body.as_str(), "grant_type=authorization_code&client_id=app");
    }

    #[test]
    fn scopes_are_space_delimited_and_omitted_when_empty() {
        let auth = ClientAuth::none("app");
        let with = TokenRequest::new("g").scopes(["read", "write"]);
        assert_eq!(
            with.encode(&auth, &presented(&auth)).as_str(),
            "grant_type=g&scope=read+write&client_id=app"
        );
        let without = TokenRequest::new("g").scopes(Vec::<String>::new());
        assert_eq!(
            without.encode(&auth, &presented(&auth)).as_str(),
            "grant_type=g&client_id=app"
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let auth = ClientAuth::post("id", "sentinel-secret");
        let request = TokenRequest::new("g").secret_param("refresh_token", "sentinel-refresh");
        let debug = format!("{auth:?} {request:?}");
        assert!(!debug.contains("sentinel"), "{debug}");
        let secrets = request.secrets(&auth, &presented(&auth));
        let secrets: Vec<&str> = secrets.iter().map(|secret| secret.as_str()).collect();
        assert_eq!(secrets, ["sentinel-refresh", "sentinel-secret"]);
    }

    #[test]
    fn secrets_include_the_forms_they_take_on_the_wire() {
        let auth = ClientAuth::basic("id", "a+b/c");
        let request = TokenRequest::new("g").secret_param("code", "x y");
        let secrets = request.secrets(&auth, &presented(&auth));
        let secrets: Vec<&str> = secrets.iter().map(|secret| secret.as_str()).collect();
        // "id:a%2Bb%2Fc" in base64.
        assert_eq!(
            secrets,
            ["x y", "x+y", "a+b/c", "a%2Bb%2Fc", "aWQ6YSUyQmIlMkZj"]
        );
    }

    #[test]
    fn resources_repeat_and_join_the_identity_with_the_audience() {
        let request = TokenRequest::new("client_credentials")
            .resource("https://a.example")
            .resource("https://b.example")
            .audience("orders");
        let auth = ClientAuth::none("app");
        let body = request.encode(&auth, &presented(&auth));
        assert_eq!(
            body.as_str(),
            "grant_type=client_credentials&resource=https%3A%2F%2Fa.example\
             &resource=https%3A%2F%2Fb.example&audience=orders&client_id=app"
        );
        let id = request.identity("https://auth.example/token", "app");
        let expected = TokenSetId::new("https://auth.example/token", "app", "client_credentials")
            .resource("https://a.example")
            .resource("https://b.example")
            .audience("orders");
        assert_eq!(id, expected);
        assert_ne!(
            id,
            TokenRequest::new("client_credentials").identity("https://auth.example/token", "app")
        );
    }

    #[cfg(feature = "jwt")]
    #[test]
    fn assertion_methods_send_a_new_assertion_with_its_type_and_the_client_id() {
        let auth = ClientAuth::client_secret_jwt("app", "sentinel-secret").unwrap();
        assert!(auth.header(&presented(&auth)).is_none());
        let presented_first = presented(&auth);
        let first = presented_first.assertion().unwrap();
        let second = presented(&auth);
        assert_ne!(first.expose(), second.assertion().unwrap().expose());
        let body = TokenRequest::new("client_credentials").encode(&auth, &presented_first);
        let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let expected = [
            ("grant_type", "client_credentials"),
            ("client_id", "app"),
            ("client_assertion_type", JWT_ASSERTION_TYPE),
            ("client_assertion", first.expose()),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        assert_eq!(form, expected);
        assert!(!body.contains("sentinel-secret"));
        // The secret and the assertion are scrubbed from whatever a server echoes.
        let secrets = TokenRequest::new("g").secrets(&auth, &presented_first);
        assert!(
            secrets
                .iter()
                .any(|secret| secret.as_str() == first.expose())
        );
        assert!(
            secrets
                .iter()
                .any(|secret| secret.as_str() == "sentinel-secret")
        );
        assert!(!format!("{auth:?}").contains("sentinel"));
    }

    #[cfg(feature = "jwt")]
    #[test]
    fn the_assertion_audience_is_the_token_endpoint_unless_set() {
        use jsonwebtoken::{DecodingKey, Validation, decode};

        let audience_of = |auth: &ClientAuth| {
            let presented = presented(auth);
            let assertion = presented.assertion().unwrap();
            let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
            validation.validate_aud = false;
            let key = DecodingKey::from_secret(b"s").unwrap();
            let claims = decode::<serde_json::Value>(assertion.expose(), &key, &validation)
                .unwrap()
                .claims;
            assert_eq!(
                (&claims["iss"], &claims["sub"]),
                (&"app".into(), &"app".into())
            );
            claims["aud"].as_str().unwrap().to_owned()
        };
        let auth = ClientAuth::client_secret_jwt("app", "s").unwrap();
        assert_eq!(audience_of(&auth), "https://auth.example/token");
        let auth = auth.assertion_audience("https://auth.example");
        assert_eq!(audience_of(&auth), "https://auth.example");
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;
        use crate::__fuzz::{decode_basic, presented};

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
                let auth = ClientAuth::post(client_id, secret);
                let body = request.encode(&auth, &presented(&auth));
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
                let auth = ClientAuth::basic(client_id.clone(), secret.clone());
                let header = auth.header(&presented(&auth)).unwrap();
                prop_assert!(header.is_sensitive());
                prop_assert_eq!(decode_basic(&header), (client_id, secret));
            }
        }
    }
}
