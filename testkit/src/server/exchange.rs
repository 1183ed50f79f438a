//! Token exchange (RFC 8693): the token endpoint trades a subject token for a new access
//! token. A subject token of type access token must be one the server issued and still
//! honours; other types are taken as they are. What the answer says about the issued token
//! (`issued_token_type`, `token_type`) can be set, to test how clients check it.

use http::{Response, StatusCode};
use tokio::time::Instant;

use super::{AuthServer, Model, Received, wire::described};
use crate::Body;

/// The `grant_type` of token exchange.
pub(crate) const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// What exchange answers say about the token they issue.
#[derive(Debug, Default)]
pub(super) struct Exchange {
    issued_token_type: Issued,
    /// `None`: `Bearer`.
    token_type: Option<String>,
}

/// The `issued_token_type` of exchange answers.
#[derive(Debug, Default, Clone)]
enum Issued {
    /// The requested type, or an access token.
    #[default]
    AsRequested,
    /// This type, whatever was requested.
    Always(String),
    /// None at all.
    Missing,
}

impl AuthServer {
    /// The server knows `token` as an access token that lives an hour, as if it had issued
    /// it: the API accepts it, and token exchange takes it as a subject or actor token.
    pub fn access_token(self, token: &str) -> Self {
        let expires = Instant::now() + std::time::Duration::from_secs(3600);
        self.model().access.insert(token.to_owned(), expires);
        self
    }

    /// Token exchange answers name `issued_token_type` (or leave it out, for `None`) instead
    /// of the requested type, and say `token_type` `token_type`.
    pub fn exchange_answers(self, issued_token_type: Option<&str>, token_type: &str) -> Self {
        let mut model = self.model();
        model.exchange.issued_token_type =
            issued_token_type.map_or(Issued::Missing, |issued| Issued::Always(issued.to_owned()));
        model.exchange.token_type = Some(token_type.to_owned());
        drop(model);
        self
    }
}

impl Model {
    /// Answers a token exchange request of an authenticated client.
    pub(super) fn exchange(&mut self, request: &Received) -> Response<Body> {
        let form = &request.form;
        let invalid = |why: &str| described(StatusCode::BAD_REQUEST, "invalid_request", why);
        let (Some(subject), Some(subject_type)) =
            (form.get("subject_token"), form.get("subject_token_type"))
        else {
            return invalid("subject_token and subject_token_type are required");
        };
        if form.contains_key("actor_token") != form.contains_key("actor_token_type") {
            return invalid("actor_token and actor_token_type go together");
        }
        for (token, token_type) in [
            (Some(subject), Some(subject_type)),
            (form.get("actor_token"), form.get("actor_token_type")),
        ] {
            if let (Some(token), Some(ACCESS_TOKEN)) = (token, token_type.map(String::as_str)) {
                let honoured = self
                    .access
                    .get(token)
                    .is_some_and(|at| *at > Instant::now());
                if !honoured {
                    return described(StatusCode::BAD_REQUEST, "invalid_grant", "unknown token");
                }
            }
        }
        let requested = form.get("requested_token_type").map(String::as_str);
        let issued = match &self.exchange.issued_token_type {
            Issued::AsRequested => Some(requested.unwrap_or(ACCESS_TOKEN).to_owned()),
            Issued::Always(issued) => Some(issued.clone()),
            Issued::Missing => None,
        };
        let mut extra = String::new();
        if let Some(issued) = issued {
            extra = format!(r#","issued_token_type":{}"#, serde_json::json!(issued));
        }
        let token_type = self.exchange.token_type.clone();
        self.issue(false, token_type.as_deref().unwrap_or("Bearer"), &extra)
    }
}
