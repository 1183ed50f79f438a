//! The token side of the command line: the token endpoint (given or discovered), the client's
//! authentication, and the grant with what it asks for.

use std::env;

use tower_oauth2::{
    ClientAuth, CredentialSource, Discovery, Error, ErrorKind, SigningAlgorithm, SigningKey,
    TokenCache, TokenCacheBuilder, TokenClient,
    grant::{ClientCredentials, JwtBearer, RefreshToken},
    https::HttpsClient,
};

use crate::options::{Options, Stop};

/// The token endpoint: `--token-url` as given, else the one `--issuer`'s metadata names
/// (fetched before any token request, and refused when it names another issuer; its
/// `mtls_endpoint_aliases` in place when a client certificate is given).
pub(crate) async fn endpoint(options: &Options, http: &HttpsClient) -> Result<TokenClient, Stop> {
    let config = |error: Error| Stop::Usage(error.to_string());
    match (&options.token_url, &options.issuer) {
        (Some(url), _) if options.allow_http => {
            TokenClient::with_plain_http(url, http.clone()).map_err(config)
        }
        (Some(url), _) => TokenClient::new(url, http.clone()).map_err(config),
        (None, Some(issuer)) => TokenClient::discover(&discovery(options, http, issuer)?)
            .await
            .map_err(|error| Stop::Discovery(error.to_string())),
        (None, None) => Err(Stop::Usage("--token-url or --issuer is required".into())),
    }
}

/// The metadata of `issuer`: with a client certificate, its `mtls_endpoint_aliases`, where
/// the server asks for the certificate.
pub(crate) fn discovery(
    options: &Options,
    http: &HttpsClient,
    issuer: &str,
) -> Result<Discovery, Stop> {
    let discovery = if options.allow_http {
        Discovery::with_plain_http(issuer, http.clone())
    } else {
        Discovery::new(issuer, http.clone())
    }
    .map_err(|error| Stop::Usage(error.to_string()))?;
    Ok(if options.client_certificate.given() {
        discovery.mutual_tls()
    } else {
        discovery
    })
}

/// The key of `--private-key`, with `--key-id` and `--signing-alg`.
pub(crate) fn signing_key(options: &Options) -> Result<Option<SigningKey>, Stop> {
    let Some(path) = &options.private_key else {
        if options.key_id.is_some() || options.signing_alg.is_some() {
            return Err(Stop::Usage(
                "--key-id and --signing-alg need --private-key".into(),
            ));
        }
        return Ok(None);
    };
    // Neither the file's content nor the parser's view of it goes into a message.
    let pem = zeroize::Zeroizing::new(
        std::fs::read(path)
            .map_err(|error| Stop::Usage(format!("--private-key {path}: {error}")))?,
    );
    let mut key = SigningKey::from_pkcs8_pem(&*pem)
        .map_err(|error| Stop::Usage(format!("--private-key {path}: {error}")))?;
    if let Some(alg) = &options.signing_alg {
        let alg: SigningAlgorithm = alg
            .parse()
            .map_err(|error: Error| Stop::Usage(format!("--signing-alg {alg}: {error}")))?;
        key = key
            .with_algorithm(alg)
            .map_err(|error| Stop::Usage(format!("--signing-alg {}: {error}", alg.as_str())))?;
    }
    if let Some(kid) = &options.key_id {
        key = key.with_key_id(kid);
    }
    Ok(Some(key))
}

