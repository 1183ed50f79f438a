//! reqwest on the API side: `reqwest::Request` and `reqwest::Response` as the types
//! [`OAuth2`](super::OAuth2) serves, and the layer as a `reqwest_middleware::Middleware`. Written
//! once, for each major version of reqwest (and reqwest-middleware) users are on: features
//! `reqwest` (0.13) and `reqwest-0.12`, `reqwest-middleware` (0.5) and
//! `reqwest-middleware-0.4`.

/// The request and response types of the reqwest whose crate is `$reqwest`.
macro_rules! serve_reqwest {
    ($reqwest:ident) => {
        impl super::request::sealed::Request for $reqwest::Request {
            type RequestCopy = Self;

            #[inline]
            fn headers(&self) -> &http::HeaderMap {
                self.headers()
            }

            #[inline]
            fn headers_mut(&mut self) -> &mut http::HeaderMap {
                self.headers_mut()
            }

            fn method(&self) -> &str {
                self.method().as_str()
            }

            #[inline]
            fn scheme(&self) -> Option<&str> {
                Some(self.url().scheme())
            }

            fn destination(&self) -> crate::origin::Destination<'_> {
                crate::origin::Destination {
                    scheme: Some(self.url().scheme()),
                    authority: Some(self.url().authority()),
                    path: self.url().path(),
                }
            }

            #[inline]
            fn target(&self) -> super::request::Target {
                super::request::Target::of(&[self.url().as_str()])
            }

            fn restore(copy: Self) -> Option<Self> {
                Some(copy)
            }
        }

        impl super::request::sealed::Replay<crate::EmptyBodies> for $reqwest::Request {
            #[inline]
            fn replay(&self, _: &crate::EmptyBodies) -> Option<Self> {
                let empty = self
                    .body()
                    .is_none_or(|body| body.as_bytes().is_some_and(<[u8]>::is_empty));
                if empty { self.try_clone() } else { None }
            }
        }

        impl super::request::sealed::Replay<crate::CloneBodies> for $reqwest::Request {
            #[inline]
            fn replay(&self, _: &crate::CloneBodies) -> Option<Self> {
                self.try_clone()
            }
        }

        impl super::request::sealed::Replay<crate::NoReplay> for $reqwest::Request {
            #[inline]
            fn replay(&self, _: &crate::NoReplay) -> Option<Self> {
                None
            }
        }

        impl super::request::sealed::Response for $reqwest::Response {
            #[inline]
            fn status(&self) -> http::StatusCode {
                self.status()
            }

            fn headers(&self) -> &http::HeaderMap {
                self.headers()
            }

            fn answered_from(&self) -> Option<super::request::Target> {
                // The URL of the last of the redirects reqwest followed.
                Some(super::request::Target::of(&[self.url().as_str()]))
            }
        }
    };
}

/// The layer as a middleware of the reqwest-middleware whose crate is `$middleware`, over the
/// reqwest whose crate is `$reqwest`.
#[cfg(any(feature = "reqwest-middleware", feature = "reqwest-middleware-0.4"))]
macro_rules! serve_reqwest_middleware {
    ($(#[$doc:meta])* $middleware:ident, $reqwest:ident) => {
        $(#[$doc])*
        #[async_trait::async_trait]
        impl<P> $middleware::Middleware for crate::OAuth2Layer<P>
        where
            P: Send + Sync + 'static,
            $reqwest::Request: crate::OAuth2Request<P>,
        {
            async fn handle(
                &self,
                mut request: $reqwest::Request,
                extensions: &mut http::Extensions,
                next: $middleware::Next<'_>,
            ) -> $middleware::Result<$reqwest::Response> {
                use http::StatusCode;

                use crate::middleware::{
                    protocol::{self, Next, Start},
                    request::sealed::{Replay, Request as _},
                };

                let failed = $middleware::Error::middleware::<crate::Error>;
                // The client holds the layer for the whole call: it outlives the request.
                let tokens = protocol::Tokens {
                    cache: &self.cache,
                    origins: &self.origins,
                    routes: &self.routes,
                };
                let ticket = match protocol::start(tokens, &request) {
                    Start::AsIs => return next.run(request, extensions).await,
                    Start::Refuse(error) => return Err(failed(error)),
                    Start::Send(ticket) => ticket,
                    Start::Wait(wait) => wait.ticket().await.map_err(failed)?,
                };
                let copy = Replay::replay(&request, &self.policy);
                // A DPoP-bound token may meet a demand for a nonce: one resend with it, apart
                // from the retry after a 401.
                let mut spare = ticket
                    .dpop()
                    .and_then(|_| Replay::replay(&request, &self.policy));
                let mut nonce = protocol::authorize(&mut request, &ticket).map_err(failed)?;
                // The copy and its resends go where the request went.
                let to = request.target();
                let mut response = next.clone().run(request, extensions).await?;
                let (mut used, mut copy, mut current) = (Some(ticket.clone()), copy, ticket);
                loop {
                    if let Some(origin) = &nonce
                        && protocol::nonce_demanded(origin, to, &response)
                    {
                        let Some(mut again) = spare.take() else {
                            return Ok(response);
                        };
                        nonce = protocol::authorize_again(&mut again, &current, nonce.take())
                            .map_err(failed)?;
                        response = next.clone().run(again, extensions).await?;
                        continue;
                    }
                    if response.status() != StatusCode::UNAUTHORIZED {
                        return Ok(response);
                    }
                    let Some(ticket) = used.take() else {
                        return Ok(response);
                    };
                    let next_step =
                        protocol::after_unauthorized(&ticket, to, &response, copy.is_some());
                    let (fresh, mut again) = match (next_step, copy.take()) {
                        (Next::Resend(fresh), Some(again)) => (fresh, again),
                        (Next::Wait(wait), Some(again)) => {
                            // The 401 holds its connection; let it go before waiting.
                            drop(response);
                            (wait.ticket().await.map_err(failed)?, again)
                        }
                        _ => return Ok(response),
                    };
                    protocol::resending(&fresh);
                    nonce = protocol::authorize_again(&mut again, &fresh, nonce.take())
                        .map_err(failed)?;
                    current = fresh;
                    response = next.clone().run(again, extensions).await?;
                }
            }
        }
    };
}

#[cfg(feature = "reqwest")]
serve_reqwest!(reqwest);

#[cfg(feature = "reqwest-0.12")]
serve_reqwest!(reqwest012);

#[cfg(feature = "reqwest-middleware")]
serve_reqwest_middleware!(
    /// With the `reqwest-middleware` feature, the layer is also a middleware of
    /// `reqwest_middleware::ClientWithMiddleware` (0.5, over reqwest 0.13; feature
    /// `reqwest-middleware-0.4` for 0.4 over reqwest 0.12), with the same tokens, origins and
    /// replay policy: a bearer token on every request, and one retry with a new token after a
    /// 401.
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
    /// `anyhow::Error` holds a [`tower_oauth2::Error`](crate::Error) (`downcast_ref` finds it).
    /// Errors of the client and of the middlewares after this one pass through unchanged.
    reqwest_middleware,
    reqwest
);

#[cfg(feature = "reqwest-middleware-0.4")]
serve_reqwest_middleware!(
    /// With the `reqwest-middleware-0.4` feature, the layer is also a middleware of
    /// reqwest-middleware 0.4's `ClientWithMiddleware`, over reqwest 0.12: as with
    /// reqwest-middleware 0.5 (feature `reqwest-middleware`).
    reqwest_middleware04,
    reqwest012
);
