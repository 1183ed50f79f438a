//! [`OAuth2Layer`] as a [`reqwest_middleware::Middleware`], for apps that build requests with
//! reqwest's builders and send them with `.send()`.

use http::{Extensions, StatusCode, header::AUTHORIZATION};
use reqwest_middleware::{Middleware, Next};

use super::{
    HttpRequest, OAuth2Layer, challenge,
    origin::{self, Verdict},
    request::sealed::Replay,
};
use crate::Error;

/// With the `reqwest-middleware` feature, the layer is also a middleware of
/// [`reqwest_middleware::ClientWithMiddleware`], with the same tokens, origins and replay
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
/// Middlewares added after this one see the `Authorization` header: one that rewrites the URL
/// belongs before it, so that the origin check judges where the request really goes.
///
/// When no token can be had, the error is a [`reqwest_middleware::Error::Middleware`] whose
/// [`anyhow::Error`](https://docs.rs/anyhow) holds a [`tower_oauth2::Error`](crate::Error)
/// (`downcast_ref` finds it). Errors of the client and of the middlewares after this one pass
/// through unchanged.
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
        if request.headers().contains_key(AUTHORIZATION) {
            return next.run(request, extensions).await;
        }
        match self.origins.verdict_of(&request) {
            Verdict::Attach => {}
            Verdict::Skip => {
                tracing::debug!("origin not allowed for the token; sending without it");
                return next.run(request, extensions).await;
            }
            Verdict::Refuse => return Err(failed(origin::not_allowed())),
        }
        let copy = Replay::replay(&request, &self.policy);
        let token = self.cache.token().await.map_err(failed)?;
        request
            .headers_mut()
            .insert(AUTHORIZATION, token.header_value().clone());

        let response = next.clone().run(request, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        if !challenge::new_token_may_help(response.headers()) {
            tracing::debug!("401 answer that a new token cannot meet; not retrying");
            return Ok(response);
        }
        self.cache.invalidate(&token);
        let Some(mut copy) = copy else {
            tracing::debug!("401 answer, but the request could not be replayed");
            return Ok(response);
        };
        tracing::debug!("401 answer; retrying once with a new token");
        // The 401 holds its connection; let it go before waiting for a token.
        drop(response);
        // The copy goes out only with a new token: when none can be had, the error says why.
        let fresh = self.cache.token().await.map_err(failed)?;
        copy.headers_mut()
            .insert(AUTHORIZATION, fresh.header_value().clone());
        self.cache.record_retry();
        next.run(copy, extensions).await
    }
}

fn failed(error: Error) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(error)
}
