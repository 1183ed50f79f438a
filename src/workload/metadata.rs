//! Cloud metadata servers as token sources: Google's metadata server and Azure's instance
//! metadata service hand a virtual machine (or a pod with the platform's identity) access
//! tokens for its service account or managed identity, with no grant and no secret.
//!
//! Both are plain `http` on a link-local address only the machine reaches, and both ask for a
//! header that a browser or an SSRF'd request cannot set, so that a redirect or a proxied
//! request cannot get a token; redirects are never followed.

use std::{fmt, time::Duration};

use http::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::{
    AuthServerTransport, Error, ErrorKind, FetchContext, Token, TokenSource,
    endpoint::{Endpoint, parse},
    origin::secure_url,
};

const GCP_NAME: &str = "GCP metadata server";
const GCP_BASE: &str = "http://metadata.google.internal";
/// The variable Google's client libraries read for another metadata server address.
const GCE_METADATA_HOST: &str = "GCE_METADATA_HOST";
const GCP_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const IMDS_NAME: &str = "Azure instance metadata service";
const IMDS_BASE: &str = "http://169.254.169.254";
const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
const IMDS_API_VERSION: &str = "2018-02-01";

/// Access tokens of a Google Cloud workload's service account, from the metadata server
/// (Compute Engine, GKE with Workload Identity Federation, Cloud Run, Cloud Functions).
///
/// Each fetch is `GET http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token`
/// with `Metadata-Flavor: Google`; the answer is a token response (`access_token`,
/// `expires_in`, `token_type`). The server caches its tokens and hands out a new one a few
/// minutes before the last expires; a [`TokenCache`](crate::TokenCache) over this source asks
/// it when its own copy goes stale.
///
/// ```
/// use tower_oauth2::{OAuth2Layer, workload::GcpMetadata};
///
/// # let http = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # });
/// let source = GcpMetadata::new(http)?.scopes(["https://www.googleapis.com/auth/cloud-platform"]);
/// let layer = OAuth2Layer::new(source);
/// # Ok::<_, tower_oauth2::Error>(())
/// ```
///
/// An error answer (the server answers 404 text for an unknown account, 403 for a missing
/// header) is an [`ErrorKind::UnexpectedResponse`] with its status; a redirect too; a body
/// that is not a token response an [`ErrorKind::InvalidResponse`]; one over
/// [`max_body_size`](Self::max_body_size) an [`ErrorKind::BodyTooLarge`]. Every error names
/// the "GCP metadata server" and quotes no token.
#[derive(Clone)]
pub struct GcpMetadata {
    endpoint: Endpoint,
    url: Url,
}

impl GcpMetadata {
    /// The metadata server at `http://metadata.google.internal`, reached through `http`; or
    /// at `http://$GCE_METADATA_HOST` when that variable is set, as Google's own client
    /// libraries do (emulators and some sandboxes set it).
    pub fn new<B>(http: impl AuthServerTransport<B>) -> Result<Self, Error> {
        match std::env::var(GCE_METADATA_HOST) {
            Ok(host) if !host.is_empty() => Self::with_base_url(&format!("http://{host}"), http),
            _ => Self::with_base_url(GCP_BASE, http),
        }
    }

    /// The metadata server at `base` (such as `http://169.254.169.254`, or a test's fake).
    pub fn with_base_url<B>(base: &str, http: impl AuthServerTransport<B>) -> Result<Self, Error> {
        let url = metadata_url(base, GCP_PATH, "the GCP metadata server URL")?;
        Ok(Self {
            endpoint: Endpoint::new(GCP_NAME, uri(&url)?, http.erase(), true),
            url,
        })
    }

    /// Asks for tokens with these OAuth scopes (`?scopes=a,b`) instead of the account's
    /// default ones.
    #[must_use]
    pub fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(|s| s.as_ref().to_owned()).collect();
        if !scopes.is_empty() {
            self.url
                .query_pairs_mut()
                .append_pair("scopes", &scopes.join(","));
            self.endpoint = moved(&self.endpoint, &self.url);
        }
        self
    }

    /// How long one fetch may take. Default: 30 seconds.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.endpoint.set_timeout(timeout);
        self
    }

    /// The largest answer body read, in bytes. Default: 1 MiB.
    #[must_use]
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.endpoint.set_max_body_size(bytes);
        self
    }
}

impl TokenSource for GcpMetadata {
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, Error> {
        fetch(&self.endpoint, "metadata-flavor", "Google").await
    }

    fn grant_type(&self) -> &'static str {
        "gcp_metadata"
    }
}

/// Access tokens of an Azure virtual machine's (or App Service's, or container's) managed
/// identity, from the instance metadata service (IMDS).
///
/// Each fetch is `GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=RESOURCE`
/// with `Metadata: true`, plus `&client_id=ID` for a user-assigned identity; the answer
/// carries `access_token`, `expires_in` (as a string), `expires_on`, `resource` and
/// `token_type`.
///
/// ```
/// use tower_oauth2::{OAuth2Layer, workload::AzureImds};
///
/// # let http = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # });
/// let source = AzureImds::new("https://management.azure.com/", http)?
///     .client_id("00000000-0000-0000-0000-000000000001");
/// let layer = OAuth2Layer::new(source);
/// # Ok::<_, tower_oauth2::Error>(())
/// ```
///
/// IMDS answers errors as `{"error": "...", "error_description": "..."}` (an unknown
/// identity is `400 invalid_request`): an [`ErrorKind::Rejected`] with that code. Anything
/// else, redirects included, is typed as for [`GcpMetadata`], naming the
/// "Azure instance metadata service".
#[derive(Clone)]
pub struct AzureImds {
    endpoint: Endpoint,
    url: Url,
}

