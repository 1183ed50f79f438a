//! A curl for OAuth 2.0 APIs, in the spirit of Google's `oauth2l curl`: gets a token with the
//! client-credentials, refresh-token, JWT bearer, token exchange or device authorization
//! grant, then sends requests with it through
//! `OAuth2Layer`, which refreshes the token and retries once when the API answers 401. The
//! token endpoint is given or discovered from the issuer; the client authenticates with a
//! secret, a signed JWT (`client_secret_jwt`, `private_key_jwt`), a TLS client certificate
//! (`tls_client_auth`, `self_signed_tls_client_auth`) or not at all.
//!
//! ```sh
//! cargo run --features https,dpop --example curl -- \
//!     --issuer https://auth.example.com --client-id my-client \
//!     --auth-method private_key_jwt --private-key client-key.pem \
//!     --scope orders:read --resource https://api.example.com https://api.example.com/orders
//! ```
//!
//! Output: one line `STATUS BODY` per response on stdout; on stderr, as its last line,
//! `requests=N ok=K token_fetches=F retries_after_401=R credential_reloads=C` (C: how often a
//! credential file that changed, a secret, an assertion or a certificate, was taken up).
//! Exit status: 0 if every response
//! was 2xx, 1 if any was not (or a request failed), 2 if no token could be had or the options
//! are wrong, with a one-line reason that carries the server's OAuth error code or message
//! and never the secret. `tests/curl/` runs it against the demo server.
//!
//! Processes started with the same `--redis` (or `--redis-cluster`) and `--redis-key-file`
//! share their tokens through Redis, so that all of them together run one grant per token
//! lifetime; the summary line then also says ` fleet_reads=S`. The Redis options need the
//! `redis` feature (`cargo run --features https,dpop,redis --example curl`); without it they are
//! refused with a message that says so, and the example needs only `https` and `dpop`, so the
//! command above keeps working. `tests/fleet/` runs many of these processes against real Redis servers.

mod delegation;
mod fleet;
mod options;
mod tls;
mod token;
mod workload;

use std::{env, process::ExitCode, time::Duration};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{HeaderValue, Method, Request, Uri, header::CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2::{
    BoxError, ClientAuth, CloneBodies, DpopKey, Error, OAuth2Layer, TokenCache,
    https::ClientIdentity,
};

use self::{
    fleet::Fleet,
    options::{Options, Stop, USAGE, parse},
};

/// What the run did, for the summary line.
#[derive(Default)]
struct Counts {
    requests: u64,
    ok: u64,
    failed: bool,
    cache: Option<TokenCache>,
    fleet: Option<Fleet>,
    /// Kept for the count of credentials taken up again after they changed.
    auth: Option<ClientAuth>,
    identity: Option<ClientIdentity>,
}

impl Counts {
    fn credential_reloads(&self) -> u64 {
        self.auth.as_ref().map_or(0, ClientAuth::credential_reloads)
            + self.identity.as_ref().map_or(0, ClientIdentity::reloads)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut counts = Counts::default();
    let (result, sharing) = match parse(env::args().skip(1)) {
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Some(options)) => {
            if options.verbose {
                log_to_stderr();
            }
            let result = run(&options, &mut counts).await;
            (result, options.redis.wanted())
        }
        Err(stop) => (Err(stop), false),
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
        Err(Stop::Discovery(message)) => {
            eprintln!("curl: discovery failed: {message}");
            2
        }
    };
    let fallbacks = counts.fleet.as_ref().map_or(0, Fleet::fallbacks);
    if fallbacks > 0 {
        eprintln!(
            "curl: Redis failed or did not answer; {fallbacks} token fetch(es) ran without it"
        );
    }
    let stats = counts.cache.as_ref().map(TokenCache::stats);
    let mut summary = format!(
        "requests={} ok={} token_fetches={} retries_after_401={}",
        counts.requests,
        counts.ok,
        stats.map_or(0, |stats| stats.fetches),
        stats.map_or(0, |stats| stats.retries_after_401),
    );
    if sharing {
        summary += &format!(" fleet_reads={}", stats.map_or(0, |stats| stats.shared));
    }
    summary += &format!(" credential_reloads={}", counts.credential_reloads());
    eprintln!("{summary}");
    ExitCode::from(code)
}

/// `--verbose`: the crate's own log lines, down to `DEBUG`, on stderr. The crate logs no
/// token or secret at any level.
fn log_to_stderr() {
    use tracing_subscriber::{filter::Targets, layer::SubscriberExt, util::SubscriberInitExt};
    let only_the_crate = Targets::new().with_target("tower_oauth2", tracing::Level::DEBUG);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(false),
        )
        .with(only_the_crate)
        .init();
}

async fn run(options: &Options, counts: &mut Counts) -> Result<(), Stop> {
    // Checked before anything is sent: a bad key file must not cost a grant.
    counts.fleet = Fleet::from_options(&options.redis)?;
    let (http, identity) = tls::client(options)?;
    counts.identity = identity;
    let (builder, device) = match options.workload.token_source(options, &http)? {
        Some(builder) => (builder, None),
        None => grant(options, &http, counts).await?,
    };
    let builder = match options.fetch_timeout {
        Some(timeout) => builder.fetch_timeout(timeout),
        None => builder,
    };
    let cache = fleet::join(builder, counts.fleet.as_ref())?.build();
    counts.cache = Some(cache.clone());
    if let Some(device) = device {
        delegation::sign_in(&device, &cache).await?;
    }

    if options.print_token {
        let token = cache
            .token()
            .await
            .map_err(|error| token::no_token(options, &error))?;
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
                Some(error) => return Err(token::no_token(options, error)),
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

/// The cache over the grant of the command line, and the device grant if it is that one.
async fn grant(
    options: &Options,
    http: &tower_oauth2::https::HttpsClient,
    counts: &mut Counts,
) -> Result<
    (
        tower_oauth2::TokenCacheBuilder,
        Option<tower_oauth2::grant::DeviceCode>,
    ),
    Stop,
> {
    let azure = options.workload.azure()?;
    let mut endpoint = match &azure {
        Some(azure) if options.token_url.is_none() && options.issuer.is_none() => {
            tower_oauth2::TokenClient::new(azure.token_url(), http.clone())
                .map_err(|error| Stop::Usage(error.to_string()))?
        }
        _ => token::endpoint(options, http).await?,
    };
    if options.dpop {
        let key = DpopKey::generate().map_err(|error| Stop::Usage(error.to_string()))?;
        endpoint = endpoint.dpop(&key);
    }
    let key = token::signing_key(options)?;
    let auth = match options
        .workload
        .client_auth(options, http, azure.as_ref())?
    {
        Some(auth) => auth,
        None => token::client_auth(options, key.clone())?,
    };
    counts.auth = Some(auth.clone());
    if delegation::handles(&options.grant) {
        delegation::cache_builder(options, http, endpoint, auth).await
    } else {
        Ok((token::cache_builder(options, endpoint, auth, key)?, None))
    }
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
