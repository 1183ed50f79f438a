//! Signs a user in from the command line with the authorization-code grant and PKCE, keeps the
//! tokens in a file, and calls an API with them.
//!
//! ```sh
//! cargo run --example authorization_code -- \
//!     --authorize https://auth.example.com/oauth2/authorize \
//!     --token https://auth.example.com/oauth2/token \
//!     --client-id my-cli \
//!     --scope "openid orders:read" \
//!     --store ~/.config/my-cli/token.json \
//!     --api https://api.example.com/orders \
//!     --open xdg-open
//! ```
//!
//! The client is public (no secret) and registered with the redirect URI
//! `http://127.0.0.1/callback`; the example listens on a free port of `127.0.0.1` and sends
//! that port along (RFC 8252). The first run prints the sign-in address (and, with `--open`,
//! starts that program with it); later runs use the saved tokens and sign in again only when
//! the server no longer renews them. Tokens are never printed.
//!
//! `--issuer` names the server's issuer identifier when it sends one in its redirects (its
//! metadata has `authorization_response_iss_parameter_supported`); a redirect from another
//! server is then refused (RFC 9207).
//!
//! `--sign-out URL` signs out instead: it revokes the saved tokens at the revocation endpoint
//! `URL` (RFC 7009) and deletes the `--store` file.
//!
//! `--open` takes a program and its arguments separated by spaces; the address is added last.
//! Any program that follows redirects with cookies can stand in for a person when the server
//! approves sign-ins by itself, such as `--open "curl -s -L -b /dev/null -o /dev/null"`.

use std::{process::ExitCode, time::Duration};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2::{
    BoxError, ClientAuth, ErrorKind, FileStore, OAuth2Layer, Revocation, TokenCache, TokenClient,
    TokenStore,
    grant::{AuthorizationCode, LoopbackRedirect},
};

const USAGE: &str = "usage: authorization_code --authorize URL --token URL --client-id ID \
[--scope SCOPES] [--store PATH] [--api URL] [--open COMMAND] [--redirect-uri URI] [--issuer ISS] [--sign-out REVOCATION_URL]";

#[derive(Default)]
struct Options {
    authorize: Option<String>,
    token: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    store: Option<String>,
    api: Option<String>,
    open: Option<String>,
    redirect_uri: Option<String>,
    issuer: Option<String>,
    sign_out: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        let slot = match name.as_str() {
            "--authorize" => &mut options.authorize,
            "--token" => &mut options.token,
            "--client-id" => &mut options.client_id,
            "--scope" => &mut options.scope,
            "--store" => &mut options.store,
            "--api" => &mut options.api,
            "--open" => &mut options.open,
            "--redirect-uri" => &mut options.redirect_uri,
            "--issuer" => &mut options.issuer,
            "--sign-out" => &mut options.sign_out,
            _ => return Err(format!("unknown option {name}")),
        };
        *slot = Some(args.next().ok_or(format!("{name} needs a value"))?);
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> Result<ExitCode, BoxError> {
    if std::env::args().any(|arg| arg == "--help" || arg == "-h") {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    let options = match options() {
        Ok(options) => options,
        Err(problem) => {
            eprintln!("{problem}\n{USAGE}");
            return Ok(ExitCode::from(2));
        }
    };
    let (Some(authorize), Some(token_url), Some(client_id)) =
        (&options.authorize, &options.token, &options.client_id)
    else {
        eprintln!("{USAGE}");
        return Ok(ExitCode::from(2));
    };

    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let endpoint = TokenClient::new(token_url, http.clone())?;
    let redirect_uri = options
        .redirect_uri
        .as_deref()
        .unwrap_or("http://127.0.0.1/callback");
    let mut grant = AuthorizationCode::new(
        endpoint.clone(),
        ClientAuth::none(client_id.as_str()),
        authorize,
        redirect_uri,
    )?
    .scopes(
        options
            .scope
            .as_deref()
            .unwrap_or("openid")
            .split_whitespace(),
    );
    if let Some(issuer) = &options.issuer {
        grant = grant.issuer(issuer.as_str());
    }

    if let Some(revocation_url) = &options.sign_out {
        return sign_out(
            revocation_url,
            client_id,
            options.store.as_deref(),
            &endpoint,
        )
        .await;
    }

    let mut builder = TokenCache::builder(grant.clone());
    if let Some(path) = &options.store {
        builder = builder.store(FileStore::new(path));
    }
    let cache = builder.build();

    // A saved token, or one renewed with the saved refresh token, spares the sign-in.
    let token = match cache.token().await {
        Ok(token) => {
            println!("Using the saved sign-in.");
            token
        }
        Err(error) if error.kind() == ErrorKind::ReauthorizationRequired => {
            let mut loopback = LoopbackRedirect::new().timeout(Duration::from_secs(300));
            if let Some(command) = &options.open {
                let mut words = command.split_whitespace();
                if let Some(program) = words.next() {
                    loopback = loopback.open_with(program, words);
                }
            }
            let token = loopback.authorize(&grant).await?;
            println!("Signed in.");
            cache.seed(token).await?
        }
        Err(error) => return Err(error.into()),
    };

    let token = token.token();
    println!(
        "Access token: valid for {}, scopes: {}, refresh token: {}, id token: {}.",
        token
            .expires_in()
            .map_or("an unknown time".to_owned(), |left| format!(
                "{} s",
                left.as_secs()
            )),
        token
            .scopes()
            .map_or("not listed".to_owned(), |scopes| scopes.join(" ")),
        if token.refresh_token().is_some() {
            "yes"
        } else {
            "no"
        },
        if token.id_token().is_some() {
            "yes"
        } else {
            "no"
        },
    );
    if let Some(error) = cache.store_error() {
        eprintln!("Warning: the tokens could not be saved: {error}");
    }

    if let Some(api) = &options.api {
        let client = ServiceBuilder::new()
            .layer(OAuth2Layer::new(cache.clone()))
            .service(http);
        let response = client
            .oneshot(Request::get(api.as_str()).body(Full::default())?)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!("GET {api}: {status}\n{}", String::from_utf8_lossy(&body));
        if !status.is_success() {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Revokes the tokens saved at `store` and deletes the file.
async fn sign_out(
    revocation_url: &str,
    client_id: &str,
    store: Option<&str>,
    endpoint: &TokenClient,
) -> Result<ExitCode, BoxError> {
    let Some(path) = store else {
        eprintln!("--sign-out needs --store: the tokens to revoke are the saved ones");
        return Ok(ExitCode::from(2));
    };
    let store = FileStore::new(path);
    if let Some(token) = store.load().await? {
        Revocation::new(revocation_url, endpoint, ClientAuth::none(client_id))?
            .revoke_token(&token)
            .await?;
    }
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
        _ => {}
    }
    println!("Signed out.");
    Ok(ExitCode::SUCCESS)
}
