//! What the grants that sign a user in (authorization code, device) ask for beyond their
//! grant type, kept apart from the requests that carry it.

use crate::{TokenClient, TokenRequest, TokenSetId};

#[derive(Clone, Debug, Default)]
pub(crate) struct Asks {
    pub(crate) scopes: Vec<String>,
    /// RFC 8707 `resource`s and `audience`s: in the first request, every token request and
    /// every refresh.
    pub(crate) targets: Vec<(&'static str, String)>,
    /// More fields of the first request (the authorization or device request) only.
    pub(crate) params: Vec<(String, String)>,
}

impl Asks {
    pub(crate) fn set_scopes<I, T>(&mut self, scopes: I)
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.scopes = scopes
            .into_iter()
            .map(|scope| scope.as_ref().to_owned())
            .collect();
    }

    /// `request` with the resources and audiences.
    pub(crate) fn with_targets(&self, request: TokenRequest) -> TokenRequest {
        self.targets.iter().fold(request, |request, (name, value)| {
            request.param(*name, value)
        })
    }

    /// The refresh request: the original grant's scopes, these resources and audiences.
    pub(crate) fn refresh(&self) -> TokenRequest {
        self.with_targets(TokenRequest::new("refresh_token"))
    }

    /// The token set of `subject`'s tokens from `endpoint` with `grant_type`.
    pub(crate) fn token_set(
        &self,
        endpoint: &TokenClient,
        client_id: &str,
        grant_type: &str,
        subject: &str,
    ) -> TokenSetId {
        let url = endpoint.url().to_string();
        let id = TokenSetId::new(url, client_id, grant_type)
            .scopes(self.scopes.iter().cloned())
            .subject(subject);
        let id = self
            .targets
            .iter()
            .fold(id, |id, (name, value)| match *name {
                "resource" => id.resource(value),
                _ => id.audience(value),
            });
        self.params
            .iter()
            .fold(id, |id, (name, value)| id.param(name, value))
            .dpop_bound(endpoint.binds_tokens())
    }
}
