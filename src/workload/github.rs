//! GitHub Actions: the runner's OIDC token, fetched from the runner's token service and kept
//! until shortly before it expires.

use std::{fmt, future::Future, pin::Pin, sync::Arc, time::Duration, time::SystemTime};

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use tokio::sync::Mutex;

use super::{Env, process_env};
use crate::{
    AuthServerTransport, ClientAuth, CredentialSource, Error, ErrorKind, Secret,
    credential::{Fetch, jwt_remaining},
    endpoint::{Endpoint, parse},
    origin::secure_url,
};

/// The variable that holds the URL of the runner's token service.
const REQUEST_URL: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// The variable that holds the bearer token the token service takes.
const REQUEST_TOKEN: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
/// What errors call the token service.
const NAME: &str = "GitHub Actions OIDC token endpoint";
/// A token is fetched again once it has less than this left: time for the token request
/// that carries it, and for the authorization server's clock to be a little ahead.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// The OIDC token of a GitHub Actions job, as a client assertion: a JWT from
/// `https://token.actions.githubusercontent.com` whose `sub` names the repository and the
/// job's context (`repo:ORG/REPO:ref:refs/heads/main`), for an authorization server with a
/// federated credential that trusts that issuer.
///
/// The job needs `permissions: id-token: write`; the runner then sets
/// `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN`. A token is fetched
/// with `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=AUDIENCE` and
/// `Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN` when a request to the
/// authorization server needs one, and kept until a minute before its `exp` (read without
/// checking the signature), so a job that asks for many access tokens fetches few OIDC tokens.
/// An `invalid_client` answer drops the kept token: the request is sent once more with a new
/// one if the token service gives another.
///
/// ```
/// use tower_oauth2::{TokenClient, grant::ClientCredentials, workload::GitHubActions};
///
/// # let http = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # });
/// # let env = |name: &str| Some(match name {
/// #     "ACTIONS_ID_TOKEN_REQUEST_URL" => "https://runner.example/token?api-version=2.0".to_owned(),
/// #     _ => "runner-token".to_owned(),
/// # });
/// // In a job: `GitHubActions::from_env("https://auth.example.com", http.clone())?`.
/// let github = GitHubActions::from_env_with("https://auth.example.com", http.clone(), env)?;
/// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
/// let grant = ClientCredentials::new(endpoint, github.client_auth("my-ci-client"));
/// # Ok::<_, tower_oauth2::Error>(())
/// ```
///
/// A missing variable is an [`ErrorKind::Config`] error naming it. A token service that
/// answers with an error, a redirect, something that is not `{"value": "<jwt>"}`, or a body
/// over the limit fails the token request with a typed error naming the
/// "GitHub Actions OIDC token endpoint"; neither the request token nor the OIDC token is
/// ever in an error or in `Debug`.
#[derive(Clone)]
pub struct GitHubActions {
    endpoint: Endpoint,
    request_token: HeaderValue,
}

