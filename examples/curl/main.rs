//! A curl for OAuth 2.0 APIs, in the spirit of Google's `oauth2l curl`: gets a token with the
//! client-credentials or refresh-token grant, then sends requests with it through
//! `OAuth2Layer`, which refreshes the token and retries once when the API answers 401.
//!
//! ```sh
//! cargo run --features https --example curl -- \
//!     --token-url https://auth.example.com/oauth2/token --client-id my-client \
//!     --scope orders:read https://api.example.com/orders
//! ```
//!
//! Output: one line `STATUS BODY` per response on stdout; on stderr, as its last line,
//! `requests=N ok=K token_fetches=F retries_after_401=R`. Exit status: 0 if every response
//! was 2xx, 1 if any was not (or a request failed), 2 if no token could be had or the options
//! are wrong, with a one-line reason that carries the server's OAuth error code or message
//! and never the secret. `tests/curl.rs` runs it against the demo server.

use std::{env, process::ExitCode, time::Duration};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{HeaderName, HeaderValue, Method, Request, Uri, header::CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2::{
    BoxError, ClientAuth, CloneBodies, Error, FetchContext, OAuth2Layer, Secret, Token, TokenCache,
    TokenClient, TokenRequest, TokenSource, grant::ClientCredentials, https,
};

const USAGE: &str = "\
usage: curl [options] URL...

Gets a token, then sends a request to each URL (absolute http(s) URLs) with it. Prints one
line `STATUS BODY` per response on stdout, and on stderr, last,
`requests=N ok=K token_fetches=F retries_after_401=R`.

Token options:
  --token-url URL              the token endpoint (required)
  --client-id ID               the client's id (required)
  --client-secret SECRET       the client's secret (default: env OAUTH2_CLIENT_SECRET;
                               required unless --auth-method none)
  --auth-method basic|post|none  how the client authenticates (default: basic)
  --grant client_credentials|refresh_token  (default: client_credentials)
  --refresh-token TOKEN        the refresh token (required with --grant refresh_token);
                               a token the server rotates replaces it
  --scope SCOPE                a scope to ask for (repeatable, or space-separated)
  --param NAME=VALUE           an extra token request field (repeatable)
  --allow-http                 allow plain http to hosts other than loopback, for the
                               token endpoint and the URLs
  --print-token                print the access token and exit (no URL needed)

Request options:
  -X METHOD                    the method (default: GET, or POST with -d)
  -H 'Name: value'             a request header (repeatable; the last of a name wins)
  -d BODY                      the request body, sent as application/x-www-form-urlencoded
                               unless -H sets Content-Type
  --repeat N                   send every URL N times (default: 1)
  --concurrency C              at most C requests at once (default: 1)
  --interval-ms MS             pause between requests when --concurrency is 1 (default: 0)
  -h, --help                   print this help and exit

Exit status:
  0  every response was 2xx (with --print-token: the token was printed)
  1  a response was not 2xx, or a request got no response; the other requests still run
  2  no token could be had, a URL may not get the token (plain http beyond loopback without
     --allow-http), or the options are wrong; stops at once";

/// What the command line asked for.
struct Options {
    token_url: String,
    client_id: String,
    client_secret: Option<String>,
    auth_method: String,
    grant: String,
    refresh_token: Option<String>,
    scopes: Vec<String>,
    params: Vec<(String, String)>,
    allow_http: bool,
    print_token: bool,
    method: Option<Method>,
    headers: Vec<(HeaderName, HeaderValue)>,
    data: Option<Bytes>,
    repeat: usize,
    concurrency: usize,
    interval: Duration,
    urls: Vec<Uri>,
}

/// Why the run stopped early.
enum Stop {
    /// Bad options: exit 2.
    Usage(String),
    /// No token: exit 2.
    Token(String),
}

#[derive(Default)]
struct Counts {
    requests: u64,
    ok: u64,
    failed: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut counts = Counts::default();
    let mut cache = None;
    let result = match parse(env::args().skip(1)) {
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Some(options)) => run(&options, &mut counts, &mut cache).await,
        Err(stop) => Err(stop),
    };
    let code = match result {
        Ok(()) if counts.failed => 1,
        Ok(()) => 0,
        Err(Stop::Usage(message)) => {
            eprintln!("curl: {message} (see --help)");
            2
        }
        Err(Stop::Token(message)) => {
            eprintln!("curl: no token: {message}");
            2
        }
    };
    let stats = cache.map(|cache: TokenCache| cache.stats());
    eprintln!(
        "requests={} ok={} token_fetches={} retries_after_401={}",
        counts.requests,
        counts.ok,
        stats.map_or(0, |stats| stats.fetches),
        stats.map_or(0, |stats| stats.retries_after_401),
    );
    ExitCode::from(code)
}

