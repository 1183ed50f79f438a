//! The command line of the `curl` example: its help text and its parser.

use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Uri};

use crate::{delegation::Delegation, tls::ClientCertificate, workload::Workload};

pub(crate) const USAGE: &str = "\
usage: curl [options] URL...

Gets a token, then sends a request to each URL (absolute http(s) URLs) with it. Prints one
line `STATUS BODY` per response on stdout, and on stderr, last,
`requests=N ok=K token_fetches=F retries_after_401=R` (plus ` fleet_reads=S` with a Redis
option), then ` credential_reloads=C`. F counts the grants this process ran itself; S the
tokens it took from Redis instead, once per token, not per request; C how often a credential
file that changed (--client-secret-file, --client-assertion-file, --client-cert/--client-key)
was taken up.

Token options:
  --token-url URL              the token endpoint (wins over --issuer)
  --issuer URL                 the authorization server: its token endpoint is read from its
                               metadata (RFC 8414, else OpenID Connect discovery), whose
                               `issuer` must equal URL exactly; one of the two is required
  --client-id ID               the client's id (required)
  --client-secret SECRET       the client's secret (default: env OAUTH2_CLIENT_SECRET;
                               required for basic, post and client_secret_jwt)
  --client-secret-file FILE    for basic and post: a file holding the secret, read again
                               for every token request (a rotated secret is used from the
                               next one; an invalid_client answer reads it once more)
  --auth-method METHOD         how the client authenticates (default: basic):
                               basic | post | none | client_secret_jwt (an HS256 JWT keyed
                               by the secret) | private_key_jwt (a JWT signed by
                               --private-key); a JWT is made anew for every token request |
                               tls_client_auth | self_signed_tls_client_auth (the
                               certificate of --client-cert; the form carries client_id) |
                               client_assertion (the JWT of --client-assertion-file)
  --client-assertion-file FILE for client_assertion: a file holding a JWT another issuer
                               made for the client (a workload identity token), read again
                               for every token request; one that has expired is never sent
  --private-key FILE           a PKCS#8 PEM private key (RSA, EC P-256 or Ed25519), for
                               private_key_jwt and for self-signed JWT bearer assertions
  --key-id KID                 the key's id, sent as the JWTs' `kid`
  --signing-alg ALG            RS256 | PS256 | ES256 | EdDSA (default by key type: RS256,
                               ES256, EdDSA); one the key cannot make is an error
  --grant GRANT                client_credentials | refresh_token | jwt_bearer |
                               token_exchange | device_code (default: client_credentials)
  --refresh-token TOKEN        the refresh token (required with --grant refresh_token);
                               a token the server rotates replaces it
  --assertion-file FILE        for --grant jwt_bearer: a file holding the assertion, read
                               again for every token request (rotating workload tokens);
                               without it the assertion is signed with --private-key
  --subject NAME               whose tokens these are (a user, a service account): the `sub`
                               of a self-signed JWT bearer assertion (default: the client
                               id), and with --grant refresh_token and a Redis option, which
                               processes share tokens (only those with the same --subject;
                               required there)
  --subject-token-file FILE    for --grant token_exchange (RFC 8693): the file holding the
                               subject token, read again for every token request
  --subject-token-type TYPE    its type (default: urn:ietf:params:oauth:token-type:access_token)
  --actor-token-file FILE      an actor token to send too, read like the subject token
  --actor-token-type TYPE      its type (default: urn:ietf:params:oauth:token-type:access_token)
  --requested-token-type TYPE  the type of token to ask for; the answer's issued_token_type
                               must then be exactly this (it must be there in any case)
  --scope SCOPE                a scope to ask for (repeatable, or space-separated)
  --resource URI               a resource indicator (RFC 8707), sent in every token
                               request (repeatable)
  --audience AUD               the `audience` sent in every token request
  --param NAME=VALUE           an extra token request field (repeatable)
  --workload-identity KIND     the client assertion is the platform's workload token:
                               github-actions (the job's OIDC token, from
                               ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN, kept until a minute
                               before it expires) | azure (AZURE_CLIENT_ID, AZURE_TENANT_ID,
                               AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST give the
                               client id, the token endpoint and the assertion file)
  --assertion-audience AUD     for github-actions: the audience to ask for (default:
                               api://AzureADTokenExchange)
  --token-source KIND          tokens come from the cloud's metadata server, not a grant:
                               gcp-metadata (--scope scopes) | azure-imds (one --resource;
                               --client-id picks a user-assigned identity). No --token-url
                               or --client-id needed
  --metadata-url URL           the metadata server's base URL (default: the cloud's own)
  --dpop                       bind the tokens to a key made for this run (DPoP, RFC 9449):
                               a signed proof on every token and API request, with the
                               server's newest nonce for each origin; API requests use the
                               scheme the token's token_type names
  --cacert FILE                PEM CA certificates to trust beside the built-in roots, for
                               every HTTPS connection (metadata, token endpoint, URLs)
  --client-cert FILE           a PEM client certificate (and its chain), presented on every
                               HTTPS connection that asks for one (metadata, token endpoint,
                               URLs: certificate-bound tokens work); with --issuer, the
                               metadata's mtls_endpoint_aliases are used
  --client-key FILE            the PEM private key of --client-cert (PKCS#8, PKCS#1 or SEC1)
  --allow-http                 allow plain http to hosts other than loopback, for the
                               issuer, the token endpoint and the URLs
  --print-token                print the access token and exit (no URL needed); with a
                               Redis option, the token the processes share

  --grant device_code (RFC 8628) needs --issuer: the device authorization request goes to the
  metadata's device_authorization_endpoint with the client's authentication, scopes,
  resources and audience. Before the first poll, one line on stderr:
  `device_authorization verification_uri=URI user_code=CODE` (plus
  ` verification_uri_complete=URI` when the server sends one). Polls every `interval`
  (default 5 s), 5 s more after each slow_down, until the user decides or the code expires.

Sharing tokens between processes through Redis (one grant per token lifetime for all the
processes that run with the same options; needs the `redis` feature):
  --redis URL                  a Redis server or primary: redis://[:PASSWORD@]HOST:PORT[/DB],
                               rediss://... for TLS (system roots)
  --redis-cluster URL          a node of a Redis Cluster (repeatable: more seed nodes);
                               instead of --redis
  --redis-key-file FILE        the 32-byte key that seals tokens in Redis, as 64 hex
                               characters (whitespace ignored), the same for every process:
                               `openssl rand -hex 32 > FILE`. Required with --redis or
                               --redis-cluster unless --redis-plaintext
  --redis-plaintext            store tokens in Redis unencrypted (anyone who can read the
                               Redis can use them)
  --redis-lease-ms MS          how long a process that died while getting a token delays
                               the others (default: 10000)
  --redis-timeout-ms MS        how long each Redis operation may take before this process
                               gets its own token (default: 1000)
  When Redis cannot be reached or fails, this process gets its own tokens: requests still
  succeed, and the exit status is unaffected (a line on stderr says so).

Request options:
  -X METHOD                    the method (default: GET, or POST with -d)
  -H 'Name: value'             a request header (repeatable; the last of a name wins)
  -d BODY                      the request body, sent as application/x-www-form-urlencoded
                               unless -H sets Content-Type
  --repeat N                   send every URL N times (default: 1)
  --concurrency C              at most C requests at once (default: 1)
  --interval-ms MS             pause between requests when --concurrency is 1 (default: 0)
  --fetch-timeout-ms MS        how long one token fetch may take, retries included, before
                               the requests waiting for it fail (default: 60000)
  -v, --verbose                log what the token cache and the Redis fleet do to stderr
                               (never a token or a secret)
  -h, --help                   print this help and exit

Exit status:
  0  every response was 2xx (with --print-token: the token was printed)
  1  a response was not 2xx, or a request got no response; the other requests still run
  2  no token could be had (the message names the server's OAuth error code, such as
     access_denied or expired_token for device_code, or the issued_token_type that is
     missing or not the one asked for with token_exchange), discovery
     failed (such as metadata naming another issuer), a URL may not get the token (plain
     http beyond loopback without --allow-http), or the options are wrong (a Redis option
     without a usable --redis-key-file included); stops at once. No message ever shows a
     secret, a key or an assertion.";

/// What the command line asked for.
pub(crate) struct Options {
    pub(crate) token_url: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<String>,
    pub(crate) client_secret_file: Option<String>,
    pub(crate) client_assertion_file: Option<String>,
    pub(crate) auth_method: String,
    pub(crate) grant: String,
    pub(crate) refresh_token: Option<String>,
    pub(crate) private_key: Option<String>,
    pub(crate) key_id: Option<String>,
    pub(crate) signing_alg: Option<String>,
    pub(crate) assertion_file: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) resources: Vec<String>,
    pub(crate) audience: Option<String>,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) cacert: Option<String>,
    pub(crate) dpop: bool,
    pub(crate) client_certificate: ClientCertificate,
    pub(crate) allow_http: bool,
    pub(crate) print_token: bool,
    pub(crate) redis: Redis,
    pub(crate) delegation: Delegation,
    pub(crate) workload: Workload,
    pub(crate) verbose: bool,
    pub(crate) method: Option<Method>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) data: Option<Bytes>,
    pub(crate) repeat: usize,
    pub(crate) concurrency: usize,
    pub(crate) interval: Duration,
    pub(crate) fetch_timeout: Option<Duration>,
    pub(crate) urls: Vec<Uri>,
}

