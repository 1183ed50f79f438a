//! Azure workload identity: the environment the Azure workload identity webhook sets in a
//! pod, turned into Entra ID's token endpoint and a client assertion.

use std::{fmt, path::PathBuf};

use super::{Env, process_env};
use crate::{
    AuthServerTransport, ClientAuth, CredentialSource, Error, ErrorKind, TokenClient,
    grant::ClientCredentials,
};

const CLIENT_ID: &str = "AZURE_CLIENT_ID";
const TENANT_ID: &str = "AZURE_TENANT_ID";
const TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
const AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
/// Entra ID's public cloud, when `AZURE_AUTHORITY_HOST` is not set.
const PUBLIC_CLOUD: &str = "https://login.microsoftonline.com/";

/// Azure workload identity: an Entra ID application (or user-assigned managed identity) that
/// trusts the cluster's service-account tokens through a federated credential.
///
/// The webhook of Azure workload identity sets, in a pod labelled
/// `azure.workload.identity/use: "true"`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
/// `AZURE_FEDERATED_TOKEN_FILE` (a projected token with the audience
/// [`api://AzureADTokenExchange`](super::AZURE_AD_TOKEN_EXCHANGE)) and
/// `AZURE_AUTHORITY_HOST`. From them: the token endpoint
/// `{AZURE_AUTHORITY_HOST}{AZURE_TENANT_ID}/oauth2/v2.0/token`, and the client's
/// authentication, the token file as its client assertion, read again for every token
/// request (the kubelet replaces it before it expires).
///
/// ```
/// use tower_oauth2::{OAuth2Layer, workload::Azure};
///
/// # let http = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # });
/// # let env = |name: &str| Some(match name {
/// #     "AZURE_TENANT_ID" => "contoso.onmicrosoft.com".to_owned(),
/// #     "AZURE_FEDERATED_TOKEN_FILE" => "/var/run/secrets/azure/tokens/azure-identity-token".to_owned(),
/// #     _ => "00000000-0000-0000-0000-000000000001".to_owned(),
/// # }).filter(|_| name != "AZURE_AUTHORITY_HOST");
/// // In a pod: `Azure::from_env()?`.
/// let azure = Azure::from_env_with(env)?;
/// assert_eq!(
///     azure.token_url(),
///     "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
/// );
/// let grant = azure
///     .client_credentials(http)?
///     .scopes(["https://graph.microsoft.com/.default"]);
/// let layer = OAuth2Layer::new(grant);
/// # Ok::<_, tower_oauth2::Error>(())
/// ```
///
/// A missing variable is an [`ErrorKind::Config`] error naming it, never its value; a token
/// file that cannot be read, or holds an expired token, fails the token request naming the
/// file, with nothing sent.
#[derive(Clone)]
pub struct Azure {
    token_url: String,
    client_id: String,
    token_file: PathBuf,
}

impl Azure {
    /// Reads `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE` and
    /// `AZURE_AUTHORITY_HOST` (default: `https://login.microsoftonline.com/`).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_env_with(process_env)
    }

    /// Like [`from_env`](Self::from_env), reading variables through `env` (a test's map).
    pub fn from_env_with(env: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let env = Env(env);
        let client_id = env.require(CLIENT_ID)?;
        let tenant = env.require(TENANT_ID)?;
        let token_file = PathBuf::from(env.require(TOKEN_FILE)?);
        let mut authority = env
            .optional(AUTHORITY_HOST)
            .unwrap_or_else(|| PUBLIC_CLOUD.to_owned());
        if !authority.ends_with('/') {
            authority.push('/');
        }
        // A tenant is a GUID or a domain name: anything else would change the URL's path.
        let tenant = tenant.trim();
        if !tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            || tenant.starts_with('.')
        {
            return Err(Error::new(ErrorKind::Config).with_detail(format!(
                "the environment variable {TENANT_ID} is not a tenant id or domain name"
            )));
        }
        let token_url = format!("{authority}{tenant}/oauth2/v2.0/token");
        crate::origin::secure_url(
            &token_url,
            "the token endpoint URL from AZURE_AUTHORITY_HOST",
            false,
        )?;
        Ok(Self {
            token_url,
            client_id: client_id.trim().to_owned(),
            token_file,
        })
    }

    /// Entra ID's token endpoint for the tenant.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The application's (or managed identity's) client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client's authentication: the federated token file as its client assertion.
    pub fn client_auth(&self) -> ClientAuth {
        ClientAuth::client_assertion(
            self.client_id.clone(),
            CredentialSource::file(self.token_file.clone()),
        )
    }

    /// A client-credentials grant at the tenant's token endpoint through `http`, as this
    /// client; give it the scopes to ask for (Entra's `RESOURCE/.default`).
    pub fn client_credentials<B>(
        &self,
        http: impl AuthServerTransport<B>,
    ) -> Result<ClientCredentials, Error> {
        let endpoint = TokenClient::new(&self.token_url, http)?;
        Ok(ClientCredentials::new(endpoint, self.client_auth()))
    }
}

impl fmt::Debug for Azure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Azure")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("token_file", &self.token_file)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        |name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    const FULL: &[(&str, &str)] = &[
        (CLIENT_ID, "app-id"),
        (TENANT_ID, "tenant-1"),
        (
            TOKEN_FILE,
            "/var/run/secrets/azure/tokens/azure-identity-token",
        ),
        (AUTHORITY_HOST, "https://login.microsoftonline.us"),
    ];

    #[test]
    fn the_token_endpoint_is_the_authority_and_tenant() {
        let azure = Azure::from_env_with(env(FULL)).unwrap();
        assert_eq!(
            azure.token_url(),
            "https://login.microsoftonline.us/tenant-1/oauth2/v2.0/token"
        );
        assert_eq!(azure.client_auth().client_id(), "app-id");
        let default = Azure::from_env_with(env(&FULL[..3])).unwrap();
        assert!(default.token_url().starts_with(PUBLIC_CLOUD));
    }

    #[test]
    fn each_missing_variable_is_named() {
        for missing in [CLIENT_ID, TENANT_ID, TOKEN_FILE] {
            let error =
                Azure::from_env_with(|name| (name != missing).then(|| env(FULL)(name)).flatten())
                    .unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Config);
            assert!(error.to_string().contains(missing), "{error}");
        }
    }

    #[test]
    fn a_tenant_that_would_change_the_path_is_refused_without_quoting_it() {
        let error = Azure::from_env_with(|name| match name {
            TENANT_ID => Some("x/../sneaky".to_owned()),
            _ => env(FULL)(name),
        })
        .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        assert!(!error.to_string().contains("sneaky"), "{error}");
    }
}
