//! The client credentials grant (RFC 6749 section 4.4): a service acting as itself.

use std::fmt;

use crate::{
    ClientAuth, Error, FetchContext, Token, TokenClient, TokenRequest, TokenSetId, TokenSource,
};

/// A [`TokenSource`] for `grant_type=client_credentials`: the client authenticates as itself,
/// with no user involved.
///
/// ```
/// # use bytes::Bytes;
/// # use http::{Request, Response};
/// # use http_body_util::Full;
/// # use tower::service_fn;
/// use tower_oauth2::{ClientAuth, TokenCache, TokenClient, grant::ClientCredentials};
///
/// # fn main() -> Result<(), tower_oauth2::Error> {
/// # let http = service_fn(|_: Request<Full<Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
/// # });
/// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
/// let grant = ClientCredentials::new(endpoint, ClientAuth::basic("my-client", "my-secret"))
///     .scopes(["orders:read", "orders:write"])
///     .resource("https://api.example.com");
/// let cache = TokenCache::new(grant);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    endpoint: TokenClient,
    auth: ClientAuth,
    request: TokenRequest,
}

impl ClientCredentials {
    /// Creates the grant against `endpoint`, authenticating with `auth`.
    pub fn new(endpoint: TokenClient, auth: ClientAuth) -> Self {
        Self {
            endpoint,
            auth,
            request: TokenRequest::new("client_credentials"),
        }
    }

    /// Asks for these scopes, sent space-delimited in `scope`.
    #[must_use]
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.request = self.request.scopes(scopes);
        self
    }

    /// Asks for a token for this resource (RFC 8707 `resource`: the absolute URI of an API),
    /// in every token request; repeatable. A server that supports resource indicators limits the
    /// token's audience to the resources asked for.
    #[must_use]
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.request = self.request.resource(resource);
        self
    }

    /// Asks for a token for this audience (`audience`, as servers that predate RFC 8707 name
    /// the API), in every token request; repeatable.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.request = self.request.audience(audience);
        self
    }

    /// Adds a form field to every token request, such as `audience` or `resource`.
    #[must_use]
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request = self.request.param(name, value);
        self
    }
}

impl TokenSource for ClientCredentials {
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, Error> {
        self.endpoint.request(&self.request, &self.auth).await
    }

    fn grant_type(&self) -> &'static str {
        "client_credentials"
    }

    fn identity(&self) -> Option<TokenSetId> {
        let url = self.endpoint.url().to_string();
        Some(
            self.request
                .identity(&url, self.auth.client_id())
                .dpop_bound(self.endpoint.binds_tokens()),
        )
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .field("request", &self.request)
            .finish()
    }
}