/// The Redis options.
#[derive(Default)]
pub(crate) struct Redis {
    pub(crate) url: Option<String>,
    pub(crate) cluster: Vec<String>,
    pub(crate) key_file: Option<PathBuf>,
    pub(crate) plaintext: bool,
    pub(crate) lease: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
}

impl Redis {
    /// Whether tokens are to be shared through Redis.
    pub(crate) fn wanted(&self) -> bool {
        self.url.is_some() || !self.cluster.is_empty()
    }
}

/// Why the run stopped early.
pub(crate) enum Stop {
    /// Bad options: exit 2.
    Usage(String),
    /// No token: exit 2.
    Token(String),
    /// The server's metadata could not be had or was refused: exit 2.
    Discovery(String),
}

/// Parses the command line; `None` asks for the usage text.
pub(crate) fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, Stop> {
    let usage = |message: String| Stop::Usage(message);
    let mut options = Options {
        token_url: None,
        issuer: None,
        client_id: String::new(),
        client_secret: None,
        client_secret_file: None,
        client_assertion_file: None,
        auth_method: "basic".into(),
        grant: "client_credentials".into(),
        refresh_token: None,
        private_key: None,
        key_id: None,
        signing_alg: None,
        assertion_file: None,
        subject: None,
        scopes: Vec::new(),
        resources: Vec::new(),
        audience: None,
        params: Vec::new(),
        cacert: None,
        dpop: false,
        client_certificate: ClientCertificate::default(),
        allow_http: false,
        print_token: false,
        redis: Redis::default(),
        delegation: Delegation::default(),
        workload: Workload::default(),
        verbose: false,
        method: None,
        headers: Vec::new(),
        data: None,
        repeat: 1,
        concurrency: 1,
        interval: Duration::ZERO,
        fetch_timeout: None,
        urls: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| usage(format!("{arg} needs a value")))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--token-url" => options.token_url = Some(value()?),
            "--issuer" => options.issuer = Some(value()?),
            "--private-key" => options.private_key = Some(value()?),
            "--key-id" => options.key_id = Some(value()?),
            "--signing-alg" => options.signing_alg = Some(value()?),
            "--assertion-file" => options.assertion_file = Some(value()?),
            "--resource" => options.resources.push(value()?),
            "--audience" => options.audience = Some(value()?),
            "--cacert" => options.cacert = Some(value()?),
            "--client-cert" => options.client_certificate.cert = Some(value()?),
            "--client-key" => options.client_certificate.key = Some(value()?),
            "--client-id" => options.client_id = value()?,
            "--client-secret" => options.client_secret = Some(value()?),
            "--client-secret-file" => options.client_secret_file = Some(value()?),
            "--client-assertion-file" => options.client_assertion_file = Some(value()?),
            "--auth-method" => options.auth_method = value()?,
            "--grant" => options.grant = value()?,
            "--refresh-token" => options.refresh_token = Some(value()?),
            "--subject" => options.subject = Some(value()?),
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
            "--dpop" => options.dpop = true,
            "--print-token" => options.print_token = true,
            // A Redis URL may carry a password: messages never repeat it.
            "--redis" => options.redis.url = Some(value()?),
            "--redis-cluster" => options.redis.cluster.push(value()?),
            "--redis-key-file" => options.redis.key_file = Some(PathBuf::from(value()?)),
            "--redis-plaintext" => options.redis.plaintext = true,
            "--redis-lease-ms" => options.redis.lease = Some(millis(&arg, &value()?)?),
            "--redis-timeout-ms" => options.redis.timeout = Some(millis(&arg, &value()?)?),
            flag if Delegation::takes(flag) => options.delegation.set(flag, value()?),
            flag if Workload::takes(flag) => options.workload.set(flag, value()?),
            "-v" | "--verbose" => options.verbose = true,
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
            "--fetch-timeout-ms" => options.fetch_timeout = Some(millis(&arg, &value()?)?),
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
    let named = options.workload.names_the_client();
    if options.token_url.is_none() && options.issuer.is_none() && !named {
        return Err(usage("--token-url or --issuer is required".into()));
    }
    if options.client_id.is_empty() && !named {
        return Err(usage("--client-id is required".into()));
    }
    if options.urls.is_empty() && !options.print_token {
        return Err(usage("no URL given".into()));
    }
    if options.redis.url.is_some() && !options.redis.cluster.is_empty() {
        return Err(usage(
            "--redis and --redis-cluster exclude each other".into(),
        ));
    }
    let fleet_only = [
        (options.redis.key_file.is_some(), "--redis-key-file"),
        (options.redis.plaintext, "--redis-plaintext"),
        (options.redis.lease.is_some(), "--redis-lease-ms"),
        (options.redis.timeout.is_some(), "--redis-timeout-ms"),
    ];
    if !options.redis.wanted()
        && let Some((_, flag)) = fleet_only.iter().find(|(given, _)| *given)
    {
        return Err(usage(format!("{flag} needs --redis or --redis-cluster")));
    }
    if options.dpop && options.redis.wanted() {
        // Other processes do not hold this run's key, so its tokens are no use to them.
        return Err(usage(
            "--dpop excludes --redis and --redis-cluster: a DPoP-bound token works only with \
             the key of the process that got it"
                .into(),
        ));
    }
    if options.subject.is_some()
        && !matches!(options.grant.as_str(), "refresh_token" | "jwt_bearer")
    {
        return Err(usage(
            "--subject is for --grant refresh_token or jwt_bearer".into(),
        ));
    }
    options.delegation.check(&options.grant)?;
    options.workload.check(&options)?;
    Ok(Some(options))
}

fn number(option: &str, value: &str) -> Result<usize, Stop> {
    value
        .parse()
        .map_err(|_| Stop::Usage(format!("{option} {value}: not a number")))
}

fn millis(option: &str, value: &str) -> Result<Duration, Stop> {
    Ok(Duration::from_millis(number(option, value)? as u64))
}
