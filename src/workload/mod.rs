//! Workload identity: credentials the platform a service runs on hands it, in place of a
//! client secret, each in a few lines.
//!
//! Two kinds, used two ways:
//!
//! - **Client assertions** (RFC 7523 section 2.2), for an authorization server that trusts
//!   the platform's issuer (a *federated credential*): a Kubernetes projected service-account
//!   token ([`kubernetes`]), a GitHub Actions OIDC token ([`GitHubActions`]), and Azure
//!   workload identity's federated token file with the Entra token endpoint it goes to
//!   ([`Azure`]). Each is a [`CredentialSource`] or a [`ClientAuth`] for any grant.
//! - **Token sources**: a cloud's metadata server hands out access tokens itself, with no
//!   grant and no client authentication: Google's ([`GcpMetadata`]) and Azure's instance
//!   metadata service ([`AzureImds`]). Each is a [`TokenSource`](crate::TokenSource) for a
//!   [`TokenCache`](crate::TokenCache) or an [`OAuth2Layer`](crate::OAuth2Layer).
//!
//! Everything the crate fetches itself goes through an [`AuthServerTransport`](crate::AuthServerTransport),
//! with the token client's rules: a timeout, a bounded body, no redirect followed (a 3xx is
//! an [`ErrorKind::UnexpectedResponse`]). Give them an
//! HTTP client that does not follow redirects itself. Environment variables are read once,
//! when the preset is built; a missing one is an [`ErrorKind::Config`]
//! error that names it, never its value. `docs/workload-identity.md` has each platform's setup.
//!
//! ```
//! use tower_oauth2::{ClientAuth, workload};
//!
//! // Kubernetes: the pod spec projects a token whose audience is the authorization server.
//! let auth: ClientAuth = workload::kubernetes("my-workload", "/var/run/secrets/tokens/oauth");
//! ```

mod azure;
mod github;
mod metadata;

use std::path::PathBuf;

pub use self::{
    azure::Azure,
    github::GitHubActions,
    metadata::{AzureImds, GcpMetadata},
};
use crate::{ClientAuth, CredentialSource, Error, ErrorKind};

/// The audience Entra ID expects in a federated credential's assertion, and the one its
/// workload identity webhook projects tokens for: what to ask GitHub Actions for when the
/// token goes to Entra.
pub const AZURE_AD_TOKEN_EXCHANGE: &str = "api://AzureADTokenExchange";

/// A Kubernetes projected service-account token as the client assertion of `client_id`.
///
/// The kubelet writes the token to `token_file` and replaces it before it expires; the file
/// is read for every request to the authorization server, so a new token is used from the
/// next one on ([`CredentialSource::file`]). The token's audience is set in the pod spec (a
/// `serviceAccountToken` projection's `audience`), not here: make it the one the
/// authorization server's federated credential expects.
///
/// ```
/// use tower_oauth2::{TokenClient, grant::ClientCredentials, workload};
///
/// # let http = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
/// # });
/// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
/// let auth = workload::kubernetes("my-workload", "/var/run/secrets/tokens/oauth");
/// let grant = ClientCredentials::new(endpoint, auth).scopes(["orders:read"]);
/// # Ok::<_, tower_oauth2::Error>(())
/// ```
pub fn kubernetes(client_id: impl Into<String>, token_file: impl Into<PathBuf>) -> ClientAuth {
    ClientAuth::client_assertion(client_id, CredentialSource::file(token_file))
}

/// Reads environment variables by name: the process environment, or a test's map.
pub(crate) struct Env<F>(pub(crate) F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// The value of `name`; missing or empty is a [`ErrorKind::Config`] error naming it.
    pub(crate) fn require(&self, name: &str) -> Result<String, Error> {
        self.optional(name).ok_or_else(|| {
            Error::new(ErrorKind::Config)
                .with_detail(format!("the environment variable {name} is not set"))
        })
    }

    /// The value of `name`, if it is set and not empty.
    pub(crate) fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }
}

/// The process environment, for `from_env`.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_variable_is_a_config_error_naming_it() {
        let env = Env(|name: &str| (name == "EMPTY").then(String::new));
        for name in ["MISSING", "EMPTY"] {
            let error = env.require(name).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Config);
            assert!(error.to_string().contains(name), "{error}");
        }
    }
}
