//! The client credentials grant (RFC 6749 section 4.4): a service acting as itself.

use std::fmt;

use super::asks::asks;
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

    asks!(request, first: "every token request", every: "every token request");
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
