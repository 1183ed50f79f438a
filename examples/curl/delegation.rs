//! The grants that act for someone else or sign a user in from afar: token exchange
//! (RFC 8693, `--grant token_exchange`) and the device authorization grant (RFC 8628,
//! `--grant device_code`), with their options.

use tower_oauth2::{
    ClientAuth, Error, TokenCache, TokenCacheBuilder, TokenClient,
    grant::{DeviceAuthorization, DeviceCode, SecurityToken, TokenExchange},
    https::HttpsClient,
};

use crate::{
    options::{Options, Stop},
    token::{self, asking},
};

/// The options of token exchange.
#[derive(Default)]
pub(crate) struct Delegation {
    subject_token_file: Option<String>,
    subject_token_type: Option<String>,
    actor_token_file: Option<String>,
    actor_token_type: Option<String>,
    requested_token_type: Option<String>,
}

impl Delegation {
    /// Whether `flag` is one of these options.
    pub(crate) fn takes(flag: &str) -> bool {
        matches!(
            flag,
            "--subject-token-file"
                | "--subject-token-type"
                | "--actor-token-file"
                | "--actor-token-type"
                | "--requested-token-type"
        )
    }

    /// Sets the option `flag` (one [`takes`](Self::takes)) to `value`.
    pub(crate) fn set(&mut self, flag: &str, value: String) {
        let slot = match flag {
            "--subject-token-file" => &mut self.subject_token_file,
            "--subject-token-type" => &mut self.subject_token_type,
            "--actor-token-file" => &mut self.actor_token_file,
            "--actor-token-type" => &mut self.actor_token_type,
            _ => &mut self.requested_token_type,
        };
        *slot = Some(value);
    }

    /// Refuses these options with any grant but token exchange.
    pub(crate) fn check(&self, grant: &str) -> Result<(), Stop> {
        let given = [
            &self.subject_token_file,
            &self.subject_token_type,
            &self.actor_token_file,
            &self.actor_token_type,
            &self.requested_token_type,
        ];
        if grant != "token_exchange" && given.iter().any(|option| option.is_some()) {
            return Err(Stop::Usage(
                "the --subject-token-*, --actor-token-* and --requested-token-type options \
                 are for --grant token_exchange"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Whether `--grant` names a grant of this file.
pub(crate) fn handles(grant: &str) -> bool {
    matches!(grant, "token_exchange" | "device_code")
}

/// The cache over the grant of `--grant`, and for the device grant the grant itself: its
/// sign-in runs once the cache exists ([`sign_in`]).
pub(crate) async fn cache_builder(
    options: &Options,
    http: &HttpsClient,
    endpoint: TokenClient,
    auth: ClientAuth,
) -> Result<(TokenCacheBuilder, Option<DeviceCode>), Stop> {
    if options.grant == "device_code" {
        let grant = device_grant(options, http, endpoint, auth).await?;
        return Ok((TokenCache::builder(grant.clone()), Some(grant)));
    }
    let exchange = &options.delegation;
    let Some(path) = &exchange.subject_token_file else {
        return Err(Stop::Usage(
            "--grant token_exchange needs --subject-token-file".into(),
        ));
    };
    // Files, not values: a token on the command line would show in the process list, and a
    // file the platform rotates is read again for every token request.
    let token = |path: &str, token_type: &Option<String>| {
        let token_type = token_type.as_deref().unwrap_or(SecurityToken::ACCESS_TOKEN);
        SecurityToken::from_file(path).token_type(token_type)
    };
    let mut grant = TokenExchange::new(endpoint, auth, token(path, &exchange.subject_token_type));
    match (&exchange.actor_token_file, &exchange.actor_token_type) {
        (Some(path), token_type) => grant = grant.actor(token(path, token_type)),
        (None, Some(_)) => {
            return Err(Stop::Usage(
                "--actor-token-type needs --actor-token-file".into(),
            ));
        }
        (None, None) => {}
    }
    if let Some(token_type) = &exchange.requested_token_type {
        grant = grant.requested_token_type(token_type);
    }
    Ok((TokenCache::builder(asking!(grant, options)), None))
}

/// The device grant, at the `device_authorization_endpoint` of `--issuer`'s metadata.
async fn device_grant(
    options: &Options,
    http: &HttpsClient,
    endpoint: TokenClient,
    auth: ClientAuth,
) -> Result<DeviceCode, Stop> {
    let Some(issuer) = &options.issuer else {
        return Err(Stop::Usage("--grant device_code needs --issuer".into()));
    };
    let config = |error: Error| Stop::Usage(error.to_string());
    let metadata = token::discovery(options, http, issuer)?
        .metadata()
        .await
        .map_err(|error| Stop::Discovery(error.to_string()))?;
    let Some(url) = metadata.device_authorization_endpoint() else {
        return Err(Stop::Discovery(
            "the metadata has no `device_authorization_endpoint`".into(),
        ));
    };
    let grant = DeviceCode::new(endpoint, auth, url)
        .map_err(config)?
        .on_prompt(|authorization| eprintln!("{}", prompt(authorization)));
    Ok(asking!(grant, options))
}

/// The line that tells the user where to go: one line, easy for a script to read.
fn prompt(authorization: &DeviceAuthorization) -> String {
    let mut line = format!(
        "device_authorization verification_uri={} user_code={}",
        authorization.verification_uri(),
        authorization.user_code()
    );
    if let Some(complete) = authorization.verification_uri_complete() {
        line += &format!(" verification_uri_complete={complete}");
    }
    line
}

/// Runs the device sign-in and seeds `cache` with its token.
pub(crate) async fn sign_in(grant: &DeviceCode, cache: &TokenCache) -> Result<(), Stop> {
    let token = grant
        .authorize()
        .await
        .map_err(|error| Stop::Token(error.to_string()))?;
    cache
        .seed(token)
        .await
        .map_err(|error| Stop::Token(error.to_string()))?;
    Ok(())
}
