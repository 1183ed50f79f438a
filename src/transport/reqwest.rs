//! reqwest as the HTTP client of the token endpoint: `TokenClient::reqwest` and
//! `TokenClient::reqwest012` send through what this builds. (On the API side,
//! `reqwest::Client` is a tower `Service` that [`OAuth2Layer`](crate::OAuth2Layer) wraps as
//! it is: `middleware/reqwest.rs`.)

use bytes::Bytes;

use super::{HttpService, sealed::Erase};
use crate::Error;

/// A function that builds the reqwest client whose crate is `$reqwest` from a builder, with
/// redirects turned off, and erases it to the one type a token client holds.
macro_rules! without_redirects {
    ($(#[$attr:meta])* $name:ident, $reqwest:ident) => {
        $(#[$attr])*
        pub(crate) fn $name(builder: $reqwest::ClientBuilder) -> Result<HttpService, Error> {
            // A token client that followed a redirect could send the client's credentials
            // wherever it points, so the builder's own policy is replaced.
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
            Ok(http.erase())
        }
    };
}

without_redirects!(
    #[cfg(feature = "reqwest")]
    reqwest_without_redirects,
    reqwest
);

without_redirects!(
    #[cfg(feature = "reqwest-0.12")]
    reqwest012_without_redirects,
    reqwest012
);
