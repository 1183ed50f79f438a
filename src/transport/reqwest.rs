//! reqwest as the HTTP client of the token endpoint. (On the API side, `reqwest::Client` is a
//! tower `Service` that [`OAuth2Layer`](crate::OAuth2Layer) wraps as it is: `middleware/reqwest.rs`.)

use bytes::Bytes;

use crate::{Error, TokenClient};

/// `TokenClient`'s constructor over the reqwest whose crate is `$reqwest`.
macro_rules! token_client_over_reqwest {
    ($(#[$doc:meta])* $name:ident, $reqwest:ident) => {
        impl TokenClient {
            $(#[$doc])*
            pub fn $name(url: &str, builder: $reqwest::ClientBuilder) -> Result<Self, Error> {
                let client = builder
                    .redirect($reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|error| {
                        Error::config("the reqwest client could not be built")
                            .with_source(error.into())
                    })?;
                // The token client speaks `http` types; reqwest converts both ways without
                // copying the body.
                let http = tower::service_fn(move |request: http::Request<Bytes>| {
                    let client = client.clone();
                    async move {
                        let request = $reqwest::Request::try_from(request)?;
                        let response = client.execute(request).await?;
                        Ok::<_, $reqwest::Error>(http::Response::from(response))
                    }
                });
                Self::new(url, http)
            }
        }
    };
}

#[cfg(feature = "reqwest")]
token_client_over_reqwest!(
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
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
    reqwest,
    reqwest
);

#[cfg(feature = "reqwest012")]
token_client_over_reqwest!(
    /// Like `TokenClient::reqwest`, through a reqwest 0.12 client built from `builder`, with
    /// redirects turned off. Available with the `reqwest012` feature.
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest012")))]
    reqwest012,
    reqwest012
);
