//! reqwest on the API side: `reqwest::Request` and `reqwest::Response` as the types
//! [`OAuth2`](super::OAuth2) serves, and, with the `reqwest-middleware` feature, the layer as a
//! `reqwest_middleware::Middleware`.

use http::{HeaderMap, StatusCode};

use super::request::sealed;
use crate::{CloneBodies, EmptyBodies, NoReplay, origin::Destination};

impl sealed::Request for reqwest::Request {
    type Copy = Self;

    #[inline]
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }

    #[inline]
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }

    #[inline]
    fn scheme(&self) -> Option<&str> {
        Some(self.url().scheme())
    }

    fn destination(&self) -> Destination<'_> {
        Destination {
            scheme: Some(self.url().scheme()),
            host: self.url().host_str(),
            port: self.url().port(),
        }
    }

    fn restore(copy: Self) -> Option<Self> {
        Some(copy)
    }
}

impl sealed::Replay<EmptyBodies> for reqwest::Request {
    #[inline]
    fn replay(&self, _: &EmptyBodies) -> Option<Self> {
        let empty = self
            .body()
            .is_none_or(|body| body.as_bytes().is_some_and(<[u8]>::is_empty));
        if empty { self.try_clone() } else { None }
    }
}

impl sealed::Replay<CloneBodies> for reqwest::Request {
    #[inline]
    fn replay(&self, _: &CloneBodies) -> Option<Self> {
        self.try_clone()
    }
}

impl sealed::Replay<NoReplay> for reqwest::Request {
    #[inline]
    fn replay(&self, _: &NoReplay) -> Option<Self> {
        None
    }
}

impl sealed::Response for reqwest::Response {
    #[inline]
    fn status(&self) -> StatusCode {
        self.status()
    }

    fn headers(&self) -> &HeaderMap {
        self.headers()
    }
}

#[cfg(feature = "reqwest-middleware")]
mod middleware {
    use http::{Extensions, StatusCode, header::AUTHORIZATION};
    use reqwest_middleware::{Middleware, Next};

    use crate::{
        Error, HttpRequest, OAuth2Layer,
        middleware::{
            protocol::{self, Start},
            request::sealed::Replay,
        },
    };

    /// With the `reqwest-middleware` feature, the layer is also a middleware of
    /// `reqwest_middleware::ClientWithMiddleware`, with the same tokens, origins and replay
    /// policy: a bearer token on every request, and one retry with a new token after a 401.
    ///
    /// ```no_run
    /// use tower_oauth2::{ClientAuth, OAuth2Layer, TokenClient, grant::ClientCredentials};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let endpoint = TokenClient::reqwest("https://auth.example.com/token", reqwest::Client::builder())?;
    /// let grant = ClientCredentials::new(endpoint, ClientAuth::basic("my-client", "my-secret"));
    /// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
    ///     .with(OAuth2Layer::new(grant))
    ///     .build();
    ///
    /// let orders = client.get("https://api.example.com/orders").send().await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Middlewares added after this one see the `Authorization` header: one that rewrites the
    /// URL belongs before it, so that the origin check judges where the request really goes.
    ///
    /// When no token can be had, the error is a `reqwest_middleware::Error::Middleware` whose
    /// [`anyhow::Error`](https://docs.rs/anyhow) holds a [`tower_oauth2::Error`](crate::Error)
    /// (`downcast_ref` finds it). Errors of the client and of the middlewares after this one
    /// pass through unchanged.
    #[async_trait::async_trait]
    impl<P> Middleware for OAuth2Layer<P>
    where
        P: Send + Sync + 'static,
        reqwest::Request: HttpRequest<P>,
    {
        async fn handle(
            &self,
            mut request: reqwest::Request,
            extensions: &mut Extensions,
            next: Next<'_>,
        ) -> reqwest_middleware::Result<reqwest::Response> {
            // The layer is borrowed by the client for the whole call: it outlives the request.
            let ticket = match protocol::start(&self.cache, &self.origins, &request, false) {
                Start::AsIs => return next.run(request, extensions).await,
                Start::Refuse(error) => return Err(failed(error)),
                Start::Send(ticket) => ticket,
                Start::Wait(wait) => wait.ticket().await.map_err(failed)?,
            };
            let copy = Replay::replay(&request, &self.policy);
            request.headers_mut().insert(AUTHORIZATION, ticket.header());

            let response = next.clone().run(request, extensions).await?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            let next_step =
                protocol::after_unauthorized(&ticket, response.headers(), copy.is_some());
            let (fresh, mut copy) = match (next_step, copy) {
                (protocol::Next::Resend(fresh), Some(copy)) => (fresh, copy),
                (protocol::Next::Wait(wait), Some(copy)) => {
                    // The 401 holds its connection; let it go before waiting for a token.
                    drop(response);
                    (wait.ticket().await.map_err(failed)?, copy)
                }
                _ => return Ok(response),
            };
            protocol::resending(&fresh);
            copy.headers_mut().insert(AUTHORIZATION, fresh.header());
            next.run(copy, extensions).await
        }
    }

    fn failed(error: Error) -> reqwest_middleware::Error {
        reqwest_middleware::Error::middleware(error)
    }
}
