//! The GitHub Actions OIDC token service, as a job's runner offers it: `GET` the URL in
//! `ACTIONS_ID_TOKEN_REQUEST_URL` (which has `api-version` in its query) with `&audience=AUD`
//! and `Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`; the answer is
//! `{"count": N, "value": "<jwt>"}`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::{Method, Response, StatusCode, header::AUTHORIZATION, request::Parts};

use super::{Fake, FakeService, Issuer, Misbehave, json, query, respond, serve};
use crate::{Body, Loopback};

/// The issuer of GitHub Actions tokens.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

/// A fake GitHub Actions token service: it checks the bearer token and issues RS256 JWTs
/// from its [`Issuer`] (by default `https://token.actions.githubusercontent.com`) for the
/// audience asked for (by default the repository owner's URL, as GitHub does), with the
/// configured `sub`, living five minutes unless set.
///
/// Served over HTTP it answers `GET /idtoken` (see [`request_url`](Self::request_url)).
/// Clones share one fake.
#[derive(Clone, Debug)]
pub struct GitHubActionsOidc {
    model: Arc<Mutex<Model>>,
}

#[derive(Debug)]
struct Model {
    issuer: Issuer,
    request_token: String,
    subject: String,
    lifetime_secs: i64,
    requests: usize,
    audiences: Vec<String>,
    misbehave: Option<Misbehave>,
}

impl GitHubActionsOidc {
    /// A token service that takes `request_token` (the runner's
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`), for the repository `octo-org/octo-repo` on `main`.
    pub fn new(request_token: &str) -> Self {
        let model = Model {
            issuer: Issuer::new(GITHUB_ISSUER),
            request_token: request_token.to_owned(),
            subject: "repo:octo-org/octo-repo:ref:refs/heads/main".to_owned(),
            lifetime_secs: 300,
            requests: 0,
            audiences: Vec::new(),
            misbehave: None,
        };
        Self {
            model: Arc::new(Mutex::new(model)),
        }
    }

    /// Tokens say `iss` = `issuer`.
    pub fn issuer(self, issuer: &str) -> Self {
        self.model().issuer = Issuer::new(issuer);
        self
    }

    /// Tokens say `sub` = `subject`.
    pub fn subject(self, subject: &str) -> Self {
        self.model().subject = subject.to_owned();
        self
    }

    /// Tokens issued from now on expire `secs` after they are issued.
    pub fn set_lifetime(&self, secs: i64) {
        self.model().lifetime_secs = secs;
    }

    /// The `iss` of its tokens.
    pub fn issuer_url(&self) -> String {
        self.model().issuer.url().to_owned()
    }

    /// The JWKS its tokens verify with.
    pub fn jwks(&self) -> String {
        self.model().issuer.jwks()
    }

    /// The `sub` of its tokens.
    pub fn subject_claim(&self) -> String {
        self.model().subject.clone()
    }

    /// Requests received, whatever the answer.
    pub fn requests(&self) -> usize {
        self.model().requests
    }

    /// The `audience` of each request that had one, in order.
    pub fn audiences(&self) -> Vec<String> {
        self.model().audiences.clone()
    }

    /// Misbehaves as `how` until [`heal`](Self::heal).
    pub fn misbehave(&self, how: Misbehave) {
        self.model().misbehave = Some(how);
    }

    /// Ends [`misbehave`](Self::misbehave).
    pub fn heal(&self) {
        self.model().misbehave = None;
    }

    /// The token service in process.
    pub fn service(&self) -> FakeService<Self> {
        FakeService::new(self.clone())
    }

    /// Serves it over HTTP on 127.0.0.1.
    pub async fn serve(&self) -> std::io::Result<Loopback> {
        serve(self).await
    }

    /// What the runner would set `ACTIONS_ID_TOKEN_REQUEST_URL` to for `loopback`.
    pub fn request_url(loopback: &Loopback) -> String {
        loopback.url("/idtoken?api-version=2.0")
    }

    fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Fake for GitHubActionsOidc {
    fn answer(&self, request: &Parts) -> Response<Body> {
        let mut model = self.model();
        model.requests += 1;
        if let Some(how) = &model.misbehave {
            return how.respond();
        }
        if request.method != Method::GET {
            return respond(StatusCode::METHOD_NOT_ALLOWED, "GET only");
        }
        let bearer = request
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token);
        if bearer != Some(model.request_token.as_str()) {
            return json(
                StatusCode::UNAUTHORIZED,
                r#"{"message":"Unable to validate the request token"}"#.to_owned(),
            );
        }
        let query = query(request);
        if !query.iter().any(|(name, _)| name == "api-version") {
            return json(
                StatusCode::BAD_REQUEST,
                r#"{"message":"api-version is required"}"#.to_owned(),
            );
        }
        let audience = query
            .iter()
            .find(|(name, _)| name == "audience")
            .map(|(_, value)| value.clone());
        if let Some(audience) = &audience {
            model.audiences.push(audience.clone());
        }
        let owner = model
            .subject
            .strip_prefix("repo:")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("octo-org");
        let audience = audience.unwrap_or_else(|| format!("https://github.com/{owner}"));
        let token = model
            .issuer
            .sign(&model.subject, &audience, model.lifetime_secs);
        let body = serde_json::json!({"count": token.len(), "value": token});
        json(StatusCode::OK, body.to_string())
    }
}