impl GitHubActions {
    /// The runner's token service, from `ACTIONS_ID_TOKEN_REQUEST_URL` and
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, asking for tokens for `audience` (the `aud` the
    /// authorization server's federated credential expects), through `http`.
    pub fn from_env<B>(audience: &str, http: impl AuthServerTransport<B>) -> Result<Self, Error> {
        Self::from_env_with(audience, http, process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `env` (a test's map).
    pub fn from_env_with<B>(
        audience: &str,
        http: impl AuthServerTransport<B>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, Error> {
        let env = Env(env);
        let url = env.require(REQUEST_URL)?;
        let token = Secret::new(env.require(REQUEST_TOKEN)?);
        Self::build(&url, &token, audience, http, REQUEST_URL)
    }

    /// The token service at `request_url` (the runner's `ACTIONS_ID_TOKEN_REQUEST_URL`, which
    /// has a query already), with `request_token`, asking for tokens for `audience`.
    pub fn new<B>(
        request_url: &str,
        request_token: impl Into<Secret>,
        audience: &str,
        http: impl AuthServerTransport<B>,
    ) -> Result<Self, Error> {
        let what = "the GitHub Actions token request URL";
        Self::build(request_url, &request_token.into(), audience, http, what)
    }

    fn build<B>(
        url: &str,
        token: &Secret,
        audience: &str,
        http: impl AuthServerTransport<B>,
        what: &str,
    ) -> Result<Self, Error> {
        let mut url = secure_url(url, what, false)?;
        url.query_pairs_mut().append_pair("audience", audience);
        let url = url.as_str().parse().map_err(|_| {
            Error::new(ErrorKind::Config).with_detail(format!("{what} is not a valid URL"))
        })?;
        let mut request_token = HeaderValue::from_str(&format!("bearer {}", token.expose()))
            .map_err(|_| {
                Error::new(ErrorKind::Config)
                    .with_detail(format!("{REQUEST_TOKEN} is not a valid header value"))
            })?;
        request_token.set_sensitive(true);
        Ok(Self {
            endpoint: Endpoint::new(NAME, url, http.erase(), false),
            request_token,
        })
    }

    /// How long one fetch of a token may take. Default: 30 seconds.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.endpoint.set_timeout(timeout);
        self
    }

    /// The largest answer body read, in bytes; a larger one is an
    /// [`ErrorKind::BodyTooLarge`]. Default: 1 MiB.
    #[must_use]
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.endpoint.set_max_body_size(bytes);
        self
    }

    /// The tokens as the client assertion of `client_id`.
    pub fn client_auth(self, client_id: impl Into<String>) -> ClientAuth {
        ClientAuth::client_assertion(client_id, self)
    }
}

impl From<GitHubActions> for CredentialSource {
    fn from(github: GitHubActions) -> Self {
        CredentialSource::fetched(Arc::new(Cached {
            github,
            token: Mutex::new(None),
        }))
    }
}

impl fmt::Debug for GitHubActions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubActions")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A [`GitHubActions`] and the token it fetched last.
struct Cached {
    github: GitHubActions,
    // Held across the fetch: callers that find the token stale at once wait for one fetch.
    token: Mutex<Option<Secret>>,
}

impl Cached {
    async fn current(&self) -> Result<Secret, Error> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && jwt_remaining(token.expose(), SystemTime::now())
                .is_some_and(|left| left > RENEW_BEFORE)
        {
            return Ok(token.clone());
        }
        let token = self.fetch_new().await?;
        // A token without a readable `exp` is not kept: nothing says how long it is good for.
        *cached = jwt_remaining(token.expose(), SystemTime::now())
            .is_some()
            .then(|| token.clone());
        Ok(token)
    }

    async fn fetch_new(&self) -> Result<Secret, Error> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, self.github.request_token.clone());
        let bearer = self.github.request_token.to_str().unwrap_or_default();
        let secret = bearer.strip_prefix("bearer ").unwrap_or(bearer);
        let endpoint = &self.github.endpoint;
        endpoint
            .get_with(headers, &[secret], |status, headers, body, secrets| {
                let mut fields = parse::parse_object(status, headers, body, secrets)?;
                match fields.remove("value") {
                    Some(serde_json::Value::String(token))
                        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()) =>
                    {
                        Ok(Secret::new(token))
                    }
                    _ => Err(parse::invalid("the answer has no `value` token").with_status(status)),
                }
            })
            .await
    }
}

impl Fetch for Cached {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Secret, Error>> + Send + '_>> {
        Box::pin(self.current())
    }

    fn name(&self) -> &'static str {
        NAME
    }

    fn refused(&self) {
        // A fetch under way holds the lock: the token it brings is a new one anyway.
        if let Ok(mut cached) = self.token.try_lock() {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Full;

    use super::*;
    use crate::credential::Holds;

    fn answering(body: &'static str) -> impl AuthServerTransport<Full<Bytes>> {
        tower::service_fn(move |request: Request<Full<Bytes>>| async move {
            assert_eq!(request.headers()[AUTHORIZATION], "bearer runner-secret");
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
        })
    }

    #[test]
    fn the_audience_is_appended_to_the_query_the_url_has() {
        let github = GitHubActions::new(
            "https://runner.example/id?api-version=2.0",
            "runner-secret",
            "api://Azure AD&x",
            answering("{}"),
        )
        .unwrap();
        assert_eq!(
            github.endpoint.url().to_string(),
            "https://runner.example/id?api-version=2.0&audience=api%3A%2F%2FAzure+AD%26x"
        );
        assert!(!format!("{github:?}").contains("runner-secret"));
    }

    #[test]
    fn missing_variables_are_named_and_their_values_never() {
        let only_url = |name: &str| {
            (name == REQUEST_URL).then(|| "https://runner.example/id?x=secret-url".to_owned())
        };
        let error = GitHubActions::from_env_with("aud", answering("{}"), only_url).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        assert!(error.to_string().contains(REQUEST_TOKEN), "{error}");
        let error = GitHubActions::from_env_with("aud", answering("{}"), |_| None).unwrap_err();
        assert!(error.to_string().contains(REQUEST_URL), "{error}");
    }

    #[tokio::test]
    async fn an_answer_without_a_value_is_an_invalid_response() {
        let github = GitHubActions::new(
            "https://runner.example/id?v=1",
            "runner-secret",
            "aud",
            answering(r#"{"count":1}"#),
        )
        .unwrap();
        let error = CredentialSource::from(github)
            .read(Holds::ASSERTION)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidResponse);
        assert!(error.to_string().contains(NAME), "{error}");
    }
}
