//! Workload identity on the command line: a platform's token as the client assertion
//! (`--workload-identity github-actions|azure`), or a cloud metadata server as the source of
//! the tokens (`--token-source gcp-metadata|azure-imds`).

use tower_oauth2::{
    ClientAuth, Error, TokenCache, TokenCacheBuilder,
    https::HttpsClient,
    workload::{AZURE_AD_TOKEN_EXCHANGE, Azure, AzureImds, GcpMetadata, GitHubActions},
};

use crate::options::{Options, Stop};

/// The workload identity options.
#[derive(Default)]
pub(crate) struct Workload {
    identity: Option<String>,
    assertion_audience: Option<String>,
    token_source: Option<String>,
    metadata_url: Option<String>,
}

impl Workload {
    /// Whether `flag` is one of these options.
    pub(crate) fn takes(flag: &str) -> bool {
        matches!(
            flag,
            "--workload-identity" | "--assertion-audience" | "--token-source" | "--metadata-url"
        )
    }

    /// Sets the option `flag` (one [`takes`](Self::takes)) to `value`.
    pub(crate) fn set(&mut self, flag: &str, value: String) {
        let slot = match flag {
            "--workload-identity" => &mut self.identity,
            "--assertion-audience" => &mut self.assertion_audience,
            "--token-source" => &mut self.token_source,
            _ => &mut self.metadata_url,
        };
        *slot = Some(value);
    }

    /// Whether the token endpoint and the client id come from here, not the command line.
    pub(crate) fn names_the_client(&self) -> bool {
        self.token_source.is_some() || self.identity.as_deref() == Some("azure")
    }

    /// Refuses combinations that cannot work.
    pub(crate) fn check(&self, options: &Options) -> Result<(), Stop> {
        let usage = |message: &str| Err(Stop::Usage(message.into()));
        match (self.identity.as_deref(), self.token_source.as_deref()) {
            (Some(_), Some(_)) => return usage("--workload-identity excludes --token-source"),
            (Some("github-actions" | "azure") | None, _) => {}
            (Some(other), _) => return usage(&format!("unknown --workload-identity {other}")),
        }
        match self.token_source.as_deref() {
            None | Some("gcp-metadata") => {}
            Some("azure-imds") if options.resources.len() != 1 => {
                return usage("--token-source azure-imds needs one --resource");
            }
            Some("azure-imds") => {}
            Some(other) => return usage(&format!("unknown --token-source {other}")),
        }
        if self.metadata_url.is_some() && self.token_source.is_none() {
            return usage("--metadata-url needs --token-source");
        }
        if self.assertion_audience.is_some() && self.identity.as_deref() != Some("github-actions") {
            return usage("--assertion-audience is for --workload-identity github-actions");
        }
        Ok(())
    }

    /// Azure workload identity's settings, read from the environment, when asked for.
    pub(crate) fn azure(&self) -> Result<Option<Azure>, Stop> {
        if self.identity.as_deref() != Some("azure") {
            return Ok(None);
        }
        Azure::from_env().map(Some).map_err(config)
    }

    /// The client's authentication, when a workload identity gives it.
    pub(crate) fn client_auth(
        &self,
        options: &Options,
        http: &HttpsClient,
        azure: Option<&Azure>,
    ) -> Result<Option<ClientAuth>, Stop> {
        if let Some(azure) = azure {
            return Ok(Some(azure.client_auth()));
        }
        if self.identity.as_deref() != Some("github-actions") {
            return Ok(None);
        }
        // Entra ID's convention, and what azure/login asks GitHub for.
        let audience = self
            .assertion_audience
            .as_deref()
            .unwrap_or(AZURE_AD_TOKEN_EXCHANGE);
        let github = GitHubActions::from_env(audience, http.clone()).map_err(config)?;
        Ok(Some(github.client_auth(options.client_id.clone())))
    }

    /// The cache over a metadata server, when one is the token source.
    pub(crate) fn token_source(
        &self,
        options: &Options,
        http: &HttpsClient,
    ) -> Result<Option<TokenCacheBuilder>, Stop> {
        let base = self.metadata_url.as_deref();
        Ok(match self.token_source.as_deref() {
            Some("gcp-metadata") => {
                let source = match base {
                    Some(base) => GcpMetadata::with_base_url(base, http.clone()),
                    None => GcpMetadata::new(http.clone()),
                }
                .map_err(config)?;
                Some(TokenCache::builder(source.scopes(&options.scopes)))
            }
            Some("azure-imds") => {
                let resource = options.resources.first().map_or("", String::as_str);
                let mut source = match base {
                    Some(base) => AzureImds::with_base_url(base, resource, http.clone()),
                    None => AzureImds::new(resource, http.clone()),
                }
                .map_err(config)?;
                if !options.client_id.is_empty() {
                    source = source.client_id(&options.client_id);
                }
                Some(TokenCache::builder(source))
            }
            _ => None,
        })
    }
}

fn config(error: Error) -> Stop {
    Stop::Usage(error.to_string())
}