async fn run(
    options: &Options,
    counts: &mut Counts,
    cache_out: &mut Option<TokenCache>,
) -> Result<(), Stop> {
    let config = |error: Error| Stop::Usage(error.to_string());
    let http = https::client().map_err(config)?;
    let endpoint = if options.allow_http {
        TokenClient::with_plain_http(&options.token_url, http.clone())
    } else {
        TokenClient::new(&options.token_url, http.clone())
    }
    .map_err(config)?;

    let secret = options
        .client_secret
        .clone()
        .or_else(|| env::var("OAUTH2_CLIENT_SECRET").ok());
    let id = options.client_id.clone();
    let auth = match (options.auth_method.as_str(), secret) {
        ("none", _) => ClientAuth::none(id),
        ("basic", Some(secret)) => ClientAuth::basic(id, secret),
        ("post", Some(secret)) => ClientAuth::post(id, secret),
        ("basic" | "post", None) => {
            return Err(Stop::Usage(
                "--client-secret or OAUTH2_CLIENT_SECRET is required".into(),
            ));
        }
        (other, _) => return Err(Stop::Usage(format!("unknown --auth-method {other}"))),
    };

    let cache = match options.grant.as_str() {
        "client_credentials" => {
            let mut grant = ClientCredentials::new(endpoint, auth).scopes(&options.scopes);
            for (name, value) in &options.params {
                grant = grant.param(name, value);
            }
            TokenCache::new(grant)
        }
        "refresh_token" => {
            let Some(refresh_token) = &options.refresh_token else {
                return Err(Stop::Usage(
                    "--grant refresh_token needs --refresh-token".into(),
                ));
            };
            let mut request = TokenRequest::new("refresh_token").scopes(&options.scopes);
            for (name, value) in &options.params {
                request = request.param(name, value);
            }
            TokenCache::new(RefreshGrant {
                endpoint,
                auth,
                request,
                refresh_token: Secret::new(refresh_token.as_str()),
            })
        }
        other => return Err(Stop::Usage(format!("unknown --grant {other}"))),
    };
    *cache_out = Some(cache.clone());

    if options.print_token {
        let token = cache
            .token()
            .await
            .map_err(|error| Stop::Token(error.to_string()))?;
        println!("{}", token.token().access_token().expose());
        return Ok(());
    }

    // A URL the token may not go to (plain http beyond loopback, without --allow-http) fails
    // rather than going out without it.
    let mut layer = OAuth2Layer::new(cache).replay(CloneBodies);
    if options.allow_http {
        layer = layer.allow_plain_http();
    }
    let client = ServiceBuilder::new().layer(layer).service(http);

    let requests = (0..options.repeat).flat_map(|_| options.urls.iter());
    let mut responses = stream::iter(requests.enumerate())
        .map(|(n, url)| {
            let client = client.clone();
            let request = build_request(options, url);
            let pause = if options.concurrency == 1 && n > 0 {
                options.interval
            } else {
                Duration::ZERO
            };
            async move {
                tokio::time::sleep(pause).await;
                let response = client.oneshot(request?).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                Ok::<_, BoxError>((status, body))
            }
        })
        .buffer_unordered(options.concurrency);

    while let Some(outcome) = responses.next().await {
        match outcome {
            Ok((status, body)) => {
                counts.requests += 1;
                if status.is_success() {
                    counts.ok += 1;
                } else {
                    counts.failed = true;
                }
                let body = String::from_utf8_lossy(&body);
                println!("{} {}", status.as_u16(), body.trim_end().replace('\n', " "));
            }
            Err(error) => match error.downcast_ref::<Error>() {
                Some(error) => return Err(Stop::Token(error.to_string())),
                None => {
                    counts.requests += 1;
                    counts.failed = true;
                    eprintln!("curl: request failed: {error}");
                }
            },
        }
    }
    Ok(())
}

