//! The token endpoint's client: the one public handle on the token endpoint that every grant
//! sends through, built from a URL, a discovery or a ready-made HTTP client.
//!
//! It stands above the endpoint plumbing (`endpoint/`) and discovery, which both know nothing
//! of it; the HTTP clients it can be built over (`transport/`) stand below.

use std::{fmt, sync::Arc, time::Duration};

use http::{StatusCode, Uri};

use crate::{
    AuthServerTransport, ClientAuth, Discovery, Error, ErrorKind, Token, TokenRequest,
    endpoint::{Endpoint, ReadToken, parse},
    origin::secure_uri,
    transport::HttpService,
};

/// Posts token requests to one token endpoint through any HTTP client that is a tower
/// service ([`AuthServerTransport`]): hyper-util's client, a test fake, the same client the API calls use.
///
/// It sends `application/x-www-form-urlencoded` with `Accept: application/json`, reads at most
/// [`max_body_size`](Self::max_body_size) bytes of the answer, gives up after
/// [`timeout`](Self::timeout), and never follows a redirect: a 3xx answer is an
/// [`ErrorKind::UnexpectedResponse`]. Give it an HTTP client that does not follow redirects
/// itself, or credentials may go to wherever a redirect points.
///
/// Cloning it is cheap; clones share the client.
///
/// ```
/// use bytes::{Bytes, BytesMut};
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::service_fn;
/// use tower_oauth2::TokenClient;
///
/// # fn main() -> Result<(), tower_oauth2::Error> {
/// let http = service_fn(|_: Request<Full<Bytes>>| async {
///     let body = r#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#;
///     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
/// });
/// let client = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokenClient {
    endpoint: Arc<Endpoint>,
    /// Where the token endpoint's URL comes from when it was discovered: asked before every
    /// request, so a server that moves its endpoint is followed.
    discovery: Option<Discovery>,
}

impl TokenClient {
    /// Creates a client of the token endpoint at `url`, sending through `http`.
    ///
    /// Fails unless `url` is an absolute `https` URL, or an `http` URL whose host is a loopback
    /// address or `localhost`: credentials must not cross a network in clear text.
    ///
    /// The client's request body must be buildable from [`Bytes`](bytes::Bytes) ([`AuthServerTransport`] lists every
    /// bound): hyper-util's `Client<_, Full<Bytes>>` works, a `Client<_, Empty<Bytes>>` cannot
    /// carry a form.
    pub fn new<B>(url: &str, http: impl AuthServerTransport<B>) -> Result<Self, Error> {
        Self::build(url, http.erase(), false)
    }

    /// Like [`new`](Self::new), but also accepts a plain `http` URL to any host.
    ///
    /// Only for test set-ups and networks where something else encrypts the traffic: the client
    /// secret and every token cross the network readable.
    pub fn with_plain_http<B>(url: &str, http: impl AuthServerTransport<B>) -> Result<Self, Error> {
        Self::build(url, http.erase(), true)
    }

    /// Creates a client of the token endpoint at `url` over a new
    /// [`https::client`](crate::https::client), which trusts Mozilla's root certificates and
    /// never follows redirects.
    ///
    /// The same rules for `url` apply as for [`TokenClient::new`]: `https`, or `http` to
    /// loopback. Available with the `https` feature.
    ///
    /// ```
    /// # fn main() -> Result<(), tower_oauth2::Error> {
    /// let endpoint = tower_oauth2::TokenClient::https("https://auth.example.com/oauth2/token")?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "https")]
    #[cfg_attr(docsrs, doc(cfg(feature = "https")))]
    pub fn https(url: &str) -> Result<Self, Error> {
        Self::new(url, crate::https::client()?)
    }

