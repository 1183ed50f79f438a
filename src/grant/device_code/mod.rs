//! The device authorization grant (RFC 8628): a device without a browser, or a command-line
//! tool on a remote machine, shows the user a URL and a short code; the user signs in there on
//! another device, while this one polls the token endpoint until they decide.
//!
//! Terms: the *device code* is the secret the device polls with; the *user code* is what the
//! user types at the *verification URI*; a *poll* is one token request with the device code;
//! the *interval* is the least time between polls, which `slow_down` answers lengthen.

mod authorization;
#[cfg(test)]
mod tests;

use std::{fmt, sync::Arc, time::Duration};

use tokio::time::Instant;

pub use self::authorization::DeviceAuthorization;
use super::{
    asks::{Asks, asks},
    refresh_token::renew,
};
use crate::{
    ClientAuth, Error, ErrorKind, FetchContext, Token, TokenClient, TokenRequest, TokenSetId,
    TokenSource,
    discovery::metadata_lacks,
    endpoint::{Endpoint, parse},
};

/// The `grant_type` of a device's token requests.
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// What `slow_down` adds to the interval, for this poll and every later one (RFC 8628 section
/// 3.5).
const SLOW_DOWN: Duration = Duration::from_secs(5);
/// The longest wait between polls after transport failures: RFC 8628 section 3.5 asks for
/// exponential backoff on timeouts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

type Prompt = Arc<dyn Fn(&DeviceAuthorization) + Send + Sync>;

/// A [`TokenSource`] for the device authorization grant (RFC 8628), the sign-in of
/// command-line tools, TVs and devices without a browser.
///
/// It has an interactive step, like [`AuthorizationCode`](super::AuthorizationCode), and the
/// same shape: [`authorize`](Self::authorize) runs the sign-in once and returns the first
/// token; seed a [`TokenCache`](crate::TokenCache) with it, and the cache renews it with its
/// refresh token through this grant, saving each new one to its
/// [store](crate::TokenCacheBuilder::store). The sign-in never runs again by itself: without
/// a refresh token, or when the server refuses it, renewal fails with
/// [`ErrorKind::ReauthorizationRequired`]. A cache whose store holds a token needs no sign-in
/// at start.
///
/// The sign-in:
///
/// 1. posts the client's authentication, `scope`, `resource`s and `audience`s to the device
///    authorization endpoint, which answers with a device code, a user code and the
///    verification URI;
/// 2. shows the user the URI and the code, through [`on_prompt`](Self::on_prompt) (by
///    default a line on standard error);
/// 3. polls the token endpoint every `interval` (5 seconds when the server names none),
///    keeps polling on `authorization_pending`, waits 5 seconds longer for this and every
///    later poll after each `slow_down`, and backs off on timeouts and server errors;
/// 4. ends with the token once the user approves, or an [`ErrorKind::AuthorizationFailed`]
///    error whose [`oauth_error`](Error::oauth_error) is `access_denied` when they deny,
///    and `expired_token` when the server says the device code expired or its `expires_in`
///    passes first (then without asking the server again).
///
/// Dropping the future of [`authorize`](Self::authorize) or
/// [`wait_for_user`](Self::wait_for_user) stops polling at once; so does
/// [`DeviceAuthorization::cancel`], from anywhere that holds a clone.
///
/// ```
/// # use bytes::Bytes;
/// # use http::{Request, Response};
/// # use http_body_util::Full;
/// # use tower::service_fn;
/// use tower_oauth2::{ClientAuth, TokenCache, TokenClient, grant::DeviceCode};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), tower_oauth2::Error> {
/// # let http = service_fn(|request: Request<Full<Bytes>>| async move {
/// #     let body = match request.uri().path() {
/// #         "/oauth2/device" => r#"{"device_code":"d","user_code":"WDJB-MJHT","verification_uri":"https://auth.example.com/device","expires_in":600}"#,
/// #         _ => r#"{"access_token":"a","token_type":"Bearer","expires_in":3600,"refresh_token":"r"}"#,
/// #     };
/// #     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
/// # });
/// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
/// let grant = DeviceCode::new(
///     endpoint,
///     ClientAuth::none("my-cli"),
///     "https://auth.example.com/oauth2/device",
/// )?
/// .scopes(["openid", "orders:read"])
/// .on_prompt(|authorization| {
///     eprintln!(
///         "Open {} and enter the code {}",
///         authorization.verification_uri(),
///         authorization.user_code()
///     );
/// });
/// let cache = TokenCache::new(grant.clone());
/// let token = grant.authorize().await?;
/// cache.seed(token).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DeviceCode {
    endpoint: TokenClient,
    device: Endpoint,
    auth: ClientAuth,
    /// Scopes, resources and audiences, and more fields of the device authorization request.
    asks: Asks,
    subject: Option<String>,
    prompt: Option<Prompt>,
}

