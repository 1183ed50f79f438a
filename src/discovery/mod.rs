//! Discovery: building the server's endpoints from its issuer URL, with the metadata fetched
//! through the same guarded HTTP path as token requests, cached, and fetched again on a
//! schedule or when an endpoint seems to have moved.
//!
//! Terms: *fresh* metadata is younger than the refresh interval and not invalidated; *stale*
//! metadata is still served while a new fetch is due; a failed fetch keeps serving the stale
//! copy and is tried again after the retry interval.

mod fields;
mod metadata;
mod well_known;

use std::{fmt, sync::Arc, time::Duration};

use arc_swap::ArcSwapOption;
use tokio::{sync::Mutex, time::Instant};

pub use self::metadata::ServerMetadata;
use crate::{AuthServerTransport, Error, ErrorKind, endpoint::Endpoint, transport::HttpService};

/// Finds an authorization server's endpoints from its issuer identifier.
///
/// It reads RFC 8414 metadata at `/.well-known/oauth-authorization-server` (inserted before
/// the issuer's path, as RFC 8414 section 3.1 says), and OpenID Connect's
/// `{issuer}/.well-known/openid-configuration` only when the former answers 404. The
/// document's `issuer` must equal the configured one byte for byte, or nothing is sent
/// anywhere else ([`ErrorKind::IssuerMismatch`]).
///
/// The metadata is fetched through `http` like a token request: `https` only (or `http` on
/// loopback), no redirects, a timeout and a body size limit. It is cached for
/// [`refresh_interval`](Self::refresh_interval) (one hour by default), then fetched again at
/// the next use; a client of the token endpoint made by
/// [`TokenClient::discover`](crate::TokenClient::discover) also has it fetched again when
/// the endpoint cannot be reached or answers 404. A failed refresh keeps the metadata it had
/// and tries again after [`retry_interval`](Self::retry_interval).
///
/// Cloning is cheap; clones share the cache.
///
/// ```
/// # use bytes::Bytes;
/// # use http::{Request, Response, StatusCode};
/// # use http_body_util::Full;
/// # use tower::service_fn;
/// use tower_oauth2::Discovery;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_oauth2::Error> {
/// # // A server with only OpenID Connect's document, for a tenant under a path.
/// # let http = service_fn(|request: Request<Full<Bytes>>| async move {
/// #     let mut response = Response::new(Full::new(Bytes::new()));
/// #     if request.uri().path() == "/tenant/.well-known/openid-configuration" {
/// #         *response.body_mut() = Full::new(Bytes::from(r#"{"issuer":"https://auth.example.com/tenant","token_endpoint":"https://auth.example.com/tenant/token","device_authorization_endpoint":"https://auth.example.com/tenant/device"}"#));
/// #     } else {
/// #         *response.status_mut() = StatusCode::NOT_FOUND;
/// #     }
/// #     Ok::<_, std::convert::Infallible>(response)
/// # });
/// let discovery = Discovery::new("https://auth.example.com/tenant", http)?;
/// let metadata = discovery.metadata().await?;
/// assert_eq!(metadata.token_endpoint(), Some("https://auth.example.com/tenant/token"));
/// assert_eq!(
///     metadata.device_authorization_endpoint(),
///     Some("https://auth.example.com/tenant/device")
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Discovery {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    /// RFC 8414's URL, then OpenID Connect's.
    urls: [Endpoint; 2],
    refresh_interval: Duration,
    retry_interval: Duration,
    /// Whether the HTTP client presents a client certificate: the metadata is then handed out
    /// with its `mtls_endpoint_aliases` in place.
    mutual_tls: bool,
    current: ArcSwapOption<Snapshot>,
    /// One fetch at a time; whoever waited on it finds its result in `current`.
    fetching: Mutex<Option<Instant>>,
}

/// Metadata as fetched, and when.
struct Snapshot {
    metadata: Arc<ServerMetadata>,
    fetched_at: Instant,
    invalidated: bool,
}

impl Discovery {
    /// Discovers the server whose issuer identifier is `issuer`, through `http`.
    ///
    /// Fails with [`ErrorKind::Config`] unless `issuer` is an `https` URL (or `http` on
    /// loopback) without query or fragment. Nothing is fetched until
    /// [`metadata`](Self::metadata) is first called.
    pub fn new<B>(issuer: &str, http: impl AuthServerTransport<B>) -> Result<Self, Error> {
        Self::build(issuer, http.erase(), false)
    }