    /// Creates a client of the token endpoint at `url` that sends through a reqwest (0.13)
    /// client built from `builder` with redirects turned off.
    ///
    /// Pass `reqwest::Client::builder()` for reqwest's defaults, or a builder with your proxy,
    /// TLS and timeout settings. Whatever redirect policy `builder` had is replaced: a token
    /// client that follows a redirect could send the client's credentials wherever it points.
    /// The same rules for `url` apply as for [`TokenClient::new`]. Available with the
    /// `reqwest` feature; for reqwest 0.12, see `TokenClient::reqwest012`.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_oauth2::BoxError> {
    /// use tower::{Layer, Service, ServiceExt};
    /// use tower_oauth2::{ClientAuth, OAuth2Layer, TokenClient, grant::ClientCredentials};
    ///
    /// let endpoint =
    ///     TokenClient::reqwest("https://auth.example.com/oauth2/token", reqwest::Client::builder())?;
    /// let grant = ClientCredentials::new(endpoint, ClientAuth::basic("my-client", "my-secret"));
    ///
    /// // `reqwest::Client` is a tower service: the layer wraps it as it is.
    /// let http = reqwest::Client::new();
    /// let mut client = OAuth2Layer::new(grant).layer(http.clone());
    ///
    /// let request = http.get("https://api.example.com/orders").build()?;
    /// let response: reqwest::Response = client.ready().await?.call(request).await?;
    /// println!("{}", response.text().await?);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "reqwest")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
    pub fn reqwest(url: &str, builder: reqwest::ClientBuilder) -> Result<Self, Error> {
        Self::build(
            url,
            crate::transport::reqwest_without_redirects(builder)?,
            false,
        )
    }

    /// Like `TokenClient::reqwest`, through a reqwest 0.12 client built from `builder`, with
    /// redirects turned off. Available with the `reqwest-0.12` feature.
    #[cfg(feature = "reqwest-0.12")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest-0.12")))]
    pub fn reqwest012(url: &str, builder: reqwest012::ClientBuilder) -> Result<Self, Error> {
        Self::build(
            url,
            crate::transport::reqwest012_without_redirects(builder)?,
            false,
        )
    }

    fn build(url: &str, http: HttpService, plain_http: bool) -> Result<Self, Error> {
        Ok(Self {
            endpoint: Arc::new(Endpoint::new(
                "token endpoint",
                secure_uri(url, "the token endpoint URL", plain_http)?,
                http,
                plain_http,
            )),
            discovery: None,
        })
    }