impl DeviceCode {
    /// Creates the grant: `endpoint` is the token endpoint, `auth` the client authentication
    /// ([`ClientAuth::none`] for a public client, as most device clients are), and
    /// `device_authorization_url` the device authorization endpoint, reached through
    /// `endpoint`'s HTTP client with its limits.
    ///
    /// Fails with [`ErrorKind::Config`] unless the URL is `https` (or `http` on loopback, or
    /// anywhere when `endpoint` was made
    /// [`with_plain_http`](TokenClient::with_plain_http)).
    pub fn new(
        endpoint: TokenClient,
        auth: ClientAuth,
        device_authorization_url: &str,
    ) -> Result<Self, Error> {
        let device = endpoint.sibling(device_authorization_url, "device authorization endpoint")?;
        Ok(Self {
            endpoint,
            device,
            auth,
            asks: Asks::default(),
            subject: None,
            prompt: None,
        })
    }

    /// Creates the grant for the server `discovery` finds: its token endpoint (see
    /// [`TokenClient::discover`]) and its `device_authorization_endpoint`.
    ///
    /// # Errors
    ///
    /// Those of [`Discovery::metadata`](crate::Discovery::metadata), and
    /// [`ErrorKind::InvalidResponse`] when the metadata names no device authorization
    /// endpoint.
    pub async fn discover(discovery: &crate::Discovery, auth: ClientAuth) -> Result<Self, Error> {
        let endpoint = TokenClient::discover(discovery).await?;
        let metadata = discovery.metadata().await?;
        let url = metadata
            .device_authorization_endpoint()
            .ok_or_else(|| metadata_lacks("the metadata has no `device_authorization_endpoint`"))?;
        Self::new(endpoint, auth, url)
    }

    /// Binds the tokens to `key` (DPoP, RFC 9449): every poll and every refresh carry a proof,
    /// as with [`TokenClient::dpop`], which this sets on the grant's token client. For a grant
    /// made with [`discover`](Self::discover), whose token client is its own.
    #[cfg(feature = "dpop")]
    #[cfg_attr(docsrs, doc(cfg(feature = "dpop")))]
    #[must_use]
    pub fn dpop(mut self, key: &crate::DpopKey) -> Self {
        self.endpoint = self.endpoint.dpop(key);
        self
    }

    asks!(
        asks,
        first: "the device authorization request",
        every: "the device authorization request, every poll and every refresh",
        scopes: "Renewals ask for the scopes of the original grant.",
    );

    /// Names the user these tokens are for, so that caches in other processes may share them
    /// through a fleet (`TokenCacheBuilder::fleet`). Without it they are never shared.
    #[must_use]
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Calls `show` with the server's answer, before the first poll, instead of printing the
    /// verification URI and user code to standard error: the app shows them its own way (a
    /// QR code of [`verification_uri_complete`](DeviceAuthorization::verification_uri_complete),
    /// say).
    #[must_use]
    pub fn on_prompt(
        mut self,
        show: impl Fn(&DeviceAuthorization) + Send + Sync + 'static,
    ) -> Self {
        self.prompt = Some(Arc::new(show));
        self
    }

    /// Runs the whole sign-in: [`start`](Self::start), the prompt, then
    /// [`wait_for_user`](Self::wait_for_user). Seed a [`TokenCache`](crate::TokenCache) with
    /// the token it returns.
    ///
    /// # Errors
    ///
    /// Those of [`start`](Self::start) and [`wait_for_user`](Self::wait_for_user).
    pub async fn authorize(&self) -> Result<Token, Error> {
        let authorization = self.start().await?;
        match &self.prompt {
            Some(show) => show(&authorization),
            None => eprintln!(
                "To sign in, open {} and enter the code {}",
                authorization.verification_uri(),
                authorization.user_code()
            ),
        }
        self.wait_for_user(&authorization).await
    }

