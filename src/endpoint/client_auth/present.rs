//! What the client presents in one request: its secret or assertion, read from its source or
//! signed for that request only, and checked before it is sent.

use super::{ClientAuth, Method};
#[cfg(feature = "jwt")]
use crate::assertion::Claims;
use crate::{
    CredentialSource, Error, Secret,
    credential::{Holds, assertion_usable},
};

impl ClientAuth {
    /// What the client presents in one request whose token endpoint is `token_endpoint`,
    /// when it needs no reading: `None` when a source must be read ([`present`](Self::present)
    /// does both). A signed assertion is new each time: its `jti` is good for one use.
    #[cfg_attr(not(feature = "jwt"), allow(unused_variables))]
    pub(crate) fn present_now(&self, token_endpoint: &str) -> Option<Result<Presented, Error>> {
        let presented = match &self.method {
            Method::Basic(source) | Method::Post(source) => Presented {
                secret: Some(source.fixed_value()?.clone()),
                ..Presented::default()
            },
            Method::Assertion(source) => {
                let assertion = source.fixed_value()?;
                if !assertion_usable(assertion.expose(), std::time::SystemTime::now()) {
                    return Some(Err(expired(source)));
                }
                Presented {
                    assertion: Some(assertion.clone()),
                    ..Presented::default()
                }
            }
            Method::None | Method::MutualTls { .. } => Presented::default(),
            #[cfg(feature = "jwt")]
            Method::SecretJwt(secret, key) => {
                return Some(self.sign(token_endpoint, key).map(|assertion| Presented {
                    secret: Some(secret.clone()),
                    assertion: Some(assertion),
                    ..Presented::default()
                }));
            }
            #[cfg(feature = "jwt")]
            Method::PrivateKeyJwt(source) => {
                let key = source.fixed_key()?;
                return Some(key.and_then(|key| self.signed_with(token_endpoint, key)));
            }
        };
        Some(Ok(presented))
    }

    /// A new assertion signed by `key`, for the token endpoint `token_endpoint`.
    #[cfg(feature = "jwt")]
    fn sign(&self, token_endpoint: &str, key: &crate::SigningKey) -> Result<Secret, Error> {
        let audience = self.assertion_audience.as_deref().unwrap_or(token_endpoint);
        key.sign(&Claims::new(&self.client_id, &self.client_id, audience))
    }

    /// What a `private_key_jwt` client presents with `key`: the assertion, and the key, so
    /// that a resend can tell whether the key changed.
    #[cfg(feature = "jwt")]
    fn signed_with(
        &self,
        token_endpoint: &str,
        key: crate::SigningKey,
    ) -> Result<Presented, Error> {
        Ok(Presented {
            secret: None,
            assertion: Some(self.sign(token_endpoint, &key)?),
            key: Some(key),
        })
    }

    /// What the client presents when `earlier` is sent again for a reason other than its
    /// credential (a DPoP nonce): a new assertion signed by the key `earlier` was, without
    /// reading the key's source a second time in one token request; else as
    /// [`present`](Self::present).
    pub(crate) async fn present_again(
        &self,
        token_endpoint: &str,
        earlier: &Presented,
    ) -> Result<Presented, Error> {
        #[cfg(feature = "jwt")]
        if let (Method::PrivateKeyJwt(_), Some(key)) = (&self.method, &earlier.key) {
            return self.signed_with(token_endpoint, key.clone());
        }
        let _ = earlier;
        self.present(token_endpoint).await
    }

    /// What the client presents in one request, reading its source if it has one. Called
    /// once per request to the authorization server, a resend too.
    pub(crate) async fn present(&self, token_endpoint: &str) -> Result<Presented, Error> {
        if let Some(presented) = self.present_now(token_endpoint) {
            return presented;
        }
        match &self.method {
            Method::Basic(source) | Method::Post(source) => Ok(Presented {
                secret: Some(source.read(Holds::SECRET).await?),
                ..Presented::default()
            }),
            Method::Assertion(source) => {
                let mut assertion = source.read(Holds::ASSERTION).await?;
                if !assertion_usable(assertion.expose(), std::time::SystemTime::now()) {
                    // A platform writes the next token shortly before the last one expires:
                    // one more read may find it.
                    assertion = source.read(Holds::ASSERTION).await?;
                    if !assertion_usable(assertion.expose(), std::time::SystemTime::now()) {
                        return Err(expired(source));
                    }
                }
                Ok(Presented {
                    assertion: Some(assertion),
                    ..Presented::default()
                })
            }
            #[cfg(feature = "jwt")]
            Method::PrivateKeyJwt(source) => self.signed_with(token_endpoint, source.read().await?),
            // `present_now` answers every other method.
            _ => Ok(Presented::default()),
        }
    }

