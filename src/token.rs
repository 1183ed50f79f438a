//! A token as the authorization server issued it.

use std::{fmt, time::Duration};

use serde_json::{Map, Value};

use crate::{Lineage, Secret, dpop::Binding};

/// An access token and what came with it: lifetime, scopes, refresh and id tokens, and any other
/// fields of the token response.
///
/// Token sources build it: the grants in this crate parse it from the token endpoint's answer, and
/// a [custom source](crate::TokenSource) builds one with [`Token::bearer`].
///
/// ```
/// use std::time::Duration;
/// use tower_oauth2::Token;
///
/// let token = Token::bearer("abc").with_expires_in(Duration::from_secs(3600));
/// assert_eq!(token.access_token().expose(), "abc");
/// assert_eq!(token.expires_in(), Some(Duration::from_secs(3600)));
/// ```
#[derive(Clone)]
pub struct Token {
    access_token: Secret,
    expires_in: Option<Duration>,
    scopes: Option<Vec<String>>,
    refresh_token: Option<Secret>,
    id_token: Option<Secret>,
    extra: Map<String, Value>,
    /// The DPoP key the token is bound to; `None` for a bearer token.
    binding: Option<Binding>,
    lineage: Lineage,
}

impl Token {
    /// Creates a bearer token with unknown lifetime: it is used until a request with it gets a
    /// 401 answer.
    pub fn bearer(access_token: impl Into<Secret>) -> Self {
        Self {
            access_token: access_token.into(),
            expires_in: None,
            scopes: None,
            refresh_token: None,
            id_token: None,
            extra: Map::new(),
            binding: None,
            lineage: Lineage::UNKNOWN,
        }
    }

    /// Sets how long the token is valid, counted from when it was requested.
    ///
    /// `Duration::ZERO` means the token is stale at once: it is used, and replaced in the
    /// background as soon as the cache's minimum refresh interval allows.
    #[must_use]
    pub fn with_expires_in(mut self, expires_in: Duration) -> Self {
        self.expires_in = Some(expires_in);
        self
    }

    /// Sets the scopes the token was granted.
    #[must_use]
    pub fn with_scopes<I, T>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the refresh token.
    #[must_use]
    pub fn with_refresh_token(mut self, refresh_token: impl Into<Secret>) -> Self {
        self.refresh_token = Some(refresh_token.into());
        self
    }

    /// Sets the OpenID Connect id token.
    #[must_use]
    pub fn with_id_token(mut self, id_token: impl Into<Secret>) -> Self {
        self.id_token = Some(id_token.into());
        self
    }

    /// Sets the fields of the token response that have no accessor of their own.
    #[must_use]
    pub fn with_extra(mut self, extra: Map<String, Value>) -> Self {
        self.extra = extra;
        self
    }

    /// Sets where the token set stands among the sets of its grant: for a
    /// [`TokenStore`](crate::TokenStore) of one's own that loads a set it saved. The cache
    /// gives every set it gets a lineage of its own; see [`Lineage`].
    #[must_use]
    pub fn with_lineage(mut self, lineage: Lineage) -> Self {
        self.lineage = lineage;
        self
    }

    /// Returns where the token set stands among the sets of its grant: a set that replaced
    /// another has a higher lineage. See [`Lineage`].
    pub fn lineage(&self) -> Lineage {
        self.lineage
    }

    /// Gives the token set a lineage above `previous`'s and above its own: the cache does this
    /// for every set it gets before anyone keeps it.
    pub(crate) fn descend_from(&mut self, previous: Option<&Token>) {
        let above = previous
            .map_or(Lineage::UNKNOWN, Token::lineage)
            .max(self.lineage);
        self.lineage = Lineage::after(above);
    }

    /// Binds the token to `key`: the server issued it with `token_type` `DPoP`, so requests
    /// carry it as `Authorization: DPoP <token>` with a proof signed by `key`. The token
    /// client does this for the tokens it gets; a custom source calls it for its own.
    #[cfg(feature = "dpop")]
    #[must_use]
    pub fn with_dpop(mut self, key: &crate::DpopKey) -> Self {
        self.binding = Some(Binding::new(key.clone()));
        self
    }

    /// Returns the scheme the token is sent with: `Bearer`, or `DPoP` for a token bound to a
    /// DPoP key.
    pub fn scheme(&self) -> &'static str {
        if self.binding.is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
    }

    /// Returns the DPoP key the token is bound to, if it is.
    #[cfg(feature = "dpop")]
    pub fn dpop_key(&self) -> Option<&crate::DpopKey> {
        self.binding.as_ref().map(Binding::key)
    }

    pub(crate) fn bound(mut self, binding: Option<Binding>) -> Self {
        self.binding = binding;
        self
    }

    pub(crate) fn binding(&self) -> Option<&Binding> {
        self.binding.as_ref()
    }

    /// Returns the access token.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// Returns how long the token is valid from when it was requested, if the server said.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// Returns the granted scopes, if the server listed them.
    pub fn scopes(&self) -> Option<&[String]> {
        self.scopes.as_deref()
    }

    /// Returns the refresh token, if there is one.
    pub fn refresh_token(&self) -> Option<&Secret> {
        self.refresh_token.as_ref()
    }

    /// Returns the OpenID Connect id token, if there is one.
    pub fn id_token(&self) -> Option<&Secret> {
        self.id_token.as_ref()
    }

    /// Returns the fields of the token response that have no accessor of their own.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// Keeps `previous`'s refresh token when this token came without one: a server that does not
    /// rotate refresh tokens leaves them out of refresh responses.
    pub(crate) fn inherit_refresh_token(&mut self, previous: Option<&Token>) {
        if self.refresh_token.is_none() {
            self.refresh_token = previous.and_then(|token| token.refresh_token.clone());
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values of unknown fields may be secrets too; only their names are shown.
        let extra: Vec<&str> = self.extra.keys().map(String::as_str).collect();
        f.debug_struct("Token")
            .field("access_token", &self.access_token)
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .field("refresh_token", &self.refresh_token)
            .field("id_token", &self.id_token)
            .field("extra", &extra)
            .field("scheme", &self.scheme())
            .field("lineage", &self.lineage.as_u64())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_tokens_and_extra_values() {
        let mut extra = Map::new();
        extra.insert("signature".into(), Value::from("sentinel-extra"));
        let token = Token::bearer("sentinel-access")
            .with_refresh_token("sentinel-refresh")
            .with_id_token("sentinel-id")
            .with_extra(extra);
        let debug = format!("{token:?}");
        assert!(!debug.contains("sentinel"), "{debug}");
        assert!(debug.contains("signature"));
    }

    #[test]
    fn a_token_without_refresh_token_inherits_the_previous_one() {
        let previous = Token::bearer("a").with_refresh_token("r1");
        let mut next = Token::bearer("b");
        next.inherit_refresh_token(Some(&previous));
        assert_eq!(next.refresh_token().map(Secret::expose), Some("r1"));

        let mut rotated = Token::bearer("c").with_refresh_token("r2");
        rotated.inherit_refresh_token(Some(&previous));
        assert_eq!(rotated.refresh_token().map(Secret::expose), Some("r2"));
    }
}
