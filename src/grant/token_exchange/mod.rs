//! The token exchange grant (RFC 8693): a client trades a security token it holds (the
//! *subject token*: its caller's access token, its own workload identity token) for a new
//! token for another audience, optionally naming who acts (the *actor token*).
//!
//! Terms: the *subject token* stands for whom the new token acts for; the *actor token* for
//! who acts on their behalf (delegation); both are *security tokens*, each sent with its
//! *token type* (a URI such as [`SecurityToken::ACCESS_TOKEN`]). The server answers with the
//! *issued token type* it chose, which this grant checks.

mod security_token;
#[cfg(test)]
mod tests;

use std::{fmt, time::Duration};

use serde_json::Value;

use self::security_token::Presented;
pub use self::security_token::SecurityToken;
use super::asks::asks;
use crate::{
    ClientAuth, Error, ErrorKind, FetchContext, Token, TokenClient, TokenRequest, TokenSetId,
    TokenSource,
    endpoint::parse::{NOT_APPLICABLE, parse_exchange_response},
    error::sanitize,
};

/// The `grant_type` of token exchange.
pub(crate) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// A [`TokenSource`] for `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`
/// (RFC 8693): every token request posts a subject token, and an actor token when there is
/// one, each with its type, and asks for an `audience`, `resource`s, `scope`s and a
/// `requested_token_type`.
///
/// The subject and actor tokens come from a [`SecurityToken`]: another [`TokenCache`]
/// (a service calling the next one with a token exchanged for its own), a file read again
/// for every request (a workload identity token the platform rotates), or a function.
/// They are asked for anew for every token request, never logged, and scrubbed from any
/// server text an error quotes.
///
/// The exchanged token is cached and renewed like any other: every renewal is a new
/// exchange, with the subject token current at that time. Its lifetime never outlasts the
/// subject token's: a subject from a cache bounds it by that token's expiry, and a subject
/// token that is a JWT by its `exp`.
///
/// # What the answer must say
///
/// RFC 8693 requires `issued_token_type` in the answer. It is checked:
///
/// - missing: [`ErrorKind::InvalidResponse`];
/// - with a [`requested_token_type`](Self::requested_token_type), any other type than the
///   requested one: [`ErrorKind::InvalidResponse`];
/// - `token_type` `N_A` (RFC 8693 section 2.2.1: the issued token is not an access token) is
///   accepted when the issued type is an access token (servers that say `N_A` for every
///   answer exist, and an access token is sent as a bearer token all the same) or the type
///   that was explicitly requested (the caller asked for that kind of token and uses it as
///   it sees fit); otherwise it is an [`ErrorKind::InvalidResponse`], since the middleware
///   would send as a bearer token what the server says is none.
///
/// [`TokenCache`]: crate::TokenCache
///
/// ```
/// # use bytes::Bytes;
/// # use http::{Request, Response};
/// # use http_body_util::Full;
/// # use tower::service_fn;
/// use tower_oauth2::{ClientAuth, TokenCache, TokenClient};
/// use tower_oauth2::grant::{ClientCredentials, SecurityToken, TokenExchange};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_oauth2::Error> {
/// # let http = service_fn(|_: Request<Full<Bytes>>| async {
/// #     let body = r#"{"access_token":"a","token_type":"Bearer","expires_in":600,"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#;
/// #     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(body))))
/// # });
/// let endpoint = TokenClient::new("https://auth.example.com/oauth2/token", http)?;
/// let auth = ClientAuth::basic("orders-service", "its-secret");
///
/// // The service's own token, for the API it is called through...
/// let own = TokenCache::new(ClientCredentials::new(endpoint.clone(), auth.clone()));
/// // ...traded for one the inventory API accepts.
/// let grant = TokenExchange::new(endpoint, auth, SecurityToken::from_cache(own))
///     .audience("https://inventory.example.com")
///     .scopes(["inventory:read"]);
/// let cache = TokenCache::new(grant);
/// let token = cache.token().await?;
/// # assert_eq!(token.token().access_token().expose(), "a");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TokenExchange {
    endpoint: TokenClient,
    auth: ClientAuth,
    subject: SecurityToken,
    actor: Option<SecurityToken>,
    requested_token_type: Option<String>,
    /// The grant type and the plain fields: scopes, resources, audiences, extra fields.
    request: TokenRequest,
    subject_name: Option<String>,
}

impl TokenExchange {
    /// Creates the grant against `endpoint`, authenticating with `auth` (any method;
    /// [`ClientAuth::none`] sends only `client_id`), trading the token `subject` gives.
    pub fn new(endpoint: TokenClient, auth: ClientAuth, subject: SecurityToken) -> Self {
        Self {
            endpoint,
            auth,
            subject,
            actor: None,
            requested_token_type: None,
            request: TokenRequest::new(GRANT_TYPE),
            subject_name: None,
        }
    }