fn build_request(options: &Options, url: &Uri) -> Result<Request<Full<Bytes>>, BoxError> {
    let method = match (&options.method, &options.data) {
        (Some(method), _) => method.clone(),
        (None, Some(_)) => Method::POST,
        (None, None) => Method::GET,
    };
    let mut request = Request::builder()
        .method(method)
        .uri(url.clone())
        .body(Full::new(options.data.clone().unwrap_or_default()))?;
    let headers = request.headers_mut();
    if options.data.is_some() {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    for (name, value) in &options.headers {
        headers.insert(name.clone(), value.clone());
    }
    Ok(request)
}

/// The refresh-token grant, as a custom `TokenSource`: the token it replaces lends its refresh
/// token when the server rotated it, and the one given on the command line serves first.
struct RefreshGrant {
    endpoint: TokenClient,
    auth: ClientAuth,
    request: TokenRequest,
    refresh_token: Secret,
}

impl TokenSource for RefreshGrant {
    async fn fetch(&self, cx: FetchContext<'_>) -> Result<Token, Error> {
        let refresh_token = cx
            .previous()
            .and_then(Token::refresh_token)
            .unwrap_or(&self.refresh_token);
        let request = self
            .request
            .clone()
            .secret_param("refresh_token", refresh_token.expose());
        self.endpoint.request(&request, &self.auth).await
    }

    fn grant_type(&self) -> &'static str {
        "refresh_token"
    }
}

/// Parses the command line; `None` asks for the usage text.
fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, Stop> {
    let usage = |message: String| Stop::Usage(message);
    let mut options = Options {
        token_url: String::new(),
        client_id: String::new(),
        client_secret: None,
        auth_method: "basic".into(),
        grant: "client_credentials".into(),
        refresh_token: None,
        scopes: Vec::new(),
        params: Vec::new(),
        allow_http: false,
        print_token: false,
        method: None,
        headers: Vec::new(),
        data: None,
        repeat: 1,
        concurrency: 1,
        interval: Duration::ZERO,
        urls: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| usage(format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--token-url" => options.token_url = value()?,
            "--client-id" => options.client_id = value()?,
            "--client-secret" => options.client_secret = Some(value()?),
            "--auth-method" => options.auth_method = value()?,
            "--grant" => options.grant = value()?,
            "--refresh-token" => options.refresh_token = Some(value()?),
            "--scope" => options
                .scopes
                .extend(value()?.split_whitespace().map(str::to_owned)),
            "--param" => {
                let pair = value()?;
                let (name, value) = pair
                    .split_once('=')
                    .ok_or_else(|| usage(format!("--param {pair}: expected NAME=VALUE")))?;
                options.params.push((name.into(), value.into()));
            }
            "--allow-http" => options.allow_http = true,
            "--print-token" => options.print_token = true,
            "-X" => {
                let method = value()?;
                let parsed = Method::from_bytes(method.as_bytes())
                    .map_err(|_| usage(format!("-X {method}: not a method")))?;
                options.method = Some(parsed);
            }
            "-H" => {
                let header = value()?;
                let parsed = header.split_once(':').and_then(|(name, value)| {
                    let name = HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
                    let mut value = HeaderValue::from_str(value.trim()).ok()?;
                    value.set_sensitive(true);
                    Some((name, value))
                });
                // The header may carry a credential: the message names the option only.
                options
                    .headers
                    .push(parsed.ok_or_else(|| usage("-H: expected 'Name: value'".into()))?);
            }
            "-d" => options.data = Some(Bytes::from(value()?)),
            "--repeat" => options.repeat = number(&arg, &value()?)?,
            "--concurrency" => options.concurrency = number(&arg, &value()?)?.max(1),
            "--interval-ms" => {
                options.interval = Duration::from_millis(number(&arg, &value()?)? as u64);
            }
            flag if flag.starts_with('-') => return Err(usage(format!("unknown option {flag}"))),
            url => {
                let parsed = url
                    .parse::<Uri>()
                    .ok()
                    .filter(|uri| uri.scheme().is_some() && uri.host().is_some())
                    .ok_or_else(|| usage("a URL is not an absolute http(s) URL".into()))?;
                options.urls.push(parsed);
            }
        }
    }
    if options.token_url.is_empty() || options.client_id.is_empty() {
        return Err(usage("--token-url and --client-id are required".into()));
    }
    if options.urls.is_empty() && !options.print_token {
        return Err(usage("no URL given".into()));
    }
    Ok(Some(options))
}

fn number(option: &str, value: &str) -> Result<usize, Stop> {
    value
        .parse()
        .map_err(|_| Stop::Usage(format!("{option} {value}: not a number")))
}