    /// Creates a client of the token endpoint that `discovery`'s metadata names, sending
    /// through its HTTP client.
    ///
    /// It fetches the metadata now (or takes it from `discovery`'s cache), so a server whose
    /// metadata names another issuer, or no token endpoint, fails here with nothing sent to
    /// any token endpoint. Later requests ask `discovery` for the current token endpoint
    /// (a cached answer, refreshed on its schedule), and a request that cannot reach the
    /// endpoint, or finds it gone (404, 410), has the metadata fetched again before the next.
    ///
    /// [`url`](Self::url) stays the token endpoint found here: the one client assertions and
    /// [`TokenSetId`](crate::TokenSetId)s name until the server moves it.
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use http::{Request, Response};
    /// # use http_body_util::Full;
    /// # use tower::service_fn;
    /// use tower_oauth2::{ClientAuth, Discovery, TokenClient, grant::ClientCredentials};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_oauth2::Error> {
    /// # let http = service_fn(|request: Request<Full<Bytes>>| async move {
    /// #     let body = match request.uri().path() {
    /// #         "/.well-known/oauth-authorization-server" => r#"{"issuer":"https://auth.example.com","token_endpoint":"https://auth.example.com/oauth2/token"}"#,
    /// #         _ => r#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#,
    /// #     };
    /// #     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
    /// # });
    /// let discovery = Discovery::new("https://auth.example.com", http)?;
    /// let endpoint = TokenClient::discover(&discovery).await?;
    /// assert_eq!(endpoint.url(), "https://auth.example.com/oauth2/token");
    /// let grant = ClientCredentials::new(endpoint, ClientAuth::basic("my-client", "my-secret"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn discover(discovery: &Discovery) -> Result<Self, Error> {
        let metadata = discovery.metadata().await?;
        Ok(Self {
            endpoint: Arc::new(discovery.token_endpoint(&metadata)?),
            discovery: Some(discovery.clone()),
        })
    }

    /// How long one token request may take, from sending it to reading the whole answer.
    /// Default: 30 seconds.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.endpoint).set_timeout(timeout);
        self
    }

    /// The largest answer body read, in bytes; a larger one is an
    /// [`ErrorKind::BodyTooLarge`]. Default: 1 MiB.
    #[must_use]
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        Arc::make_mut(&mut self.endpoint).set_max_body_size(bytes);
        self
    }

    /// Sends a DPoP proof signed by `key` with every token request (RFC 9449), so that the
    /// server binds the tokens it issues to the key. The layer then sends them as
    /// `Authorization: DPoP <token>`, each request with a proof of its own.
    ///
    /// A server that answers `use_dpop_nonce` gets the request once more, with its nonce and
    /// a new proof (and a new client assertion). A server that issues bearer tokens all the
    /// same is not refused: its tokens are used as bearer tokens.
    ///
    /// ```
    /// # use bytes::Bytes;
    /// # use http::{Request, Response};
    /// # use http_body_util::Full;
    /// # use tower::service_fn;
    /// use tower_oauth2::{DpopKey, TokenClient};
    ///
    /// # let http = service_fn(|_: Request<Full<Bytes>>| async {
    /// #     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
    /// # });
    /// let key = DpopKey::generate()?;
    /// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?.dpop(&key);
    /// # Ok::<_, tower_oauth2::Error>(())
    /// ```
    #[cfg(feature = "dpop")]
    #[must_use]
    pub fn dpop(mut self, key: &crate::DpopKey) -> Self {
        Arc::make_mut(&mut self.endpoint).set_dpop(crate::dpop::Binding::new(key.clone()));
        self
    }

    /// Whether token requests carry DPoP proofs, so that the tokens may be bound to the key.
    pub(crate) fn binds_tokens(&self) -> bool {
        self.endpoint.dpop().is_some()
    }

    /// Returns the DPoP key of the token requests, if one is set.
    #[cfg(feature = "dpop")]
    pub fn dpop_key(&self) -> Option<&crate::DpopKey> {
        self.endpoint.dpop().map(crate::dpop::Binding::key)
    }

    /// Returns the token endpoint's URL.
    pub fn url(&self) -> &Uri {
        self.endpoint.url()
    }

    /// Sends `request`, authenticated by `auth`, and parses the answer.
    ///
    /// ```
    /// # use bytes::{Bytes, BytesMut};
    /// # use http::{Request, Response};
    /// # use http_body_util::Full;
    /// # use tower::service_fn;
    /// use tower_oauth2::{ClientAuth, TokenClient, TokenRequest};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), tower_oauth2::Error> {
    /// # let http = service_fn(|_: Request<Full<Bytes>>| async {
    /// #     let body = r#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#;
    /// #     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
    /// # });
    /// let client = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
    /// let request = TokenRequest::new("client_credentials").scopes(["read"]);
    /// let token = client.request(&request, &ClientAuth::basic("id", "secret")).await?;
    /// assert_eq!(token.access_token().expose(), "abc");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn request(&self, request: &TokenRequest, auth: &ClientAuth) -> Result<Token, Error> {
        self.request_with(request, auth, parse::parse_bound_response)
            .await
    }

    /// Like [`request`](Self::request), with `read` parsing the answer (token exchange
    /// accepts more token types).
    pub(crate) async fn request_with(
        &self,
        request: &TokenRequest,
        auth: &ClientAuth,
        read: ReadToken,
    ) -> Result<Token, Error> {
        let Some(discovery) = &self.discovery else {
            return self.endpoint.post_for_token(request, auth, read).await;
        };
        let metadata = discovery.metadata().await?;
        let moved = match metadata.token_uri() {
            Some(url) if url != self.endpoint.url() => Some(self.endpoint.moved_to(url)),
            _ => None,
        };
        let endpoint = moved.as_ref().unwrap_or(&self.endpoint);
        let outcome = endpoint.post_for_token(request, auth, read).await;
        if let Err(error) = &outcome
            && endpoint_may_have_moved(error)
        {
            discovery.invalidate();
        }
        outcome
    }

    /// Another endpoint of the same server at `url`, called `name` in errors, reached through
    /// this client's HTTP client with its timeout and body limit.
    pub(crate) fn sibling(&self, url: &str, name: &'static str) -> Result<Endpoint, Error> {
        let what = format!("the {name} URL");
        let url = secure_uri(url, &what, self.endpoint.plain_http())?;
        Ok(self.endpoint.sibling(name, url))
    }
}

/// Whether a failed request hints that the server's metadata changed: the endpoint could not
/// be reached or is not there any more.
fn endpoint_may_have_moved(error: &Error) -> bool {
    error.kind() == ErrorKind::Transport
        || (error.kind() == ErrorKind::UnexpectedResponse
            && matches!(
                error.status(),
                Some(StatusCode::NOT_FOUND | StatusCode::GONE)
            ))
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.endpoint, f)
    }
}

#[cfg(all(test, feature = "https"))]
mod tests {
    use super::*;

    #[test]
    fn a_token_client_refuses_plain_http_beyond_loopback() {
        assert!(TokenClient::https("https://auth.example.com/token").is_ok());
        assert!(TokenClient::https("http://127.0.0.1:8080/token").is_ok());
        let error = TokenClient::https("http://auth.example.com/token").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
    }
}