    /// Also sends `actor` as the `actor_token` (with its `actor_token_type`): the party that
    /// acts on the subject's behalf (RFC 8693 section 1.1, delegation).
    #[must_use]
    pub fn actor(mut self, actor: SecurityToken) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Asks for a token of this type (`requested_token_type`), such as
    /// [`SecurityToken::ACCESS_TOKEN`] or [`SecurityToken::JWT`]; the answer's
    /// `issued_token_type` must then be exactly this. Without it the server picks the type,
    /// and any `issued_token_type` is accepted.
    #[must_use]
    pub fn requested_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.requested_token_type = Some(token_type.into());
        self
    }

    asks!(request, first: "every token request", every: "every token request");

    /// Names whom the exchanged tokens act for (the subject, and the actor when there is
    /// one), so that caches in other processes may share them through a fleet
    /// (`TokenCacheBuilder::fleet`).
    ///
    /// Without it, tokens are shared only when every security token comes from a
    /// [`TokenCache`](crate::TokenCache) whose source has an identity itself: equal caches
    /// there stand for the same subject. Tokens from files or functions are never shared
    /// without a name, since two processes may read different identities from the same path.
    #[must_use]
    pub fn subject(mut self, name: impl Into<String>) -> Self {
        self.subject_name = Some(name.into());
        self
    }

    /// The form of one exchange, with the security tokens presented.
    fn form(&self, subject: &Presented, actor: Option<&Presented>) -> TokenRequest {
        let mut request = self
            .request
            .clone()
            .secret_param("subject_token", subject.value.clone())
            .param("subject_token_type", self.subject.type_uri());
        if let (Some(actor), Some(token)) = (actor, &self.actor) {
            request = request
                .secret_param("actor_token", actor.value.clone())
                .param("actor_token_type", token.type_uri());
        }
        if let Some(requested) = &self.requested_token_type {
            request = request.param("requested_token_type", requested);
        }
        request
    }

    /// Checks the answer's `issued_token_type` and `token_type` (see the type's docs).
    fn check(&self, token: &Token, secrets: &[&str]) -> Result<(), Error> {
        let extra = token.extra();
        let issued = match extra.get("issued_token_type") {
            Some(Value::String(issued)) if !issued.is_empty() => issued.as_str(),
            Some(_) => return Err(invalid("`issued_token_type` is not a token type URI")),
            None => return Err(invalid("the answer has no `issued_token_type` (RFC 8693)")),
        };
        let shown = || sanitize(issued, secrets, 100);
        if let Some(requested) = &self.requested_token_type {
            if issued != requested {
                return Err(invalid(&format!(
                    "`issued_token_type` is `{}`, not the requested `{requested}`",
                    shown()
                )));
            }
            return Ok(());
        }
        let not_applicable =
            extra.get("token_type").and_then(Value::as_str) == Some(NOT_APPLICABLE);
        if not_applicable && issued != SecurityToken::ACCESS_TOKEN {
            return Err(invalid(&format!(
                "the issued `{}` is not an access token (`token_type` N_A); ask for it with \
                 requested_token_type to take it anyway",
                shown()
            )));
        }
        Ok(())
    }
}

impl TokenSource for TokenExchange {
    /// Runs one exchange with the current subject (and actor) token.
    async fn fetch(&self, _cx: FetchContext<'_>) -> Result<Token, Error> {
        let subject = self.subject.present().await?;
        let actor = match &self.actor {
            Some(actor) => Some(actor.present().await?),
            None => None,
        };
        let request = self.form(&subject, actor.as_ref());
        let outcome = self
            .endpoint
            .request_with(&request, &self.auth, parse_exchange_response)
            .await;
        let token = match outcome {
            Ok(token) => token,
            Err(error) => {
                // The server refused a security token: the next attempt must not present the
                // same one again if its cache can get another.
                if error.oauth_error() == Some("invalid_grant") {
                    subject.retire();
                    if let Some(actor) = &actor {
                        actor.retire();
                    }
                }
                return Err(error);
            }
        };
        let mut secrets = vec![subject.value.expose()];
        secrets.extend(actor.as_ref().map(|actor| actor.value.expose()));
        self.check(&token, &secrets)?;
        let bound = [Some(&subject), actor.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|presented| presented.remaining)
            .min();
        Ok(bounded(token, bound))
    }

    fn grant_type(&self) -> &'static str {
        "token_exchange"
    }

    fn identity(&self) -> Option<TokenSetId> {
        let subject = match &self.subject_name {
            Some(name) => name.clone(),
            None => {
                let mut name = self.subject.derived_name()?;
                if let Some(actor) = &self.actor {
                    name = format!("{name} actor:{}", actor.derived_name()?);
                }
                name
            }
        };
        let url = self.endpoint.url().to_string();
        let mut id = self
            .request
            .identity(&url, self.auth.client_id())
            .subject(subject)
            .param("subject_token_type", self.subject.type_uri());
        if let Some(actor) = &self.actor {
            id = id.param("actor_token_type", actor.type_uri());
        }
        if let Some(requested) = &self.requested_token_type {
            id = id.param("requested_token_type", requested);
        }
        Some(id.dpop_bound(self.endpoint.binds_tokens()))
    }
}

/// `token` with a lifetime no longer than `bound`, the time its security tokens have left.
fn bounded(token: Token, bound: Option<Duration>) -> Token {
    let Some(bound) = bound else {
        return token;
    };
    // A zero lifetime would read as "stale at once, never expires"; one second expires.
    let bound = bound.max(Duration::from_secs(1));
    match token.expires_in() {
        Some(lifetime) if lifetime <= bound => token,
        _ => token.with_expires_in(bound),
    }
}

fn invalid(detail: &str) -> Error {
    Error::new(ErrorKind::InvalidResponse).with_detail(detail)
}

impl fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchange")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth)
            .field("subject", &self.subject)
            .field("actor", &self.actor)
            .field("requested_token_type", &self.requested_token_type)
            .field("request", &self.request)
            .field("subject_name", &self.subject_name)
            .finish()
    }
}
