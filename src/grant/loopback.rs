//! Receiving the authorization redirect on a loopback port, for native and command-line apps
//! (RFC 8252 section 7.3): the app listens on `127.0.0.1`, sends the user's browser to the
//! authorization server, and the server redirects the browser back to the app's port.

use std::{
    ffi::OsString,
    fmt,
    net::{IpAddr, Ipv4Addr},
    pin::pin,
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinSet,
};
use url::{Host, Url};
use zeroize::Zeroizing;

use super::{AuthorizationCode, Callback};
use crate::{BoxError, Error, ErrorKind, Secret, Token};

/// The longest request head read from the browser.
const MAX_HEAD: usize = 16 * 1024;
/// How long one connection may take to send its request. Browsers open spare connections that
/// never send anything; each is served on its own, so none holds up the real redirect.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the interactive part of an [`AuthorizationCode`] grant for an app on the user's
/// machine: listens on a loopback port, hands out the authorization URL, receives the redirect,
/// checks its `state` (and `iss`, when the grant has an
/// [`issuer`](AuthorizationCode::issuer)), answers the browser with a page saying the window can be closed, and
/// exchanges the code. Needs the `loopback-redirect` feature (on by default).
///
/// The grant's redirect URI says where to listen: `http://127.0.0.1/callback` listens on
/// `127.0.0.1` on a port the system picks, and sends that port in the redirect URI (servers
/// accept any port for a loopback redirect URI registered without one, RFC 8252 section 7.3).
/// A redirect URI with a port listens on that port. `http://[::1]/...` listens on IPv6;
/// `http://localhost/...` listens on `127.0.0.1`.
///
/// By default the URL is printed to standard error for the user to open;
/// [`open_with`](Self::open_with) also starts a browser, [`on_url`](Self::on_url) replaces the
/// printing.
///
/// ```no_run
/// # use bytes::Bytes;
/// # use http_body_util::Full;
/// use std::time::Duration;
/// use tower_oauth2::{ClientAuth, TokenCache, TokenClient};
/// use tower_oauth2::grant::{AuthorizationCode, LoopbackRedirect};
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), tower_oauth2::BoxError> {
/// # let http = tower::service_fn(|_: http::Request<Full<Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
/// # });
/// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
/// let grant = AuthorizationCode::new(
///     endpoint,
///     ClientAuth::none("my-cli"),
///     "https://auth.example.com/oauth2/authorize",
///     "http://127.0.0.1/callback",
/// )?
/// .scopes(["openid", "orders:read"]);
/// let cache = TokenCache::new(grant.clone());
///
/// let token = LoopbackRedirect::new()
///     .open_with("xdg-open", Vec::<String>::new())
///     .timeout(Duration::from_secs(120))
///     .authorize(&grant)
///     .await?;
/// cache.seed(token).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LoopbackRedirect {
    timeout: Duration,
    browser: Option<(OsString, Vec<OsString>)>,
    on_url: Option<ShowUrl>,
}

type ShowUrl = Arc<dyn Fn(&str) + Send + Sync>;

impl Default for LoopbackRedirect {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            browser: None,
            on_url: None,
        }
    }
}

impl LoopbackRedirect {
    /// Creates the receiver: it prints the URL and waits up to five minutes.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long to wait for the redirect. Default: five minutes.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Also runs `program` with `args` and the URL as its last argument, such as `xdg-open`,
    /// `open` (macOS) or a browser. No shell is involved. When it cannot start, a warning is
    /// logged and the user can still open the printed URL.
    #[must_use]
    pub fn open_with<I, A>(mut self, program: impl Into<OsString>, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.browser = Some((program.into(), args.into_iter().map(Into::into).collect()));
        self
    }

    /// Calls `show` with the URL instead of printing it, for an app that shows it its own way.
    #[must_use]
    pub fn on_url(mut self, show: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_url = Some(Arc::new(show));
        self
    }

    /// Runs the flow for `grant` and returns the token of the exchange; seed a
    /// [`TokenCache`](crate::TokenCache) with it.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::Config`] when the grant's redirect URI is not `http` on a loopback host.
    /// - The errors of [`AuthorizationCode::authorization_request`], for a grant that pushes
    ///   its authorization requests (RFC 9126).
    /// - [`ErrorKind::AuthorizationFailed`] when the port cannot be opened, the server
    ///   redirects back with an error (such as `access_denied`), or no redirect arrives in time.
    /// - [`ErrorKind::StateMismatch`] when the redirect carries another `state`, or
    ///   [`ErrorKind::IssuerMismatch`] when the grant has an
    ///   [`issuer`](AuthorizationCode::issuer) the redirect's `iss` does not name. The flow ends
    ///   there: a redirect that is not the answer to this request is a forgery.
    /// - The errors of [`AuthorizationCode::exchange`].
    pub async fn authorize(&self, grant: &AuthorizationCode) -> Result<Token, Error> {
        let mut redirect = Url::parse(grant.redirect_uri())
            .map_err(|_| Error::config("the redirect URI is not a valid URI"))?;
        let ip = listen_address(&redirect)?;
        let listener = TcpListener::bind((ip, redirect.port().unwrap_or(0)))
            .await
            .map_err(|error| failed("could not listen on the loopback address", error.into()))?;
        let port = listener
            .local_addr()
            .map_err(|error| failed("could not read the listening port", error.into()))?
            .port();
        // A loopback host with a port always takes one.
        let _ = redirect.set_port(Some(port));
        let path = redirect.path().to_owned();

        // A grant that pushes its requests (RFC 9126) does so here, before the URL is shown.
        let pending = grant.authorization_request_to(redirect.into()).await?;
        self.announce(pending.url());
        let expected = Arc::new(Expected {
            path,
            grant: grant.clone(),
            state: pending.state().to_owned(),
        });
        let code = receive(&listener, expected, self.timeout).await?;
        drop(listener);
        grant.redeem(pending, code).await
    }