    /// Like [`new`](Self::new), but also accepts a plain `http` issuer and endpoints on any
    /// host. Only for test set-ups: credentials and tokens would cross the network readable.
    pub fn with_plain_http<B>(
        issuer: &str,
        http: impl AuthServerTransport<B>,
    ) -> Result<Self, Error> {
        Self::build(issuer, http.erase(), true)
    }

    fn build(issuer: &str, http: HttpService, plain_http: bool) -> Result<Self, Error> {
        let [rfc8414, oidc] = well_known::well_known(issuer, plain_http)?;
        let endpoint = |url| Endpoint::new("metadata endpoint", url, http.clone(), plain_http);
        Ok(Self {
            inner: Arc::new(Inner {
                issuer: issuer.to_owned(),
                urls: [endpoint(rfc8414), endpoint(oidc)],
                refresh_interval: Duration::from_secs(3600),
                retry_interval: Duration::from_secs(30),
                mutual_tls: false,
                current: ArcSwapOption::empty(),
                fetching: Mutex::new(None),
            }),
        })
    }

    /// How long fetched metadata is used before it is fetched again. Default: one hour.
    #[must_use]
    pub fn refresh_interval(self, interval: Duration) -> Self {
        self.configure(|inner| inner.refresh_interval = interval)
    }

    /// How long after a failed fetch the next is tried, while the metadata fetched before is
    /// still served. Default: 30 seconds.
    #[must_use]
    pub fn retry_interval(self, interval: Duration) -> Self {
        self.configure(|inner| inner.retry_interval = interval)
    }

    /// Says that the HTTP client presents a TLS client certificate (mutual TLS, RFC 8705),
    /// as the `https` feature's client built with an `https::ClientIdentity` does: the
    /// metadata is then handed out as [`ServerMetadata::for_mutual_tls`] makes it, with the
    /// endpoints of its `mtls_endpoint_aliases` in place of the plain ones, so the token,
    /// revocation, device authorization and pushed authorization request endpoints are
    /// reached where the server asks for the certificate. A server without aliases is used
    /// as it is.
    #[must_use]
    pub fn mutual_tls(self) -> Self {
        self.configure(|inner| inner.mutual_tls = true)
    }

    /// How long one metadata request may take. Default: 30 seconds.
    #[must_use]
    pub fn timeout(self, timeout: Duration) -> Self {
        self.configure(|inner| {
            for url in &mut inner.urls {
                url.set_timeout(timeout);
            }
        })
    }

    /// The largest metadata document read, in bytes. Default: 1 MiB.
    #[must_use]
    pub fn max_body_size(self, bytes: usize) -> Self {
        self.configure(|inner| {
            for url in &mut inner.urls {
                url.set_max_body_size(bytes);
            }
        })
    }