impl AzureImds {
    /// Tokens for `resource` (the API's App ID URI, such as `https://management.azure.com/`)
    /// from IMDS at `http://169.254.169.254`, reached through `http`.
    pub fn new<B>(resource: &str, http: impl AuthServerTransport<B>) -> Result<Self, Error> {
        Self::with_base_url(IMDS_BASE, resource, http)
    }

    /// Like [`new`](Self::new), from IMDS at `base` (a test's fake, an emulator).
    pub fn with_base_url<B>(
        base: &str,
        resource: &str,
        http: impl AuthServerTransport<B>,
    ) -> Result<Self, Error> {
        let mut url = metadata_url(base, IMDS_PATH, "the Azure IMDS URL")?;
        url.query_pairs_mut()
            .append_pair("api-version", IMDS_API_VERSION)
            .append_pair("resource", resource);
        Ok(Self {
            endpoint: Endpoint::new(IMDS_NAME, uri(&url)?, http.erase(), true),
            url,
        })
    }

    /// Asks for the tokens of the user-assigned managed identity `client_id`, not the
    /// system-assigned one.
    #[must_use]
    pub fn client_id(mut self, client_id: &str) -> Self {
        self.url
            .query_pairs_mut()
            .append_pair("client_id", client_id);
        self.endpoint = moved(&self.endpoint, &self.url);
        self
    }

    /// How long one fetch may take. Default: 30 seconds.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.endpoint.set_timeout(timeout);
        self
    }

    /// The largest answer body read, in bytes. Default: 1 MiB.
    #[must_use]
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.endpoint.set_max_body_size(bytes);
        self
    }
}

impl TokenSource for AzureImds {
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, Error> {
        fetch(&self.endpoint, "metadata", "true").await
    }

    fn grant_type(&self) -> &'static str {
        "azure_imds"
    }
}

/// `base` with `path`; plain `http` is what metadata servers speak, on an address only the
/// machine reaches.
fn metadata_url(base: &str, path: &str, what: &str) -> Result<Url, Error> {
    secure_url(&format!("{}{path}", base.trim_end_matches('/')), what, true)
}

fn uri(url: &Url) -> Result<http::Uri, Error> {
    url.as_str().parse().map_err(|_| {
        Error::new(ErrorKind::Config).with_detail("the metadata server URL is not a valid URI")
    })
}

/// `endpoint` at `url`, which came from a valid URI plus query pairs and so parses.
fn moved(endpoint: &Endpoint, url: &Url) -> Endpoint {
    match uri(url) {
        Ok(uri) => endpoint.moved_to(&uri),
        Err(_) => endpoint.clone(),
    }
}

/// One `GET` of a token with the header `name: value` the server demands.
async fn fetch(
    endpoint: &Endpoint,
    name: &'static str,
    value: &'static str,
) -> Result<Token, Error> {
    let mut headers = HeaderMap::new();
    headers.insert(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    );
    endpoint
        .get_with(headers, &[], |status, headers, body, secrets| {
            parse::parse_bound_response(status, headers, body, secrets, None)
        })
        .await
}

impl fmt::Debug for GcpMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpMetadata")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl fmt::Debug for AzureImds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureImds")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Full;

    use super::*;

    fn echo_uri() -> impl AuthServerTransport<Full<Bytes>> {
        tower::service_fn(|request: Request<Full<Bytes>>| async move {
            let body = format!(
                r#"{{"access_token":"{}","expires_in":"3599","token_type":"Bearer"}}"#,
                request.uri().to_string().replace(['"', '\\'], "")
            );
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
        })
    }

    async fn requested(source: &impl TokenSource) -> String {
        let cx = FetchContext::new(None, crate::FetchReason::Cold);
        source
            .fetch(cx)
            .await
            .unwrap()
            .access_token()
            .expose()
            .to_owned()
    }

    #[tokio::test]
    async fn gcp_scopes_go_in_one_comma_separated_query_parameter() {
        let source = GcpMetadata::with_base_url("http://127.0.0.1:9/", echo_uri())
            .unwrap()
            .scopes(["a", "https://www.googleapis.com/auth/b"]);
        assert_eq!(
            requested(&source).await,
            "http://127.0.0.1:9/computeMetadata/v1/instance/service-accounts/default/token\
             ?scopes=a%2Chttps%3A%2F%2Fwww.googleapis.com%2Fauth%2Fb"
        );
    }

    #[tokio::test]
    async fn imds_asks_for_the_resource_and_a_user_assigned_identity() {
        let source =
            AzureImds::with_base_url("http://127.0.0.1:9", "https://vault.azure.net", echo_uri())
                .unwrap()
                .client_id("id-1");
        assert_eq!(
            requested(&source).await,
            "http://127.0.0.1:9/metadata/identity/oauth2/token?api-version=2018-02-01\
             &resource=https%3A%2F%2Fvault.azure.net&client_id=id-1"
        );
    }

    #[test]
    fn a_base_url_that_is_not_http_is_a_config_error() {
        let error = GcpMetadata::with_base_url("file:///etc", echo_uri()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
    }
}