    fn announce(&self, url: &str) {
        match &self.on_url {
            Some(show) => show(url),
            None => eprintln!("Open this address in your browser to sign in:\n\n    {url}\n"),
        }
        let Some((program, args)) = &self.browser else {
            return;
        };
        let started = Command::new(program)
            .args(args)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match started {
            // A thread of its own reaps it, so a browser that stays open holds up nothing.
            Ok(mut child) => {
                std::thread::spawn(move || child.wait());
            }
            Err(error) => tracing::warn!(
                error = %error,
                "could not start the browser command; the address must be opened by hand"
            ),
        }
    }
}

impl fmt::Debug for LoopbackRedirect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopbackRedirect")
            .field("timeout", &self.timeout)
            .field("browser", &self.browser)
            .field("on_url", &self.on_url.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// Where to listen for `redirect`: its loopback address.
fn listen_address(redirect: &Url) -> Result<IpAddr, Error> {
    let loopback = match redirect.host() {
        Some(Host::Ipv4(ip)) if ip.is_loopback() => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) if ip.is_loopback() => Some(IpAddr::V6(ip)),
        Some(Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => {
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        _ => None,
    };
    match loopback {
        Some(ip) if redirect.scheme() == "http" => Ok(ip),
        _ => Err(Error::config(
            "a loopback redirect URI is http://127.0.0.1/..., http://[::1]/... or http://localhost/...",
        )),
    }
}

/// What the redirect must look like to be the answer to this flow's request.
struct Expected {
    path: String,
    grant: AuthorizationCode,
    state: String,
}

/// Serves connections until one brings the redirect to the expected path, or `timeout` passes;
/// returns its verified code.
async fn receive(
    listener: &TcpListener,
    expected: Arc<Expected>,
    timeout: Duration,
) -> Result<Secret, Error> {
    let mut deadline = pin!(tokio::time::sleep(timeout));
    // Dropping the set when the redirect arrives closes every other connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, Arc::clone(&expected)));
                }
                // Out of file descriptors, say: wait a little rather than spin.
                Err(error) => {
                    tracing::warn!(error = %error, "could not accept a loopback connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(served) = connections.join_next() => {
                if let Ok(Some(outcome)) = served {
                    return outcome;
                }
            }
            () = &mut deadline => {
                return Err(Error::new(ErrorKind::AuthorizationFailed).with_detail(format!(
                    "no redirect arrived within {} seconds",
                    timeout.as_secs()
                )));
            }
        }
    }
}

/// Answers one connection. Returns the outcome when it brought the redirect, `None` for
/// anything else (a favicon request, a connection that never speaks).
async fn serve(mut stream: TcpStream, expected: Arc<Expected>) -> Option<Result<Secret, Error>> {
    let (method, target) = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .ok()??;
    let (request_path, query) = target.split_once('?').unwrap_or((&target, ""));
    if request_path != expected.path {
        respond(&mut stream, "404 Not Found", "Not found", "Nothing here.").await;
        return None;
    }
    if method != "GET" {
        respond(
            &mut stream,
            "405 Method Not Allowed",
            "Not allowed",
            "Use GET.",
        )
        .await;
        return None;
    }
    let outcome = Callback::from_query(query)
        .and_then(|callback| expected.grant.verify(callback, &expected.state));
    // The page never repeats anything from the request: it is served from the app's origin.
    match &outcome {
        Ok(_) => {
            // The code is yet to be exchanged, so the page claims no more than its arrival.
            let text = "Sign-in received. You can close this window and return to the application.";
            respond(&mut stream, "200 OK", "Sign-in received", text).await;
        }
        Err(_) => {
            let text = "Sign-in failed. You can close this window; the application says why.";
            respond(&mut stream, "400 Bad Request", "Sign-in failed", text).await;
        }
    }
    Some(outcome)
}

/// Reads a request head; returns its method and target. The target holds the code, so the
/// buffers are zeroed when dropped.
async fn read_head(stream: &mut TcpStream) -> Option<(String, Zeroizing<String>)> {
    let mut chunk = Zeroizing::new([0u8; 2048]);
    // Room for the longest head read, so the buffer never grows and leaves a copy behind.
    let mut buffer = Zeroizing::new(Vec::with_capacity(MAX_HEAD + chunk.len()));
    loop {
        let read = stream.read(&mut chunk[..]).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buffer) {
            Ok(httparse::Status::Complete(_)) => {
                let method = request.method?.to_owned();
                let target = Zeroizing::new(request.path?.to_owned());
                return Some((method, target));
            }
            Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD => {}
            _ => return None,
        }
    }
}

async fn respond(stream: &mut TcpStream, status: &str, title: &str, text: &str) {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         </head><body><p>{text}</p></body></html>\n"
    );
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // The browser may be gone already; the outcome stands either way.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn failed(detail: &'static str, source: BoxError) -> Error {
    Error::new(ErrorKind::AuthorizationFailed)
        .with_detail(detail)
        .with_source(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_redirect_uris_can_be_served() {
        let address = |uri: &str| listen_address(&Url::parse(uri).unwrap());
        assert_eq!(
            address("http://127.0.0.1/callback").unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert!(address("http://[::1]:8080/cb").unwrap().is_loopback());
        assert!(address("http://localhost/cb").unwrap().is_loopback());
        for bad in [
            "https://127.0.0.1/callback",
            "http://example.com/callback",
            "http://10.0.0.1/callback",
            "com.example.app:/callback",
        ] {
            assert_eq!(address(bad).unwrap_err().kind(), ErrorKind::Config, "{bad}");
        }
    }
}