    /// The server answered `invalid_client` to what this client presented: its source, if it
    /// keeps a fetched credential, fetches a new one for the next read.
    pub(crate) fn refused(&self) {
        if let Method::Basic(source) | Method::Post(source) | Method::Assertion(source) =
            &self.method
        {
            source.refused();
        }
    }

    /// Whether what this client presents comes from a source that can change, so that an
    /// `invalid_client` answer is worth reading it again for.
    pub(crate) fn can_change(&self) -> bool {
        match &self.method {
            Method::Basic(source) | Method::Post(source) | Method::Assertion(source) => {
                source.can_change()
            }
            #[cfg(feature = "jwt")]
            Method::PrivateKeyJwt(source) => source.can_change(),
            _ => false,
        }
    }
}

/// What the client presents in one request: the secret it sends (or keys its assertion with,
/// to scrub from errors), the assertion it sends, and the private key that signed it.
///
/// Two are equal when they present the same credential: the same secret and assertion, or,
/// for assertions signed by a private key, the same key (each signing makes a new assertion).
#[derive(Debug, Default)]
pub(crate) struct Presented {
    pub(super) secret: Option<Secret>,
    pub(super) assertion: Option<Secret>,
    #[cfg(feature = "jwt")]
    pub(super) key: Option<crate::SigningKey>,
}

impl PartialEq for Presented {
    fn eq(&self, other: &Self) -> bool {
        #[cfg(feature = "jwt")]
        if let (Some(key), Some(other_key)) = (&self.key, &other.key) {
            return key.same_as(other_key);
        }
        self.secret == other.secret && self.assertion == other.assertion
    }
}

impl Presented {
    /// The secret and the assertion, each that there is.
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &Secret> {
        self.secret.iter().chain(&self.assertion)
    }

    #[cfg(all(test, feature = "jwt"))]
    pub(crate) fn assertion(&self) -> Option<&Secret> {
        self.assertion.as_ref()
    }
}

fn expired(source: &CredentialSource) -> Error {
    source.invalid(
        Holds::ASSERTION,
        "has expired, or expires within 5 seconds, and was not renewed",
    )
}

#[cfg(test)]
mod tests {
    use super::super::JWT_ASSERTION_TYPE;
    use super::*;
    use crate::{__fuzz::presented, ErrorKind, TokenRequest};

    fn unsigned_jwt(exp: u64) -> String {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"app","exp":{exp}}}"#));
        format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2lnbmF0dXJl")
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn an_external_assertion_is_sent_with_its_type_and_the_client_id() {
        let jwt = unsigned_jwt(now() + 600);
        let auth = ClientAuth::client_assertion("app", jwt.as_str());
        let presented = presented(&auth);
        assert!(auth.header(&presented).is_none());
        let body = TokenRequest::new("client_credentials").encode(&auth, &presented);
        let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let field = |name: &str, value: &str| (name.to_owned(), value.to_owned());
        assert_eq!(
            form,
            [
                field("grant_type", "client_credentials"),
                field("client_id", "app"),
                field("client_assertion_type", JWT_ASSERTION_TYPE),
                field("client_assertion", &jwt),
            ]
        );
        assert!(!format!("{auth:?}").contains(&jwt[20..]));
    }

    #[tokio::test]
    async fn a_fixed_assertion_that_has_expired_is_refused_without_quoting_it() {
        let jwt = unsigned_jwt(now() + 2);
        let auth = ClientAuth::client_assertion("app", jwt.as_str());
        let error = auth.present("https://as.example/token").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        let message = error.to_string();
        assert!(message.contains("the fixed client assertion"), "{message}");
        assert!(!message.contains(&jwt[20..]), "{message}");
        assert!(!auth.can_change());
    }

    #[tokio::test]
    async fn a_secret_from_a_function_is_read_for_each_request() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&calls);
        let source = CredentialSource::from_fn(move || {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { Ok::<_, crate::BoxError>(format!("secret-{n}\n")) }
        });
        let auth = ClientAuth::post("app", source);
        assert!(auth.can_change());
        assert!(auth.present_now("https://as.example/token").is_none());
        let first = auth.present("https://as.example/token").await.unwrap();
        let second = auth.present("https://as.example/token").await.unwrap();
        assert!(first != second);
        let body = TokenRequest::new("g").encode(&auth, &second);
        assert_eq!(
            body.as_str(),
            "grant_type=g&client_id=app&client_secret=secret-1"
        );
        assert!(!format!("{auth:?}").contains("secret-"));
    }
}