/// How the client authenticates: `--auth-method`, with its secret or key.
pub(crate) fn client_auth(options: &Options, key: Option<SigningKey>) -> Result<ClientAuth, Stop> {
    let secret = options
        .client_secret
        .clone()
        .or_else(|| env::var("OAUTH2_CLIENT_SECRET").ok());
    let id = options.client_id.clone();
    let needs_secret = || Stop::Usage("--client-secret or OAUTH2_CLIENT_SECRET is required".into());
    let secret_source = || match &options.client_secret_file {
        Some(path) => Ok(CredentialSource::file(path)),
        None => secret.clone().map(CredentialSource::from).ok_or_else(|| {
            Stop::Usage(
                "--client-secret, --client-secret-file or OAUTH2_CLIENT_SECRET is required".into(),
            )
        }),
    };
    Ok(match options.auth_method.as_str() {
        "none" => ClientAuth::none(id),
        // The certificate is the HTTP client's (`tls.rs`); without one the server refuses.
        "tls_client_auth" | "self_signed_tls_client_auth"
            if !options.client_certificate.given() =>
        {
            return Err(Stop::Usage(format!(
                "--auth-method {} needs --client-cert and --client-key",
                options.auth_method
            )));
        }
        "tls_client_auth" => ClientAuth::tls_client_auth(id),
        "self_signed_tls_client_auth" => ClientAuth::self_signed_tls_client_auth(id),
        "basic" => ClientAuth::basic(id, secret_source()?),
        "post" => ClientAuth::post(id, secret_source()?),
        "client_assertion" => {
            let path = options.client_assertion_file.as_ref().ok_or_else(|| {
                Stop::Usage("--auth-method client_assertion needs --client-assertion-file".into())
            })?;
            ClientAuth::client_assertion(id, CredentialSource::file(path))
        }
        "client_secret_jwt" => ClientAuth::client_secret_jwt(id, secret.ok_or_else(needs_secret)?)
            .map_err(|error| Stop::Usage(error.to_string()))?,
        "private_key_jwt" => {
            let key = key.ok_or_else(|| {
                Stop::Usage("--auth-method private_key_jwt needs --private-key".into())
            })?;
            ClientAuth::private_key_jwt(id, key)
        }
        other => return Err(Stop::Usage(format!("unknown --auth-method {other}"))),
    })
}

/// No token because of `error`. A credential file that cannot be used (missing, empty, an
/// assertion that has expired) is a configuration error: the message names its option.
pub(crate) fn no_token(options: &Options, error: &Error) -> Stop {
    let option = match (&options.client_assertion_file, &options.client_secret_file) {
        _ if error.kind() != ErrorKind::Config => None,
        (Some(path), _) if options.auth_method == "client_assertion" => {
            Some(("--client-assertion-file", path))
        }
        (_, Some(path)) => Some(("--client-secret-file", path)),
        _ => None,
    };
    match option {
        Some((option, path)) => Stop::Token(format!("{option} {path}: {error}")),
        None => Stop::Token(error.to_string()),
    }
}

/// `$grant` asking for the scopes, resources, audience and extra fields of the command line:
/// the grants share these builder methods, but no trait.
macro_rules! asking {
    ($grant:expr, $options:expr) => {{
        let options: &Options = $options;
        let mut grant = $grant.scopes(&options.scopes);
        for resource in &options.resources {
            grant = grant.resource(resource);
        }
        if let Some(audience) = &options.audience {
            grant = grant.audience(audience);
        }
        for (name, value) in &options.params {
            grant = grant.param(name, value);
        }
        grant
    }};
}
pub(crate) use asking;

/// The cache over the grant of `--grant`.
pub(crate) fn cache_builder(
    options: &Options,
    endpoint: TokenClient,
    auth: ClientAuth,
    key: Option<SigningKey>,
) -> Result<TokenCacheBuilder, Stop> {
    Ok(match options.grant.as_str() {
        "client_credentials" => {
            TokenCache::builder(asking!(ClientCredentials::new(endpoint, auth), options))
        }
        "refresh_token" => {
            let Some(refresh_token) = &options.refresh_token else {
                return Err(Stop::Usage(
                    "--grant refresh_token needs --refresh-token".into(),
                ));
            };
            // The newest refresh token the cache (or the fleet) holds wins over this one,
            // which serves the first refresh only.
            let mut grant = asking!(
                RefreshToken::new(endpoint, auth, refresh_token.as_str()),
                options
            );
            match &options.subject {
                Some(subject) => grant = grant.subject(subject),
                // Without a subject no process could tell whose tokens it was handed.
                None if options.redis.wanted() => {
                    return Err(Stop::Usage(
                        "--grant refresh_token with --redis or --redis-cluster needs --subject"
                            .into(),
                    ));
                }
                None => {}
            }
            TokenCache::builder(grant)
        }
        "jwt_bearer" => {
            let grant = match (&options.assertion_file, key) {
                (Some(path), _) => JwtBearer::from_file(endpoint, auth, path),
                (None, Some(key)) => {
                    let id = options.client_id.clone();
                    let subject = options.subject.clone().unwrap_or_else(|| id.clone());
                    JwtBearer::signed(endpoint, auth, key, id, subject)
                }
                (None, None) => {
                    return Err(Stop::Usage(
                        "--grant jwt_bearer needs --assertion-file or --private-key".into(),
                    ));
                }
            };
            TokenCache::builder(asking!(grant, options))
        }
        other => return Err(Stop::Usage(format!("unknown --grant {other}"))),
    })
}
