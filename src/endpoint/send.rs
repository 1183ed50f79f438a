//! One request to one endpoint of the authorization server: the form or `GET` it sends, the
//! DPoP proof and nonce resend, the timeout and body limit, and the errors that name the
//! endpoint.

use std::{fmt, time::Duration};

use bytes::{Bytes, BytesMut};
use http::{
    HeaderMap, HeaderValue, Method, Request, StatusCode, Uri,
    header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE},
};
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use tower::ServiceExt;
use zeroize::Zeroizing;

use super::{ClientAuth, Presented, ReadToken, TokenRequest, parse, unreachable::unreachable};
use crate::{
    BoxError, Error, ErrorKind, Token,
    dpop::{Binding, DPOP},
    origin::Destination,
    transport::HttpService,
};

/// One endpoint of the authorization server, and the HTTP client and limits it is reached
/// with.
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// What errors call it, such as "token endpoint".
    name: &'static str,
    url: Uri,
    /// The token endpoint of the same server: the `aud` of client assertions sent here.
    token_url: Uri,
    http: HttpService,
    timeout: Duration,
    max_body_size: usize,
    plain_http: bool,
    /// The key of the DPoP proofs sent with each request, and bound tokens come back for.
    dpop: Option<Binding>,
}

impl Endpoint {
    /// The endpoint `name` at `url`, itself the token endpoint unless
    /// [`TokenClient::sibling`](crate::TokenClient::sibling) makes it another, with the default
    /// limits.
    pub(crate) fn new(name: &'static str, url: Uri, http: HttpService, plain_http: bool) -> Self {
        Self {
            name,
            token_url: url.clone(),
            url,
            http,
            timeout: Duration::from_secs(30),
            max_body_size: 1024 * 1024,
            plain_http,
            dpop: None,
        }
    }

    /// This endpoint, moved to `url` by the server's metadata.
    pub(crate) fn moved_to(&self, url: &Uri) -> Self {
        Self {
            url: url.clone(),
            token_url: url.clone(),
            ..self.clone()
        }
    }

    /// Another endpoint of the same server, reached the same way, without DPoP proofs (they
    /// are for token requests).
    pub(crate) fn sibling(&self, name: &'static str, url: Uri) -> Self {
        Self {
            name,
            url,
            dpop: None,
            ..self.clone()
        }
    }

    pub(crate) fn url(&self) -> &Uri {
        &self.url
    }

    pub(crate) fn plain_http(&self) -> bool {
        self.plain_http
    }

