//! The JWT bearer grant (RFC 7523 section 2.1): a signed JWT stands for the authorization, as
//! workload identity federation, service accounts and enterprise single sign-on use it.

use std::{fmt, path::PathBuf, sync::Arc};

use super::asks::asks;
use crate::{
    BoxError, ClientAuth, Error, ErrorKind, FetchContext, Secret, Token, TokenClient, TokenRequest,
    TokenSetId, TokenSource,
    credential::{Holds, read_file},
};
#[cfg(feature = "jwt")]
use crate::{SigningKey, assertion::Claims};

/// The `grant_type` of the JWT bearer grant.
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Where each request's assertion comes from.
type AssertionFn = dyn Fn() -> Result<Secret, Error> + Send + Sync;

/// A [`TokenSource`] for `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` (RFC 7523
/// section 2.1): every token request posts an `assertion`, a JWT that another party issued
/// (a workload identity token, an identity provider's assertion) or that the client signs
/// itself (`signed`, with the `jwt` feature).
///
/// The assertion is asked for anew for every token request, so a file that the platform
/// rotates (Kubernetes projected service account tokens, cloud workload identity) is read
/// fresh each time: [`from_file`](Self::from_file). The client authenticates per its
/// [`ClientAuth`] ([`ClientAuth::none`]: only `client_id` is sent).
///
/// ```
/// # use bytes::Bytes;
/// # use http::{Request, Response};
/// # use http_body_util::Full;
/// # use tower::service_fn;
/// use tower_oauth2::{ClientAuth, TokenCache, TokenClient, grant::JwtBearer};
///
/// # fn main() -> Result<(), tower_oauth2::Error> {
/// # let http = service_fn(|_: Request<Full<Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
/// # });
/// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
/// let grant = JwtBearer::from_file(
///     endpoint,
///     ClientAuth::none("my-workload"),
///     "/var/run/secrets/tokens/identity-token",
/// )
/// .scopes(["orders:read"])
/// .resource("https://api.example.com");
/// let cache = TokenCache::new(grant);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct JwtBearer {
    endpoint: TokenClient,
    auth: ClientAuth,
    assertion: Assertion,
    request: TokenRequest,
    subject: Option<String>,
}

#[derive(Clone)]
enum Assertion {
    Given(Arc<AssertionFn>),
    File(Arc<PathBuf>),
    #[cfg(feature = "jwt")]
    Signed {
        key: SigningKey,
        issuer: String,
        subject: String,
        audience: Option<String>,
    },
}

impl JwtBearer {
    /// Creates the grant with assertions from `assertion`, called once for every token
    /// request. An error it returns fails that request as an
    /// [`ErrorKind::Source`](crate::ErrorKind::Source), which the cache retries like any
    /// failed fetch.
    pub fn new<F, S, E>(endpoint: TokenClient, auth: ClientAuth, assertion: F) -> Self
    where
        F: Fn() -> Result<S, E> + Send + Sync + 'static,
        S: Into<Secret>,
        E: Into<BoxError>,
    {
        let assertion = move || {
            assertion()
                .map(Into::into)
                .map_err(|error| Error::source_failed(error))
        };
        Self::with(endpoint, auth, Assertion::Given(Arc::new(assertion)))
    }

    /// Creates the grant with the assertion in the file at `path`, read again for every
    /// token request (surrounding whitespace is dropped), so a rotated file is picked up. It
    /// is read off the runtime's workers, at most 64 KiB; a missing, empty or larger file
    /// fails the fetch as an [`ErrorKind::Source`](crate::ErrorKind::Source) error that
    /// names the file, never its content.
    pub fn from_file(endpoint: TokenClient, auth: ClientAuth, path: impl Into<PathBuf>) -> Self {
        Self::with(endpoint, auth, Assertion::File(Arc::new(path.into())))
    }

