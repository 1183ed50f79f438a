//! What a grant asks for beyond its grant type: scopes, resources, audiences and other
//! fields. [`asks!`] writes the four public builder methods once for every grant; each grant
//! keeps what it asks for in a [`TokenRequest`] (sent whole in every token request) or, for
//! the grants that sign a user in (authorization code, device), in [`Asks`], kept apart from
//! the requests that carry it.

use crate::{TokenClient, TokenRequest, TokenSetId};

/// The builder methods `scopes`, `resource`, `audience` and `param` of a grant, written into
/// its `impl` block, with their docs.
///
/// `$field` is where the grant keeps what it asks for: a [`TokenRequest`] or an [`Asks`],
/// which have by-value methods of the same names. The docs say where each is sent: `first`,
/// the requests that carry scopes and extra fields; `every`, those that carry resources and
/// audiences (the same for grants that send all of them in every token request); `scopes`, if
/// given, says more about scopes.
// A macro, not a trait with provided methods: a trait would have to be imported before
// `.scopes(..)` could be called on a grant, and rustdoc would file the methods away under the
// trait; written here, they are inherent methods on each grant's page.
macro_rules! asks {
    (
        $field:ident,
        first: $first:literal,
        every: $every:literal
        $(, scopes: $scopes:literal)? $(,)?
    ) => {
        #[doc = concat!("Asks for these scopes in ", $first, ", sent space-delimited in")]
        /// `scope`.
        $(#[doc = ""] #[doc = $scopes])?
        #[must_use]
        pub fn scopes<I, T>(mut self, scopes: I) -> Self
        where
            I: IntoIterator<Item = T>,
            T: AsRef<str>,
        {
            self.$field = self.$field.scopes(scopes);
            self
        }

        /// Asks for a token for this resource (RFC 8707 `resource`: the absolute URI of an
        #[doc = concat!("API), in ", $every, "; repeatable.")]
        /// A server that supports resource indicators limits the token's audience to the
        /// resources asked for.
        #[must_use]
        pub fn resource(mut self, resource: impl Into<String>) -> Self {
            self.$field = self.$field.resource(resource);
            self
        }

        /// Asks for a token for this audience (`audience`, as servers that predate RFC 8707
        #[doc = concat!("name the API), in ", $every, "; repeatable.")]
        #[must_use]
        pub fn audience(mut self, audience: impl Into<String>) -> Self {
            self.$field = self.$field.audience(audience);
            self
        }

        #[doc = concat!("Adds a field to ", $first, ", for what the server reads beyond the")]
        /// fields the grant sends itself (`prompt`, `login_hint`, a vendor's own). Never a
        /// secret: it is part of the grant's [identity](crate::TokenSource::identity).
        #[must_use]
        pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.$field = self.$field.param(name, value);
            self
        }
    };
}
pub(super) use asks;

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
    /// Asks for `scopes` instead of those asked for before.
    pub(crate) fn scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.scopes = scopes
            .into_iter()
            .map(|scope| scope.as_ref().to_owned())
            .collect();
        self
    }

    pub(crate) fn resource(mut self, resource: impl Into<String>) -> Self {
        self.targets.push(("resource", resource.into()));
        self
    }

    pub(crate) fn audience(mut self, audience: impl Into<String>) -> Self {
        self.targets.push(("audience", audience.into()));
        self
    }

    /// A field of the first request only.
    pub(crate) fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
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