    /// Returns the configured issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Returns the server's metadata: the cached copy while it is fresh, else a new one.
    ///
    /// # Errors
    ///
    /// Only when no metadata was ever fetched (a failed refresh serves the copy it had):
    /// - [`ErrorKind::IssuerMismatch`] when the document names another issuer;
    /// - [`ErrorKind::InvalidResponse`] when it is malformed or names an endpoint that is
    ///   not `https`;
    /// - [`ErrorKind::UnexpectedResponse`] when both well-known URLs answer 404, or the first
    ///   answers anything but 200 or 404;
    /// - [`ErrorKind::Timeout`], [`ErrorKind::Transport`], [`ErrorKind::BodyTooLarge`] as for
    ///   token requests. Messages name the `metadata endpoint`.
    pub async fn metadata(&self) -> Result<Arc<ServerMetadata>, Error> {
        if let Some(snapshot) = self.fresh() {
            return Ok(snapshot);
        }
        let mut last_failure = self.inner.fetching.lock().await;
        // Someone else may have fetched while this call waited.
        if let Some(snapshot) = self.fresh() {
            return Ok(snapshot);
        }
        let stale = self.inner.current.load_full();
        if let (Some(stale), Some(failed)) = (&stale, *last_failure)
            && failed.elapsed() < self.inner.retry_interval
        {
            return Ok(stale.metadata.clone());
        }
        match self.fetch().await {
            Ok(metadata) => {
                let metadata = Arc::new(metadata);
                *last_failure = None;
                self.inner.current.store(Some(Arc::new(Snapshot {
                    metadata: metadata.clone(),
                    fetched_at: Instant::now(),
                    invalidated: false,
                })));
                Ok(metadata)
            }
            Err(error) => {
                *last_failure = Some(Instant::now());
                match stale {
                    Some(stale) => {
                        tracing::warn!(
                            issuer = %self.inner.issuer,
                            %error,
                            "fetching the authorization server's metadata failed; \
                             using the copy fetched before",
                        );
                        Ok(stale.metadata.clone())
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// Has the metadata fetched again at its next use, as when an endpoint it names seems to
    /// have moved. A fetch that fails keeps serving the metadata fetched before.
    pub fn invalidate(&self) {
        if let Some(current) = self.inner.current.load_full() {
            self.inner.current.store(Some(Arc::new(Snapshot {
                metadata: current.metadata.clone(),
                fetched_at: current.fetched_at,
                invalidated: true,
            })));
        }
    }

    /// The token endpoint `metadata` names, reached through this discovery's HTTP client.
    pub(crate) fn token_endpoint(&self, metadata: &ServerMetadata) -> Result<Endpoint, Error> {
        let url = metadata
            .token_uri()
            .ok_or_else(|| metadata_lacks("the metadata has no `token_endpoint`"))?;
        let template = &self.inner.urls[0];
        let mut endpoint = Endpoint::new(
            "token endpoint",
            url.clone(),
            template.http(),
            template.plain_http(),
        );
        // The discovery's timeout; the body limit stays the token endpoint's own, as
        // `max_body_size` here is for metadata documents.
        endpoint.set_timeout(template.timeout());
        Ok(endpoint)
    }

    /// Whether URLs from this discovery may be plain `http` beyond loopback.
    pub(crate) fn plain_http(&self) -> bool {
        self.inner.urls[0].plain_http()
    }

    fn fresh(&self) -> Option<Arc<ServerMetadata>> {
        let current = self.inner.current.load();
        let snapshot = current.as_ref()?;
        let fresh =
            !snapshot.invalidated && snapshot.fetched_at.elapsed() < self.inner.refresh_interval;
        fresh.then(|| snapshot.metadata.clone())
    }

    /// Fetches from RFC 8414's URL, then from OpenID Connect's if the first answered 404.
    async fn fetch(&self) -> Result<ServerMetadata, Error> {
        let (issuer, plain_http) = (self.inner.issuer.as_str(), self.plain_http());
        for url in &self.inner.urls {
            if let Some(metadata) = url.get(well_known::read(issuer, plain_http)).await? {
                tracing::debug!(issuer, url = %url.url(), "fetched the authorization server's metadata");
                return Ok(if self.inner.mutual_tls {
                    metadata.for_mutual_tls()
                } else {
                    metadata
                });
            }
        }
        Err(Error::new(ErrorKind::UnexpectedResponse)
            .with_status(http::StatusCode::NOT_FOUND)
            .with_detail(
                "neither /.well-known/oauth-authorization-server nor \
                 /.well-known/openid-configuration has the metadata",
            )
            .at("metadata endpoint"))
    }

    fn configure(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => f(inner),
            None => {
                // A clone exists: give this one a cache of its own with the new setting.
                let shared = &self.inner;
                let mut inner = Inner {
                    issuer: shared.issuer.clone(),
                    urls: shared.urls.clone(),
                    refresh_interval: shared.refresh_interval,
                    retry_interval: shared.retry_interval,
                    mutual_tls: shared.mutual_tls,
                    current: ArcSwapOption::empty(),
                    fetching: Mutex::new(None),
                };
                f(&mut inner);
                self.inner = Arc::new(inner);
            }
        }
        self
    }

    #[cfg(test)]
    fn urls(&self) -> [&http::Uri; 2] {
        [self.inner.urls[0].url(), self.inner.urls[1].url()]
    }
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("issuer", &self.inner.issuer)
            .field("refresh_interval", &self.inner.refresh_interval)
            .field("retry_interval", &self.inner.retry_interval)
            .field("mutual_tls", &self.inner.mutual_tls)
            .field(
                "metadata",
                &self.inner.current.load().as_ref().map(|s| &s.metadata),
            )
            .finish()
    }
}

/// The error for metadata that lacks what the caller needs from it, such as an endpoint.
pub(crate) fn metadata_lacks(detail: &str) -> Error {
    Error::new(ErrorKind::InvalidResponse)
        .with_detail(detail)
        .at("metadata endpoint")
}

#[cfg(test)]
mod tests;