    /// Asks the device authorization endpoint for a device code and a user code, for an app
    /// that shows them and waits itself.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Rejected`] when the server refuses the request (such as
    /// `invalid_client` or `invalid_scope`), [`ErrorKind::InvalidResponse`] when its answer
    /// lacks `device_code`, `user_code`, `verification_uri` or `expires_in`, and the other
    /// kinds of [`TokenClient::request`]; each names the device authorization endpoint.
    pub async fn start(&self) -> Result<DeviceAuthorization, Error> {
        let mut request = self
            .asks
            .with_targets(TokenRequest::without_grant_type().scopes(&self.asks.scopes));
        for (name, value) in &self.asks.params {
            request = request.param(name, value);
        }
        let started = Instant::now();
        let answer = self
            .device
            .post(&request, &self.auth, parse::parse_object)
            .await?;
        DeviceAuthorization::read(answer, started)
            .map_err(|error| error.at("device authorization endpoint"))
    }

    /// Polls the token endpoint with `authorization`'s device code until the user decides,
    /// the code expires, or `authorization` is [cancelled](DeviceAuthorization::cancel).
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::AuthorizationFailed`] with [`oauth_error`](Error::oauth_error)
    ///   `access_denied` when the user denies, or `expired_token` when the code expires
    ///   (said by the server, or its `expires_in` passed here); also, without an OAuth error,
    ///   when cancelled.
    /// - [`ErrorKind::Rejected`] for any other refusal, such as `invalid_client`.
    pub async fn wait_for_user(&self, authorization: &DeviceAuthorization) -> Result<Token, Error> {
        let request = self.asks.with_targets(
            TokenRequest::new(GRANT_TYPE)
                .secret_param("device_code", authorization.device_code().clone()),
        );
        let deadline = authorization.deadline();
        let mut interval = authorization.interval();
        loop {
            let next = Instant::now() + interval;
            if next >= deadline {
                authorization.sleep_until(deadline).await?;
                return Err(expired());
            }
            authorization.sleep_until(next).await?;
            let error = match self.endpoint.request(&request, &self.auth).await {
                Ok(token) => return Ok(token),
                Err(error) => error,
            };
            match error.oauth_error() {
                Some("authorization_pending") => {}
                Some("slow_down") => interval += SLOW_DOWN,
                Some("access_denied" | "expired_token") => {
                    return Err(error.with_kind(ErrorKind::AuthorizationFailed));
                }
                _ if error.is_transient() => {
                    tracing::debug!(error = %error, "device poll failed; backing off");
                    interval = (interval * 2).min(MAX_BACKOFF).max(interval);
                }
                _ => return Err(error),
            }
        }
    }
}

/// The device code's own `expires_in` passed before the user decided.
fn expired() -> Error {
    Error::new(ErrorKind::AuthorizationFailed)
        .with_oauth(Some("expired_token".to_owned()), None, None)
        .with_detail("the device code's `expires_in` passed before the user decided")
}

impl TokenSource for DeviceCode {
    /// Renews the token with the refresh token of the one it replaces.
    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, Error> {
        let sign_in = "run the device sign-in (DeviceCode::authorize)";
        renew(
            cx,
            &self.endpoint,
            &self.auth,
            &self.asks.refresh(),
            sign_in,
        )
        .await
    }

    fn grant_type(&self) -> &'static str {
        "device_code"
    }

    fn identity(&self) -> Option<TokenSetId> {
        let subject = self.subject.as_deref()?;
        let client_id = self.auth.client_id();
        Some(
            self.asks
                .token_set(&self.endpoint, client_id, GRANT_TYPE, subject),
        )
    }
}

impl fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCode")
            .field("endpoint", &self.endpoint)
            .field("device", &self.device)
            .field("auth", &self.auth)
            .field("scopes", &self.asks.scopes)
            .field("targets", &self.asks.targets)
            .field("params", &self.asks.params)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}