    pub(crate) fn http(&self) -> HttpService {
        self.http.clone()
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub(crate) fn set_max_body_size(&mut self, bytes: usize) {
        self.max_body_size = bytes;
    }

    /// The DPoP key token requests are signed with, if any.
    pub(crate) fn dpop(&self) -> Option<&Binding> {
        self.dpop.as_ref()
    }

    #[cfg(feature = "dpop")]
    pub(crate) fn set_dpop(&mut self, binding: Binding) {
        self.dpop = Some(binding);
    }

    /// Sends a token request and parses the token, bound to the DPoP key if it is one.
    pub(crate) async fn post_for_token(
        &self,
        request: &TokenRequest,
        auth: &ClientAuth,
        read: ReadToken,
    ) -> Result<Token, Error> {
        let dpop = self.dpop.as_ref();
        self.post(request, auth, |status, headers, body, secrets| {
            read(status, headers, body, secrets, dpop)
        })
        .await
    }

    /// Sends `request`, authenticated by `auth`, and lets `read` make sense of the answer: its
    /// status, headers, body (within the size limit) and the secrets to scrub from any text it
    /// quotes. Every error names this endpoint.
    ///
    /// With a DPoP key, the request carries a proof, and is sent once more when the server
    /// demands a nonce it has just given. When the server answers `invalid_client` and the
    /// client's credential comes from a source that can change, the source is read again and
    /// the request sent once more if the credential changed: a rotation the client had not
    /// seen yet costs one request, a credential that is simply wrong costs none.
    pub(crate) async fn post<T>(
        &self,
        request: &TokenRequest,
        auth: &ClientAuth,
        read: impl FnOnce(StatusCode, &HeaderMap, &[u8], &[&str]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let token_url = self.token_url.to_string();
        let mut nonce_resent = false;
        let mut reread = false;
        // The origin's nonce of the first proof: where the demanded nonce goes, for the resend.
        let mut origin = None;
        let mut presented = auth
            .present(&token_url)
            .await
            .map_err(|error| error.or_at(self.name))?;
        loop {
            let secrets = request.secrets(auth, &presented);
            let secrets: Vec<&str> = secrets.iter().map(|secret| secret.as_str()).collect();
            let mut http_request = self
                .http_request(request, auth, &presented)
                .map_err(|error| error.at(self.name))?;
            if let Some(key) = &self.dpop {
                let destination = Destination::of(&self.url);
                let (proof, signed_for) = key
                    .sign("POST", &destination, None, origin.take())
                    .map_err(|error| error.at(self.name))?;
                http_request.headers_mut().insert(DPOP, proof);
                origin = Some(signed_for);
            }
            let (status, headers, body) = self.exchange(http_request).await?;
            if let Some(origin) = &origin {
                origin.record(&headers);
                if !nonce_resent && parse::demands_dpop_nonce(status, &headers, &body) {
                    nonce_resent = true;
                    tracing::debug!(endpoint = self.name, "DPoP nonce demanded; sending again");
                    // A new assertion for every request, a resend too: its `jti` is good for one.
                    presented = auth
                        .present_again(&token_url, &presented)
                        .await
                        .map_err(|error| error.or_at(self.name))?;
                    continue;
                }
            }
            let refused = auth.can_change() && parse::is_invalid_client(status, &body);
            if refused {
                // Whatever comes next, the refused credential is not to be kept.
                auth.refused();
            }
            if refused && !reread {
                reread = true;
                // A source that cannot be read now leaves the server's answer to report: the
                // next token request reports the source.
                if let Ok(fresh) = auth.present(&token_url).await
                    && fresh != presented
                {
                    tracing::debug!(
                        endpoint = self.name,
                        "invalid_client; the credential changed, sending again"
                    );
                    presented = fresh;
                    continue;
                }
            }
            return read(status, &headers, &body, &secrets).map_err(|error| error.at(self.name));
        }
    }

    /// Sends a `GET` with `Accept: application/json` and lets `read` make sense of the
    /// answer, with the limits and the error naming of [`post`](Self::post).
    pub(crate) async fn get<T>(
        &self,
        read: impl FnOnce(StatusCode, &HeaderMap, &[u8], &[&str]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.get_with(HeaderMap::new(), &[], read).await
    }

    /// Like [`get`](Self::get), with `headers` added (a metadata server's `Metadata: true`, a
    /// bearer token) and `secrets` scrubbed from any text an error quotes.
    pub(crate) async fn get_with<T>(
        &self,
        headers: HeaderMap,
        secrets: &[&str],
        read: impl FnOnce(StatusCode, &HeaderMap, &[u8], &[&str]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut http_request = Request::builder()
            .method(Method::GET)
            .uri(self.url.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .body(Bytes::new())
            .map_err(|error| {
                Error::new(ErrorKind::Config)
                    .with_source(Box::new(error))
                    .at(self.name)
            })?;
        http_request.headers_mut().extend(headers);
        let (status, headers, body) = self.exchange(http_request).await?;
        read(status, &headers, &body, secrets).map_err(|error| error.at(self.name))
    }

    /// Sends `http_request` and reads the answer within the timeout and the size limit.
    async fn exchange(
        &self,
        http_request: Request<Bytes>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Error> {
        let exchange = async {
            let response = self
                .http
                .clone()
                .oneshot(http_request)
                .await
                .map_err(unreachable)?;
            let (parts, body) = response.into_parts();
            let body = read_body(body, &parts.headers, self.max_body_size).await?;
            Ok((parts.status, parts.headers, body))
        };
        let outcome = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::new(ErrorKind::Timeout).with_detail(format!(
                "no answer within {} (TokenClient::timeout)",
                crate::error::seconds(self.timeout)
            ))),
        };
        outcome.map_err(|error| error.at(self.name))
    }

    fn http_request(
        &self,
        request: &TokenRequest,
        auth: &ClientAuth,
        presented: &Presented,
    ) -> Result<Request<Bytes>, Error> {
        // The body carries the client secret and grant secrets: its bytes are zeroed once the
        // HTTP client drops it.
        let mut form = request.encode(auth, presented);
        let body = Bytes::from_owner(Zeroizing::new(std::mem::take(&mut *form).into_bytes()));
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(CONTENT_LENGTH, body.len());
        if let Some(header) = auth.header(presented) {
            builder = builder.header(AUTHORIZATION, header);
        }
        builder
            .body(body)
            .map_err(|error| Error::new(ErrorKind::Config).with_source(Box::new(error)))
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // User info and query may carry credentials; the origin and path say which endpoint.
        let url = &self.url;
        let port = url
            .port_u16()
            .map(|port| format!(":{port}"))
            .unwrap_or_default();
        let url = format!(
            "{}://{}{port}{}",
            url.scheme_str().unwrap_or_default(),
            url.host().unwrap_or_default(),
            url.path()
        );
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("url", &url)
            .field("timeout", &self.timeout)
            .field("max_body_size", &self.max_body_size)
            .finish_non_exhaustive()
    }
}

/// Reads the whole body, refusing more than `max` bytes.
async fn read_body(
    mut body: UnsyncBoxBody<Bytes, BoxError>,
    headers: &http::HeaderMap,
    max: usize,
) -> Result<Bytes, Error> {
    let too_large = || {
        Error::new(ErrorKind::BodyTooLarge)
            .with_detail(format!("the body is larger than {max} bytes"))
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return Err(too_large());
    }
    // A loop rather than `http_body_util::Limited`: the `Send` check of an async caller holding
    // `Limited` over a boxed-error body trips a rustc limitation (rust-lang/rust#110338).
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            Error::new(ErrorKind::Transport)
                .with_detail("the answer broke off")
                .with_source(error)
        })?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > max {
                return Err(too_large());
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}