    /// Creates the grant with assertions the client signs with `key`, a new one for every
    /// token request: `iss` is `issuer`, `sub` is `subject`, `aud` is the token endpoint URL
    /// (see [`assertion_audience`](Self::assertion_audience)), `exp` two minutes after `iat`,
    /// and `jti` random. The server must trust `key`'s public half for `issuer`. Available
    /// with the `jwt` feature.
    ///
    /// Its tokens act for `subject`: it is also the grant's [subject](Self::subject).
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use http::{Request, Response};
    /// # use http_body_util::Full;
    /// # use tower::service_fn;
    /// use tower_oauth2::{ClientAuth, SigningKey, TokenClient, grant::JwtBearer};
    ///
    /// # fn main() -> Result<(), tower_oauth2::Error> {
    /// # let http = service_fn(|_: Request<Full<Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
    /// # });
    /// # let pem = tower_oauth2_testkit::keys::ED_PRIVATE_PEM;
    /// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
    /// let key = SigningKey::from_pkcs8_pem(pem)?;
    /// let grant = JwtBearer::signed(
    ///     endpoint,
    ///     ClientAuth::none("reporting"),
    ///     key,
    ///     "reporting",
    ///     "service-account-7",
    /// );
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    pub fn signed(
        endpoint: TokenClient,
        auth: ClientAuth,
        key: SigningKey,
        issuer: impl Into<String>,
        subject: impl Into<String>,
    ) -> Self {
        let subject = subject.into();
        let assertion = Assertion::Signed {
            key,
            issuer: issuer.into(),
            subject: subject.clone(),
            audience: None,
        };
        Self::with(endpoint, auth, assertion).subject(subject)
    }

    /// Sets the `aud` of the assertions [`signed`](Self::signed) makes, when the server wants
    /// its issuer identifier rather than its token endpoint URL. No effect on assertions
    /// given by the caller.
    #[cfg(feature = "jwt")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
    #[must_use]
    pub fn assertion_audience(mut self, audience: impl Into<String>) -> Self {
        if let Assertion::Signed { audience: aud, .. } = &mut self.assertion {
            *aud = Some(audience.into());
        }
        self
    }

    fn with(endpoint: TokenClient, auth: ClientAuth, assertion: Assertion) -> Self {
        Self {
            endpoint,
            auth,
            assertion,
            request: TokenRequest::new(GRANT_TYPE),
            subject: None,
        }
    }

    /// Names whose tokens these are, so that caches in other processes may share them
    /// through a fleet (`TokenCacheBuilder::fleet`). Without it, tokens of assertions given
    /// by the caller are never shared.
    #[must_use]
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    asks!(request, first: "every token request", every: "every token request");

    /// Makes the assertion of one request.
    async fn assertion(&self) -> Result<Secret, Error> {
        match &self.assertion {
            Assertion::Given(assertion) => assertion(),
            // A file that cannot be used fails the fetch like a function that fails.
            Assertion::File(path) => read_file(path, Holds::TOKEN)
                .await
                .map_err(|error| error.with_kind(ErrorKind::Source)),
            #[cfg(feature = "jwt")]
            Assertion::Signed {
                key,
                issuer,
                subject,
                audience,
            } => {
                let token_endpoint = self.endpoint.url().to_string();
                let audience = audience.as_deref().unwrap_or(&token_endpoint);
                key.sign(&Claims::new(issuer, subject, audience))
            }
        }
    }
}

impl TokenSource for JwtBearer {
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, Error> {
        let request = self
            .request
            .clone()
            .secret_param("assertion", self.assertion().await?);
        self.endpoint.request(&request, &self.auth).await
    }

    fn grant_type(&self) -> &'static str {
        "jwt_bearer"
    }

    fn identity(&self) -> Option<TokenSetId> {
        let subject = self.subject.as_deref()?;
        let url = self.endpoint.url().to_string();
        Some(
            self.request
                .identity(&url, self.auth.client_id())
                .subject(subject)
                .dpop_bound(self.endpoint.binds_tokens()),
        )
    }
}

impl fmt::Debug for JwtBearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let assertion = match &self.assertion {
            Assertion::Given(_) => "given",
            Assertion::File(_) => "file",
            #[cfg(feature = "jwt")]
            Assertion::Signed { .. } => "signed",
        };
        f.debug_struct("JwtBearer")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .field("assertion", &assertion)
            .field("request", &self.request)
            .field("subject", &self.subject)
            .finish()
    }
}

/// Reads an assertion file; the error names the file but never its content.
#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tower_oauth2_testkit::AuthServer;

    use super::*;
    use crate::{ErrorKind, FetchReason};

    fn endpoint(server: &AuthServer) -> TokenClient {
        TokenClient::new("https://auth.test/token", server.token_endpoint()).unwrap()
    }

    fn fetch(grant: &JwtBearer) -> impl Future<Output = Result<Token, Error>> + '_ {
        grant.fetch(FetchContext::new(None, FetchReason::Cold))
    }

    #[tokio::test]
    async fn every_request_asks_for_a_new_assertion_and_posts_it_with_the_client_id() {
        let server = AuthServer::new();
        let calls = Arc::new(Mutex::new(0));
        let counter = calls.clone();
        let grant = JwtBearer::new(endpoint(&server), ClientAuth::none("wl"), move || {
            let mut calls = counter.lock().unwrap();
            *calls += 1;
            Ok::<_, BoxError>(format!("assertion-{calls}"))
        })
        .scopes(["read"])
        .resource("https://api.test")
        .audience("api");
        fetch(&grant).await.unwrap();
        fetch(&grant).await.unwrap();
        let received = server.received();
        let form = |n: usize, name: &str| received[n].form.get(name).cloned();
        assert_eq!(form(0, "grant_type").as_deref(), Some(GRANT_TYPE));
        assert_eq!(form(0, "assertion").as_deref(), Some("assertion-1"));
        assert_eq!(form(1, "assertion").as_deref(), Some("assertion-2"));
        assert_eq!(form(0, "client_id").as_deref(), Some("wl"));
        assert_eq!(form(0, "resource").as_deref(), Some("https://api.test"));
        assert_eq!(form(0, "audience").as_deref(), Some("api"));
        assert_eq!(form(0, "scope").as_deref(), Some("read"));
    }

    #[tokio::test]
    async fn a_rotated_assertion_file_is_read_again() {
        let server = AuthServer::new();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let grant = JwtBearer::from_file(endpoint(&server), ClientAuth::none("wl"), &path);
        fetch(&grant).await.unwrap();
        std::fs::write(&path, "second").unwrap();
        fetch(&grant).await.unwrap();
        let assertions: Vec<String> = server
            .received()
            .iter()
            .map(|r| r.form["assertion"].clone())
            .collect();
        assert_eq!(assertions, ["first", "second"]);
    }

    #[tokio::test]
    async fn a_missing_file_fails_the_fetch_as_a_source_error_without_a_request() {
        let server = AuthServer::new();
        let grant = JwtBearer::from_file(
            endpoint(&server),
            ClientAuth::none("wl"),
            "/nonexistent/identity-token",
        );
        let error = fetch(&grant).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Source);
        assert!(server.received().is_empty());
    }

    #[tokio::test]
    async fn the_assertion_is_scrubbed_from_what_the_server_echoes() {
        let server = AuthServer::new();
        server.answer_next(
            http::StatusCode::BAD_REQUEST,
            r#"{"error":"invalid_grant","error_description":"bad assertion sentinel-jwt"}"#,
        );
        let grant = JwtBearer::new(endpoint(&server), ClientAuth::none("wl"), || {
            Ok::<_, BoxError>("sentinel-jwt")
        });
        let error = fetch(&grant).await.unwrap_err();
        assert_eq!(error.oauth_error(), Some("invalid_grant"));
        assert!(!format!("{error} {error:?} {grant:?}").contains("sentinel"));
    }

    #[test]
    fn only_a_grant_with_a_subject_has_an_identity() {
        let server = AuthServer::new();
        let grant = JwtBearer::new(endpoint(&server), ClientAuth::none("wl"), || {
            Ok::<_, BoxError>("a")
        });
        assert!(grant.identity().is_none());
        let id = grant
            .resource("https://api.test")
            .subject("sa-1")
            .identity()
            .unwrap();
        let expected = TokenSetId::new("https://auth.test/token", "wl", GRANT_TYPE)
            .resource("https://api.test")
            .subject("sa-1");
        assert_eq!(id, expected);
    }

    #[cfg(feature = "jwt")]
    #[tokio::test]
    async fn a_signed_assertion_names_issuer_subject_and_the_token_endpoint() {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        use tower_oauth2_testkit::keys;

        let server = AuthServer::new();
        let key = SigningKey::from_pkcs8_pem(keys::ED_PRIVATE_PEM).unwrap();
        let grant = JwtBearer::signed(endpoint(&server), ClientAuth::none("c"), key, "c", "sa-7");
        fetch(&grant).await.unwrap();
        fetch(&grant).await.unwrap();
        let public = DecodingKey::from_ed_pem(keys::ED_PUBLIC_PEM.as_bytes()).unwrap();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["https://auth.test/token"]);
        validation.set_issuer(&["c"]);
        let claims: Vec<serde_json::Value> = server
            .received()
            .iter()
            .map(|r| {
                jsonwebtoken::decode(&r.form["assertion"], &public, &validation)
                    .unwrap()
                    .claims
            })
            .collect();
        assert_eq!(claims[0]["sub"], "sa-7");
        assert_ne!(claims[0]["jti"], claims[1]["jti"]);
        assert_eq!(grant.identity().unwrap().subject.as_deref(), Some("sa-7"));
    }
}
